"""Self-describing checkpoints that resume exactly: weights, optimizers, scaler, data position, RNG states.

A resume must continue the very run that wrote the checkpoint, so each one records the hash of the params
it was trained with; a checkpoint from other params is refused instead of silently mixed in.
"""

from __future__ import annotations

import json
import logging
import pickle
import random
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from alitok import atomic

log = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used as asked; the message names the file."""


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def truncate_log(path: Path, step: int) -> None:
    """Drop JSON-lines log records past a resumed checkpoint's step: those steps are about to be redone."""
    if path.exists():
        keep = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
        atomic.write_text(path, "".join(k + "\n" for k in keep))


def save_progress(path: str | Path, payload: dict) -> None:
    """In-progress checkpoint of a (possibly distributed) run: every rank's RNG state is gathered under "rng" so
    each resumes its own stream; rank 0 writes; all ranks wait for the file."""
    distributed = dist.is_available() and dist.is_initialized()
    states = [rng_state()]
    if distributed:
        states = [None] * dist.get_world_size()
        dist.all_gather_object(states, rng_state())
    if not distributed or dist.get_rank() == 0:
        save(path, {**payload, "rng": states})
    if distributed:
        dist.barrier()


def load_progress(path: str | Path, *, kind: str, params_hash: str, log_path: Path) -> dict | None:
    """The counterpart of save_progress: None when there is no checkpoint yet, else load it and restore this rank's
    RNG stream (rank 0's for a rank the run did not have). Either way rank 0 cuts the log back to the step the run
    resumes from (0 without a checkpoint: a run killed before its first save left records that are about to be
    redone), so no record is written twice."""
    path = Path(path)
    rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
    ckpt = None
    if path.exists():
        ckpt = load(path, kind=kind, params_hash=params_hash)
        set_rng_state(ckpt["rng"][rank] if rank < len(ckpt["rng"]) else ckpt["rng"][0])
    if rank == 0:
        truncate_log(log_path, ckpt["step"] if ckpt else 0)
    return ckpt


def resume(path: str | Path, *, kind: str, params_hash: str, log_path: Path, **states) -> int:
    """`load_progress`, then each of `states` (a model, an optimiser, a scaler: what `save_progress` stored under
    that name) restored; the step to resume from, 0 for a fresh start."""
    ckpt = load_progress(path, kind=kind, params_hash=params_hash, log_path=log_path)
    if ckpt is None:
        return 0
    for name, obj in states.items():
        obj.load_state_dict(ckpt[name])
    if not (dist.is_available() and dist.is_initialized() and dist.get_rank()):
        log.info("resuming %s from %s at step %d", kind, path, ckpt["step"])
    return ckpt["step"]


def save(path: str | Path, payload: dict) -> None:
    atomic.torch_save(path, payload)


def load(path: str | Path, *, kind: str | None = None, params_hash: str | None = None) -> dict:
    """Load a checkpoint; refuse a corrupt file, a different kind, or one trained with other params."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as e:
        raise CheckpointError(
            f"checkpoint {path} is truncated or corrupt ({type(e).__name__}); delete it to start over"
        ) from e
    if not isinstance(ckpt, dict) or "format" not in ckpt:
        raise CheckpointError(f"checkpoint {path} is not an alitok checkpoint (no 'format' key)")
    if kind is not None and ckpt.get("kind") != kind:
        raise CheckpointError(f"checkpoint {path} holds a {ckpt.get('kind')!r}, expected {kind!r}")
    if params_hash is not None and ckpt.get("params_hash") != params_hash:
        raise CheckpointError(
            f"checkpoint {path} was written with different params (hash {ckpt.get('params_hash')}, now {params_hash}); "
            "refusing to resume. Restore the old params, or delete the checkpoint directory to start over"
        )
    return ckpt
