"""Token shards: a few large uint16 .npy arrays plus a JSON manifest, read memory-mapped.

Layout of a split directory:
    manifest.json          format, seq_len, crops, vocab size, classes, tokenizer digest, shards + counts
    codes-00000.npy        (images, crops, seq_len) uint16, rows in manifest order
    labels-00000.npy       (images,) int32
Never one file per image: ImageNet's 1.28M images x 10 crops x 273 codes is ~7 GB in ~13 shards, and a
reader opens each shard once, memory-mapped, so workers share the page cache instead of copies.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

FORMAT = "alitok-tokens/1"


class TokenStoreError(ValueError):
    """A token directory that cannot be read; the message names the file."""


def shard_names(i: int) -> tuple[str, str]:
    return f"codes-{i:05d}.npy", f"labels-{i:05d}.npy"


def read_manifest(root) -> dict:
    path = Path(root) / "manifest.json"
    if not path.is_file():
        raise TokenStoreError(f"{path} does not exist: run the token extraction stage (alitok extract-tokens)")
    info = json.loads(path.read_text())
    if info.get("format") != FORMAT:
        raise TokenStoreError(f"{path}: format {info.get('format')!r}, expected {FORMAT!r}")
    return info


class TokenShards:
    """All shards of one split as one indexable sequence of (codes (crops, seq_len) uint16, label)."""

    def __init__(self, root):
        self.root = Path(root)
        self.info = read_manifest(self.root)
        self.codes, self.labels = [], []
        for shard in self.info["shards"]:
            codes_file, labels_file = self.root / shard["codes"], self.root / shard["labels"]
            try:
                codes = np.load(codes_file, mmap_mode="r")
                labels = np.load(labels_file, mmap_mode="r")
            except (OSError, ValueError) as e:
                raise TokenStoreError(f"{codes_file.name}: unreadable token shard ({e})") from e
            want = (shard["count"], self.info["crops"], self.info["seq_len"])
            if codes.shape != want or codes.dtype != np.uint16 or labels.shape != (shard["count"],):
                raise TokenStoreError(f"{codes_file}: shape {codes.shape} {codes.dtype}, manifest says {want} uint16")
            self.codes.append(codes)
            self.labels.append(labels)
        self.offsets = np.cumsum([0] + [s["count"] for s in self.info["shards"]])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        shard = int(np.searchsorted(self.offsets, index, side="right") - 1)
        row = index - self.offsets[shard]
        return self.codes[shard][row], int(self.labels[shard][row])


class TrainTokens:
    """Training items keyed by (stream position, index): one of the image's crops and its label, with the
    label replaced by `null_class` with probability `class_dropout`. Both draws come from a generator seeded
    by (seed, position), so a step sees the same sequences for any number of processes or workers, and a
    resumed run sees what the killed one would have (the release uses Python `random`, which does neither).

    `shuffle_labels` is the evaluation control: each image keeps one label drawn by a fixed permutation of all
    labels (same class counts, no relation to the image), so a generator trained on it can learn the images but
    not the classes; its samples' class-consistency must sit near chance."""

    def __init__(
        self, shards: TokenShards, seed: int, class_dropout: float, null_class: int, shuffle_labels: bool = False
    ):
        self.shards, self.seed, self.p, self.null = shards, seed, class_dropout, null_class
        self.label_of = None
        if shuffle_labels:
            labels = np.concatenate([np.asarray(lab) for lab in shards.labels])
            self.label_of = labels[np.random.default_rng([seed, len(labels)]).permutation(len(labels))]

    def __len__(self) -> int:
        return len(self.shards)

    def __getitem__(self, key):
        import torch

        position, index = key
        rng = np.random.default_rng([self.seed, int(position)])
        crops, label = self.shards[int(index)]
        if self.label_of is not None:
            label = int(self.label_of[int(index)])
        crop = int(rng.integers(crops.shape[0]))
        if rng.random() < self.p:
            label = self.null
        return torch.from_numpy(crops[crop].astype(np.int64)), label
