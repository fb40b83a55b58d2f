"""Where every ablation file lives under the ablations folder: one place for the rules and the report."""

from __future__ import annotations

from pathlib import Path


def seed_dir(root, seed: int) -> Path:
    return Path(root) / f"seed{seed}"


def tokenizer(root, seed: int, tok: str, stage: int) -> Path:
    return seed_dir(root, seed) / "tokenizer" / tok / f"stage{stage}.pt"


def tokenizer_metrics(root, seed: int, tok: str, stage: int) -> Path:
    return seed_dir(root, seed) / "tokenizer" / tok / f"stage{stage}_metrics.json"


def tokens(root, seed: int, tok: str, split: str) -> Path:
    return seed_dir(root, seed) / "tokens" / tok / split


def generator_log(root, seed: int, gen: str) -> Path:
    return seed_dir(root, seed) / "generator" / gen / "log.jsonl"


def row_scores(root, seed: int, row: str) -> Path:
    return seed_dir(root, seed) / "rows" / row / "scores.json"


def ctf_dir(root, seed: int, clusters: int) -> Path:
    return seed_dir(root, seed) / "ctf" / f"K{clusters}"


def ctf_stage1_log(root, seed: int, clusters: int) -> Path:
    return ctf_dir(root, seed, clusters) / "stage1" / "log.jsonl"


def ctf_scores(root, seed: int, clusters: int, size: str) -> Path:
    return ctf_dir(root, seed, clusters) / f"stage2_{size}" / "scores.json"
