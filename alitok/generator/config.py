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
    return GeneratorConfig(arch=scales[scale]["arch"], width=width, depth=depth, heads=heads,
                           **geometry(p, num_classes))


def geometry(p: dict, num_classes: int) -> dict:
    """What every generator of a profile shares: the tokenizer's sequence and codebook, the classes, dropout."""
    drop, tok = p["generator"]["dropout"], tokenizer_config(p)
    return {"vocab_size": tok.codebook_size, "num_prefix": tok.num_prefix, "grid": tok.grid,
            "num_classes": num_classes, "dropout": drop["residual"], "attn_dropout": drop["attention"],
            "token_dropout": drop["token"]}


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
    return GeneratorConfig(arch=s["arch"], width=width, depth=depth, heads=heads, input_vocab=clusters, causal=False,
                           **geometry(p, num_classes))


def embedded_classes(p: dict) -> int | None:
    """Class count known from params alone (the embedded dataset); None for an ImageFolder tree."""
    return p["data"]["embedded"]["num_classes"] if p["data"]["source"] == "embedded" else None


SAMPLING_KEYS = ("guidance", "guidance_power", "sample_seed")


def training_section(p: dict, scale: str | None) -> dict:
    """What training reads, and so what identifies a training run (rerun trigger, resume hash): not the
    sampling section nor a scale's sampling fields, so resampling never retrains. Scale None: CTF's stage 2,
    whose shape and schedule are `ctf.stage2`."""
    g = p["generator"]
    model = {k: v for k, v in scale_params(p, scale).items() if scale is None or k not in SAMPLING_KEYS}
    return {k: g[k] for k in ("dropout", "optimizer", "training")} | {"scale": model}


def scale_params(p: dict, scale: str | None) -> dict:
    """A generator scale's shape and schedule; scale None: CTF's stage 2 (`ctf.stage2`)."""
    return p["ctf"]["stage2"] if scale is None else p["generator"]["scales"][scale]


CONTROLS = ("untrained", "shuffled_labels")  # evaluation controls: no training step, or labels permuted


def training_steps(p: dict, scale: str | None, control: str | None) -> int:
    """Steps a run trains: the scale's (or CTF stage 2's); none for the untrained control; the params share
    `evaluation.shuffled_labels_share` of them for the shuffled-label control, whose class-consistency sits at
    chance however long it trains (its labels carry no class), so it need not cost a whole training."""
    steps = scale_params(p, scale)["steps"]
    if control == "untrained":
        return 0
    if control == "shuffled_labels":
        return max(1, round(steps * p["evaluation"]["shuffled_labels_share"]))
    return steps


def parse_run(run: str) -> tuple[str, str, str | None]:
    """A generator run's name -> (kind, scale, control): "S", "S-shuffled_labels", "ctf-S" (CTF's stage 1 at
    scale S's shape). The names are folder names under generator/ and the rows of the report."""
    kind = "ctf" if run.startswith("ctf-") else "alitok"
    scale, _, control = run.removeprefix("ctf-").partition("-")
    return kind, scale, control or None


def generator_runs(p: dict) -> list[str]:
    """Every generator the pipeline trains and samples: the scales to run, their controls, then CTF's runs."""
    runs = list(p["generator"]["run"])
    runs += [f"{scale}-{c}" for scale in p["generator"]["run"] for c in p["evaluation"]["controls"]]
    if "release" not in p:  # released weights: nothing is trained, CTF included
        runs += [f"ctf-{scale}" for scale in p.get("ctf", {}).get("run", [])]
    return runs
