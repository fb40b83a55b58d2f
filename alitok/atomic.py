"""Atomic writes: an output either exists complete or not at all.

Every artifact goes to a temporary sibling first and is renamed into place, so a crash, a kill or a full
disk never leaves a half-written file that a later stage (or Snakemake) would take for a finished one.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path


class OutputError(RuntimeError):
    """An output cannot be written (unwritable location, disk full); names the path."""


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Content hash of a file, read in blocks (md5 is what DVC records)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    """Identifies inputs (weights, init checkpoints) by content."""
    return file_digest(path)


def _prepare_parent(path: Path) -> None:
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as e:
        raise OutputError(f"cannot create output directory {parent}: a file stands where a directory should be") from e
    except PermissionError as e:
        raise OutputError(f"cannot create output directory {parent}: permission denied") from e


def _describe(e: OSError, path: Path) -> str:
    if e.errno == errno.ENOSPC:
        return f"no space left on device while writing {path}; earlier artifacts are intact"
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write {path}: {os.strerror(e.errno)}"
    return f"cannot write {path}: {e}"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path next to `path`; on success it is fsynced and renamed onto `path`."""
    path = Path(path)
    _prepare_parent(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise OutputError(_describe(e, path)) from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def torch_save(path: str | os.PathLike, obj) -> None:
    import torch

    with atomic_path(path) as tmp, open(tmp, "wb", buffering=0) as f:
        # through a Python file, a full disk is an OSError (ENOSPC) at the failing write; torch's own file writer
        # reports it as "[enforce fail at inline_container.cc] unexpected pos"
        torch.save(obj, f)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike):
    """Yield a temporary directory that replaces `path` as a whole once the block succeeds."""
    path = Path(path)
    _prepare_parent(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OutputError(_describe(e, path)) from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
