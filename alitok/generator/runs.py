"""Which generator runs a profile has and what each trains on: plain params in, names and numbers out.

Torch-free on purpose: the Snakefile calls these while it builds the DAG (rerun triggers, targets), and that must
not cost a torch import per invocation. The model configs built from the same params are in `config.py`.
"""

from __future__ import annotations

import copy


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


AT_CTF = "at_ctf"  # run-name suffix: a plain generator sampled at CTF's protocol


def parse_run(run: str) -> tuple[str, str, str | None, str]:
    """A generator run's name -> (kind, scale, control, sampling): "S", "S-shuffled_labels", "ctf-S" (CTF's stage
    1 at scale S's shape), "S-at_ctf" (plain S's model sampled at CTF's protocol: sampling "ctf", else "own").
    The names are folder names under generator/ and the rows of the report."""
    kind = "ctf" if run.startswith("ctf-") else "plain"
    scale, _, suffix = run.removeprefix("ctf-").partition("-")
    if suffix == AT_CTF:
        return kind, scale, None, "ctf"
    return kind, scale, suffix or None, "own"


def run_name(scale: str | None, control: str | None = None, ctf_stage: int | None = None) -> str:
    """A trained generator's run name, as parse_run reads it: "S", "S-untrained", "ctf-S" (CTF's stage 1); CTF's
    stage 2 (scale None), which has no run of its own, is "ctf stage 2"."""
    if ctf_stage == 2:
        return "ctf stage 2"
    if ctf_stage == 1:
        return f"ctf-{scale}"
    return f"{scale}-{control}" if control else str(scale)


def trained_run(run: str) -> str:
    """The run whose model.pt a run samples: its own, except a protocol-matched run's, which is its scale's."""
    kind, scale, _, sampling = parse_run(run)
    return scale if sampling == "ctf" else run


def at_ctf_protocol(p: dict, scale: str) -> dict:
    """Params under which plain `scale` samples as CTF's stage 1 does: ctf.sampling's guidance, schedule and tau1
    as temperature, no top-k or top-p (CTF's top-k is stage 2's). Its seed and labels stay the scale's, as CTF's."""
    q = copy.deepcopy(p)
    c = q["ctf"]["sampling"]
    q["generator"]["scales"][scale].update(guidance=c["guidance"], guidance_power=c["guidance_power"])
    q["generator"]["sampling"].update(temperature=c["tau1"], top_k=0, top_p=1.0)
    return q


def imports_tokenizer(p: dict) -> bool:
    """The tokenizer comes from a released file (params `release.tokenizer`), not from training."""
    return "release" in p


def imports_generators(p: dict) -> bool:
    """The generators come from released files (params `release.generators`): the profile trains nothing, so it
    reads no data either (release256, llamagen256). A profile that imports only its tokenizer (ctf256) trains
    its generators on that tokenizer's codes."""
    return bool(p.get("release", {}).get("generators"))


def tokenizer_final_stage(p: dict) -> int:
    """The stage whose checkpoint encodes the tokens and decodes samples: AliTok's stage 2; VQ-16 has one stage."""
    return 1 if p["tokenizer"].get("family", "alitok") == "vq16" else 2


def generator_runs(p: dict) -> list[str]:
    """Every generator the pipeline trains or samples: the scales to run, their controls, then CTF's runs and, with
    `ctf.matched_plain`, each of their plain scales sampled at CTF's protocol."""
    runs = list(p["generator"]["run"])
    runs += [f"{scale}-{c}" for scale in p["generator"]["run"] for c in p["evaluation"]["controls"]]
    if not imports_generators(p):  # released generators: nothing is trained, CTF included
        ctf = p.get("ctf", {})
        runs += [f"ctf-{scale}" for scale in ctf.get("run", [])]
        if ctf.get("matched_plain"):  # the row that differs from CTF's in the method only
            runs += [f"{scale}-{AT_CTF}" for scale in ctf["run"] if scale in p["generator"]["run"]]
    return runs
