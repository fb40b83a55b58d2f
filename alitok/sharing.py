"""`alitok pull`: take a colleague's results from the DVC remote so that Snakemake has nothing left to do.

Plain `dvc pull` is not enough, for two reasons:
- DVC trusts the remote: a corrupted object is checked out under the hash it was stored under, and
  `dvc status` reports it up to date. Every pulled file is hashed here against dvc.lock; a mismatch is removed
  from the workspace and the cache and refused, naming the file.
- Pulled files get new, arbitrary modification times, and a fresh clone has no Snakemake provenance records,
  so Snakemake would rerun jobs whose inputs merely look newer, and would miss a later params change.
  `snakemake --touch --forceall` marks every output up to date in DAG order and records each job's params and
  code, so afterwards only what a changed param really affects reruns.
Touching is only safe when the pulled results belong to this checkout, so it is refused when `dvc status`
reports a difference from dvc.lock.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import yaml
from tqdm import tqdm

from alitok import atomic

log = logging.getLogger("alitok.sharing")


class SharingError(RuntimeError):
    """A pull that cannot be trusted or adopted: the message says which file and what to do."""


def _dvc(*args: str, cwd: Path, capture: bool = False) -> subprocess.CompletedProcess:
    proc = subprocess.run(["dvc", *args], cwd=cwd, text=True, capture_output=capture)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout or "").strip().splitlines()[-1:] if capture else []
        raise SharingError(f"`dvc {' '.join(args)}` failed (exit {proc.returncode})" + (f": {detail[0]}" if detail else ""))
    return proc


def cache_object(cache: Path, md5: str) -> Path:
    return cache / "files" / "md5" / md5[:2] / md5[2:]


def recorded_files(lock: Path, cache: Path) -> dict[Path, str]:
    """Every file that dvc.lock's stage outputs hold, with the md5 recorded for it (directory outputs expanded
    through their .dir listing in the cache)."""
    files: dict[Path, str] = {}
    for stage in yaml.safe_load(lock.read_text())["stages"].values():
        for out in stage.get("outs", []):
            path, md5 = Path(out["path"]), out["md5"]
            if md5.endswith(".dir"):
                listing = cache_object(cache, md5)
                if not listing.is_file():
                    raise SharingError(f"{path}: its file listing ({md5}) is not in the DVC cache {cache}; "
                                       "the remote does not have this version (was it pushed?)")
                for entry in json.loads(listing.read_text()):
                    files[path / entry["relpath"]] = entry["md5"]
            else:
                files[path] = md5
    return files


def verify(root: Path, cache: Path) -> list[str]:
    """Hash every pulled file against dvc.lock; remove mismatches from the workspace and the cache (so neither
    serves them again) and describe each. Missing files are DVC's to report."""
    problems = []
    files = recorded_files(root / "dvc.lock", cache)
    for rel, md5 in tqdm(files.items(), desc="verify pulled files", unit="file", file=sys.stderr):
        path = root / rel
        if not path.is_file():
            continue
        actual = atomic.file_digest(path, "md5")
        if actual != md5:
            path.unlink()
            cache_object(cache, md5).unlink(missing_ok=True)
            problems.append(f"{rel}: content md5 {actual} does not match {md5} recorded in dvc.lock")
    return problems


def pull(root: Path = Path("."), remote: str | None = None) -> None:
    """dvc pull, verify every file, then mark the pulled results up to date for Snakemake."""
    _dvc("pull", *(["--remote", remote] if remote else []), cwd=root)
    cache = Path(_dvc("cache", "dir", capture=True, cwd=root).stdout.strip())
    problems = verify(root, cache)
    if problems:
        raise SharingError(
            f"refused {len(problems)} pulled file(s) whose content does not match dvc.lock (removed from the "
            "workspace and the DVC cache): " + "; ".join(problems) + ". The remote's copy is corrupt: `dvc push` "
            "from a machine with a good copy, or run the pipeline to recompute them.")
    status = json.loads(_dvc("status", "--json", capture=True, cwd=root).stdout or "{}")
    if status:
        raise SharingError(
            "pulled, but this checkout differs from dvc.lock (" + json.dumps(status) + "): the results belong to "
            "other params or code, so they are not marked up to date. Check out the commit they were pushed from, "
            "or run the pipeline to recompute what changed.")
    # the params profile is params.yaml's `profile:`, the one dvc.yaml's stage runs
    cmd = ["snakemake", "--touch", "--forceall", "--cores", "1"]
    log.info("marking the pulled results up to date: %s", " ".join(cmd))
    if subprocess.run(cmd, cwd=root).returncode != 0:
        raise SharingError(f"`{' '.join(cmd)}` failed: see its output above")
