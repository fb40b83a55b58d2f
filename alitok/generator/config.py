"""Params -> GeneratorConfig: architecture from `generator.scales`, geometry from the tokenizer's (alitok.geometry):
the token manifest's when training on tokens, else derived from params (planning, meta-device builds)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from alitok import geometry as tokenizer_geometry
from alitok.config import ParamsError
from alitok.models.generator import SIZES, GeneratorConfig


def model_config(p: dict, scale: str, num_classes: int, tokens: Mapping | None = None) -> GeneratorConfig:
    """The generator of `scale`; the class count is the dataset's (dataset.json), known after the data stage.
    `tokens`: the manifest of the tokens it trains on, whose geometry it takes; without it, the params' tokenizer's."""
    scales = p["generator"]["scales"]
    if scale not in scales:
        raise ParamsError(f"generator scale {scale!r} is not in params generator.scales ({', '.join(scales)})")
    width, depth, heads = shape(scales[scale])
    return GeneratorConfig(
        arch=scales[scale]["arch"], width=width, depth=depth, heads=heads, **geometry(p, num_classes, tokens)
    )


def geometry(p: dict, num_classes: int, tokens: Mapping | None = None) -> dict:
    """What every generator of a profile shares: the tokenizer's sequence and codebook (from the token manifest
    `tokens` if given, else from params), the classes, dropout."""
    drop = p["generator"]["dropout"]
    if tokens is None:
        geo = tokenizer_geometry.from_params(p).generator(num_classes)
    else:
        geo = tokenizer_geometry.generator_of_tokens(tokens, num_classes)
    return {
        **geo,
        "dropout": drop["residual"],
        "attn_dropout": drop["attention"],
        "token_dropout": drop["token"],
    }


def shape(s: dict) -> tuple[int, int, int]:
    """(width, depth, heads) of a params model entry: a named size of its arch, or explicit widths."""
    return SIZES[s["arch"]][s["size"]] if "size" in s else (s["width"], s["depth"], s["heads"])


def ctf_config(
    p: dict, stage: int, clusters: int, num_classes: int, scale: str | None = None, tokens: Mapping | None = None
) -> GeneratorConfig:
    """CTF's models (docs/papers/ctf.md §1.3-1.4). Stage 1: generator `scale`'s shape reading and predicting the K
    coarse labels, so it compares with the plain generator of that shape. Stage 2: the `ctf.stage2` shape,
    bidirectional, reading a whole coarse map (K input rows) and predicting codebook codes; it does not depend on
    a stage-1 scale, so one stage 2 serves them all (as the paper's one 343M model serves B, L and XL).
    `tokens`: as in `model_config`."""
    if stage == 1:
        if scale is None:
            raise ParamsError("CTF stage 1 takes the shape of a generator scale: give one")
        return dataclasses.replace(model_config(p, scale, num_classes, tokens), vocab_size=clusters)
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
        **geometry(p, num_classes, tokens),
    )
