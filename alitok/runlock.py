"""One pipeline invocation per working directory.

Snakemake locks only the outputs two invocations share, so two runs with disjoint targets or different params
profiles would interleave in one directory (one MLflow store, one `.snakemake/`). The Snakefile's `onstart`
takes an exclusive `flock` on a file here for the life of the run; the kernel drops it when the process ends,
killed or not, so a crash never leaves a stale lock. Dry runs and "nothing to be done" take no lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path

LOCK_FILE = Path(".snakemake/alitok-run.lock")
_HELD = []  # open lock files: the lock lasts while the file stays open, i.e. for the process's life


class PipelineBusy(RuntimeError):
    """Another invocation holds the working directory."""


def acquire(argv: list[str], path: Path = LOCK_FILE):
    """Lock the working directory for the rest of this process's life."""
    path.parent.mkdir(parents=True, exist_ok=True)
    f = open(path, "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        try:
            info = json.loads(f.read())
        except ValueError:  # the holder has not written its line yet
            info = {}
        f.close()
        raise PipelineBusy(
            f"another pipeline run is active in {Path.cwd()} (pid {info.get('pid', '?')}, started "
            f"{info.get('started', '?')}: {info.get('command', '?')}); wait for it to end, or use another clone "
            f"(lock: {path})"
        ) from None
    f.seek(0)
    f.truncate()
    f.write(
        json.dumps({"pid": os.getpid(), "started": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(argv)[:500]})
    )
    f.flush()
    _HELD.append(f)
    return f
