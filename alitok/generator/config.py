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
    width, depth, heads = shape(scales[scale])
    return GeneratorConfig(
        arch=scales[scale]["arch"], width=width, depth=depth, heads=heads, **geometry(p, num_classes)
    )


def geometry(p: dict, num_classes: int) -> dict:
    """What every generator of a profile shares: the tokenizer's sequence and codebook, the classes, dropout."""
    drop, tok = p["generator"]["dropout"], tokenizer_config(p)
    return {
        "vocab_size": tok.codebook_size,
        "num_prefix": tok.num_prefix,
        "grid": tok.grid,
        "num_classes": num_classes,
        "dropout": drop["residual"],
        "attn_dropout": drop["attention"],
        "token_dropout": drop["token"],
    }


def shape(s: dict) -> tuple[int, int, int]:
    """(width, depth, heads) of a params model entry: a named size of its arch, or explicit widths."""
    return SIZES[s["arch"]][s["size"]] if "size" in s else (s["width"], s["depth"], s["heads"])


def ctf_config(p: dict, stage: int, clusters: int, num_classes: int, scale: str | None = None) -> GeneratorConfig:
    """CTF's models (ctf.md §1.3-1.4). Stage 1: generator `scale`'s shape reading and predicting the K coarse
    labels, so it compares with the plain generator of that shape. Stage 2: the `ctf.stage2` shape,
    bidirectional, reading a whole coarse map (K input rows) and predicting codebook codes; it does not depend on
    a stage-1 scale, so one stage 2 serves them all (as the paper's one 343M model serves B, L and XL)."""
    if stage == 1:
        if scale is None:
            raise ParamsError("CTF stage 1 takes the shape of a generator scale: give one")
        return dataclasses.replace(model_config(p, scale, num_classes), vocab_size=clusters)
    if stage != 2:
        raise ParamsError(f"CTF stage must be 1 or 2, got {stage}")
    s = p["ctf"]["stage2"]
    width, depth, heads = shape(s)
    return GeneratorConfig(
        arch=s["arch"],
        width=width,
        depth=depth,
        heads=heads,
        input_vocab=clusters,
        causal=False,
        **geometry(p, num_classes),
    )
