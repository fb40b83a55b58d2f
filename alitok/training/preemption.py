"""SIGTERM-safe training. SLURM preempts a job (and `scancel` and a time limit end one) with SIGTERM, then SIGKILL
after its grace period; Snakemake stops its local jobs the same way. A trainer under `Preemption` notes the signal,
finishes the optimiser step in progress, checkpoints at a step every rank agrees on (atomically, through
`checkpoint.save_progress`), and raises `Preempted`. `alitok` exits with PREEMPTED, and the rerun (Snakemake's
`retries` in the SLURM profile, or the same command by hand) resumes from that checkpoint bit-identically
(docs/cluster.md, "Preemption").
"""

from __future__ import annotations

import logging
import signal
import threading

log = logging.getLogger(__name__)

PREEMPTED = 75  # sysexits' EX_TEMPFAIL: a temporary failure, to be retried


class Preempted(Exception):
    """Training stopped on SIGTERM after writing its checkpoint at `step`."""

    def __init__(self, step: int, checkpoint):
        super().__init__(f"preempted (SIGTERM): checkpoint at step {step} in {checkpoint}; rerun to resume")
        self.step = step


class Preemption:
    """Catches SIGTERM while a training loop runs; `stop_now()` after each optimiser step says whether to stop."""

    def __init__(self, device):
        self.device, self.signalled, self._previous = device, False, None

    def __enter__(self) -> Preemption:
        if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread only
            self._previous = signal.signal(signal.SIGTERM, self._note)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)

    def _note(self, signum, frame) -> None:
        if not self.signalled:
            log.warning("SIGTERM: finishing this step, then checkpointing")
        self.signalled = True

    def after_step(self, step: int, total: int, every: int, save, checkpoint) -> None:
        """A trainer's end of step: the periodic (and final) checkpoint, then, if signalled, that step's checkpoint
        (unless just written) and `Preempted`."""
        if step % every == 0 or step == total:
            save()
        if step < total and self.stop_now():
            if step % every:
                save()
            raise Preempted(step, checkpoint)

    def stop_now(self) -> bool:
        """True on every rank as soon as any rank has been signalled: the ranks take a maximum of their flags after
        each step, so all of them checkpoint the same step (one small all-reduce per step under DDP)."""
        import torch  # here, not above: the cli imports this module and must not import torch for --help
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return self.signalled
        flag = torch.tensor([1.0 if self.signalled else 0.0], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())
