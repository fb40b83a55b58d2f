"""Params -> GeneratorConfig: architecture from `generator.scales`, geometry from the tokenizer's config."""

from __future__ import annotations

import dataclasses

from alitok.config import ParamsError
from alitok.models.generator import SIZES, GeneratorConfig
from alitok.tokenizer.train import model_config as tokenizer_config


def model_config(p: dict, scale: str, num_classes: int) -> GeneratorConfig:
    """The generator of `scale`; the class count is the dataset's (dataset.json), known after the data stage."""
    scales = p["generator"]["scales"]
    if scale not in scales:
        raise ParamsError(f"generator scale {scale!r} is not in params generator.scales ({', '.join(scales)})")
    s, drop, tok = scales[scale], p["generator"]["dropout"], tokenizer_config(p)
    geometry = {"vocab_size": tok.codebook_size, "num_prefix": tok.num_prefix, "grid": tok.grid,
                "num_classes": num_classes, "dropout": drop["residual"], "attn_dropout": drop["attention"],
                "token_dropout": drop["token"]}
    width, depth, heads = shape(s)
    return GeneratorConfig(arch=s["arch"], width=width, depth=depth, heads=heads, **geometry)


def shape(s: dict) -> tuple[int, int, int]:
    """(width, depth, heads) of a params model entry: a named size of its arch, or explicit widths."""
    return SIZES[s["arch"]][s["size"]] if "size" in s else (s["width"], s["depth"], s["heads"])


def ctf_config(p: dict, cfg: GeneratorConfig, stage: int, clusters: int) -> GeneratorConfig:
    """CTF's models (ctf.md §1.3-1.4). Stage 1: the scale's own shape reading and predicting the K coarse labels,
    so it compares with the plain generator of that shape. Stage 2: the `ctf.stage2` shape, bidirectional,
    reading a whole coarse map (K input rows) and predicting codebook codes."""
    if stage == 1:
        return dataclasses.replace(cfg, vocab_size=clusters)
    if stage != 2:
        raise ParamsError(f"CTF stage must be 1 or 2, got {stage}")
    s = p["ctf"]["stage2"]
    width, depth, heads = shape(s)
    return dataclasses.replace(cfg, arch=s["arch"], width=width, depth=depth, heads=heads, input_vocab=clusters,
                               causal=False)


def embedded_classes(p: dict) -> int | None:
    """Class count known from params alone (the embedded dataset); None for an ImageFolder tree."""
    return p["data"]["embedded"]["num_classes"] if p["data"]["source"] == "embedded" else None


SAMPLING_KEYS = ("guidance", "guidance_power", "sample_seed")


def training_section(p: dict, scale: str) -> dict:
    """What training reads, and so what identifies a training run (rerun trigger, resume hash): not the
    sampling section nor a scale's sampling fields, so resampling never retrains."""
    g = p["generator"]
    return {k: g[k] for k in ("dropout", "optimizer", "training")} | {
        "scale": {k: v for k, v in g["scales"][scale].items() if k not in SAMPLING_KEYS}}
