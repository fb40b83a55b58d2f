"""Training images from a manifest, one crop per (seed, stream position).

Each sample's augmentation is drawn from a generator seeded by its position in the global sample stream,
not from worker or process state, so the same step sees the same pixels whatever the number of processes
or loader workers, and a resumed run sees exactly what the killed one would have.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from alitok.data import manifest, transforms
from alitok.data.imagefolder import DataError
from alitok.training import schedule


class TrainImages(Dataset):
    """Items are keyed by (stream position, dataset index) and returned as uint8 (3, S, S) tensors."""

    def __init__(self, records: list[manifest.Record], root: str | Path, size: int, seed: int):
        self.records, self.root, self.size, self.seed = records, Path(root), size, seed

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key):
        position, index = key
        rng = np.random.default_rng([self.seed, int(position)])
        img = manifest.open_image(self.root, self.records[index])
        img = transforms.resize_random_crop_flip(img, self.size, rng)
        return transforms.to_uint8_chw(img), self.records[index].label


def batch_keys(step: int, global_batch: int, n: int, seed: int, rank: int, world: int) -> list[tuple[int, int]]:
    positions = schedule.local_positions(step, global_batch, rank, world)
    return list(zip(positions.tolist(), schedule.sample_index(positions, n, seed).tolist()))


class StepBatches:
    """The batch sampler of steps start_step..total_steps-1 of this rank, each split into `accum` equal
    micro-batches. Keys are made as the loader asks for them: a list for every step up front would hold
    hundreds of millions of tuples at paper scale."""

    def __init__(self, steps: range, accum: int, *keys: int):
        """`keys`: `batch_keys`'s arguments after the step (global batch, n, seed, rank, world)."""
        self.start, self.total, self.accum = steps.start, steps.stop, accum
        self.args = keys

    def __len__(self) -> int:
        return (self.total - self.start) * self.accum

    def __iter__(self):
        for step in range(self.start, self.total):
            keys = batch_keys(step, *self.args)
            per = len(keys) // self.accum
            for i in range(self.accum):
                yield keys[i * per : (i + 1) * per]


def check_batch(n: int, batch: int, source, key: str) -> None:
    """A training set smaller than one batch is a folder too small for these params: one sentence naming both."""
    if n < batch:
        raise DataError(
            f"{source}: {n} training items, fewer than one batch of {batch} ({key}); add images to the dataset "
            f"folder or lower {key} in params.yaml"
        )


def train_loader(dataset, training: dict, dist, steps: range, accum: int = 1, *, source="", key="") -> DataLoader:
    """Batches (micro-batches with accum > 1) for `steps` of this rank (`dist`: rank, world size), in order, as
    a trainer's params `training` section says (global batch, seed, workers). `source`, `key`: the training set's
    path and the batch's params key, named when the set is smaller than one batch."""
    check_batch(len(dataset), training["global_batch"], source, key)
    seed = training["seed"]
    keys = StepBatches(steps, accum, training["global_batch"], len(dataset), seed, dist.rank, dist.world_size)
    return DataLoader(
        dataset,
        batch_sampler=keys,
        num_workers=training["workers"],
        persistent_workers=False,
        pin_memory=torch.cuda.is_available(),
        generator=own_generator(seed),
        worker_init_fn=ignore_sigterm,
    )


def ignore_sigterm(worker_id: int) -> None:
    """SLURM sends SIGTERM to every process of a job: a loader worker that died of it would fail the step in
    progress, before the trainer can checkpoint (alitok.training.preemption). The trainer stops them instead."""
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def own_generator(seed: int) -> torch.Generator:
    """A DataLoader draws a base seed from its generator each time it is iterated: with the global one, a resumed
    run's RNG stream (dropout) would shift by one draw. Items here are keyed by position, so no draw matters."""
    return torch.Generator().manual_seed(seed)
