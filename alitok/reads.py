"""What each command reads from params, declared once per command.

The same dict is a job's rerun trigger (the rule's `params: reads=`), the key of its resumable work (trainers
hash it with what their input files hold) and its MLflow params (`tracking.record_job`): the params a job reads
beyond what its input files carry, so a changed param reruns the jobs that read it and no other. A declaration
takes the job's own options by their command-line names (`scale`, `stage`, ...): the CLI hands them over from its
arguments, the rules from their wildcards. Torch-free: the Snakefile calls these while it builds the DAG.
"""

from __future__ import annotations

import inspect

from alitok.ablations.units import derive, points
from alitok.generator.runs import training_section, training_steps
from alitok.geometry import family

TOKENIZER_COMMON = ("quantizer", "loss", "perceptual", "discriminator", "optimizer", "training")


def data(p: dict) -> dict:
    return {"data": p["data"]}


def train_classifier(p: dict, section: str = "classifier") -> dict:
    """The domain classifier, or the smoke perceptual net: the same trainer on another section."""
    return {section: p.get(section)}


def train_tokenizer(p: dict, stage: int, phases_from: int | None = None) -> dict:
    """Stage 1 or 2, or stage 1 trained on with stage 2's phases (the control): the model and losses, that
    phase table, and stage 2's initialisation when it is stage 2. The model is AliTok's `model` section, or
    another family's own section and the family's name (VQ-16: `family`, `vq16`)."""
    tok = p["tokenizer"]
    fam = family(p)
    model = {"model": tok["model"]} if fam == "alitok" else {"family": fam, fam: tok[fam]}
    phases = f"stage{phases_from or stage}"
    init = {"stage2_init": tok["stage2_init"]} if stage == 2 else {}
    return {"tokenizer": model | {k: tok[k] for k in TOKENIZER_COMMON} | {phases: tok[phases]} | init}


def extract_tokens(p: dict) -> dict:
    return {"tokens": p["tokens"]}


def train_generator(p: dict, scale: str | None = None, control: str | None = None) -> dict:
    """Not the sampling section nor a scale's sampling fields: resampling never retrains. Scale None: CTF's
    stage 2 (`ctf.stage2`)."""
    return {"generator": training_section(p, scale), "steps": training_steps(p, scale, control)}


def sample(p: dict, scale: str, ctf_stage2=None, protocol: str = "own") -> dict:
    """CTF's runs (those sampled with a stage 2) and plain runs at CTF's protocol also read `ctf.sampling`."""
    s = {"sampling": p["generator"]["sampling"], "scale": p["generator"]["scales"][scale]}
    return s | ({"ctf": p["ctf"]["sampling"]} if ctf_stage2 or protocol == "ctf" else {})


def evaluate(p: dict) -> dict:
    return {"evaluation": p["evaluation"]}


def ctf_clusters(p: dict) -> dict:
    return {"clusters": p["ctf"]["clusters"]}


def ctf_redundancy(p: dict) -> dict:
    return {"seed": p["ctf"]["redundancy_seed"]}


def ablation_score(p: dict, units: list[str], seed: int) -> dict:
    """Each unit's sampling and evaluation settings (and a CTF point's `ctf` section) under its own params."""
    out = {}
    for unit in units:
        q = derive(p, unit, seed)
        out[unit] = {k: q[k] for k in ("generator", "evaluation", *(("ctf",) if unit in points(p) else ()))}
    return out


def ablation_report(p: dict) -> dict:
    return {"ablations": p["ablations"]}


def report(p: dict) -> dict:
    """The paper rows each run is set beside (`evaluation.paper`); every number comes from the manifest's files."""
    return {"paper": p["evaluation"].get("paper")}


def nothing(p: dict) -> dict:
    """Commands whose inputs are files only."""
    return {}


COMMANDS = {
    "make-dataset": data,
    "prepare-data": data,
    "train-classifier": train_classifier,
    "train-tokenizer": train_tokenizer,
    "extract-tokens": extract_tokens,
    "train-generator": train_generator,
    "sample": sample,
    "evaluate": evaluate,
    "ctf-clusters": ctf_clusters,
    "ctf-redundancy": ctf_redundancy,
    "ablation-score": ablation_score,
    "ablation-report": ablation_report,
    "report": report,
}


def of(command: str, p: dict, **options) -> dict:
    """What `command` reads from `p`, given the job's own options (a rule's call)."""
    return COMMANDS.get(command, nothing)(p, **options)


def of_command(command: str, p: dict, args) -> dict:
    """A CLI job's reads: the declaration's options taken from the parsed arguments of the same names."""
    names = list(inspect.signature(COMMANDS.get(command, nothing)).parameters)[1:]
    return of(command, p, **{n: getattr(args, n) for n in names if getattr(args, n, None) is not None})
