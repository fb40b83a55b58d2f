"""Argument groups that several commands share, so each is worded once (the commands' own are beside their run())."""

from __future__ import annotations

import argparse
from pathlib import Path


def manifests(p: argparse.ArgumentParser, *splits: str) -> None:
    """The data-prep outputs a stage reads: manifests of the given splits and dataset.json."""
    helps = {"train": "train manifest (CSV)", "val": "held-out manifest (CSV)"}
    for split in splits:
        p.add_argument(f"--{split}", type=Path, required=True, help=helps[split])
    p.add_argument("--dataset", type=Path, required=True, help="dataset.json from prepare-data")


def training_outputs(p: argparse.ArgumentParser) -> None:
    """A resumable trainer's work folder, final checkpoint, per-step log and its curves."""
    p.add_argument("--work-dir", type=Path, required=True, help="in-progress checkpoints and log (resume from here)")
    p.add_argument("--out", type=Path, required=True, help="final checkpoint")
    p.add_argument("--log-out", type=Path, required=True, help="per-step training log (JSON lines)")
    p.add_argument("--curve-out", type=Path, help="training curves of that log (PNG)")


def ctf_pair(p: argparse.ArgumentParser, stage2_help: str = "CTF: stage-2 checkpoint (--generator is then stage 1)"):
    """CTF's sampling inputs: given together, or neither (`together`)."""
    p.add_argument("--ctf-stage2", type=Path, help=stage2_help)
    p.add_argument("--coarse-map", type=Path, help="CTF: the fine -> coarse map (ctf-clusters)")


def sampling_protocol(p: argparse.ArgumentParser) -> None:
    """A plain generator's samples at CTF's protocol (alitok.generator.runs.at_ctf_protocol), or at its own."""
    p.add_argument(
        "--protocol",
        choices=["own", "ctf"],
        default="own",
        help="ctf: sample the plain generator at ctf.sampling's guidance and tau1 (the protocol-matched row)",
    )


def reference(p: argparse.ArgumentParser, required: bool) -> None:
    """What evaluation compares samples with: the extractor, the reference's statistics cache, the reference split
    and dataset.json (required where the reference is always a split)."""
    p.add_argument(
        "--extractor-weights",
        type=Path,
        required=True,
        help="the domain classifier's model.pt, or the local Inception .pth (params evaluation)",
    )
    p.add_argument("--cache-dir", type=Path, required=True, help="reference statistics, keyed by content and weights")
    p.add_argument("--dataset", type=Path, required=required, help="dataset.json (split references, class count)")
    p.add_argument("--reference-manifest", type=Path, required=required, help="the reference split's manifest")


def together(args, a: str, b: str) -> None:
    """CTF's options come in pairs: one without the other would silently run the plain generator."""
    if (getattr(args, a) is None) != (getattr(args, b) is None):
        flags = " and ".join("--" + k.replace("_", "-") for k in (a, b))
        raise SystemExit(f"alitok {args.command}: {flags} go together (CTF), or neither")


def passed(args, *names: str, **renamed: str) -> dict:
    """Keyword arguments of a stage's run() from its parsed arguments: `names` as they are, `renamed` as
    run()'s name = the argument's."""
    return {n: getattr(args, n) for n in names} | {k: getattr(args, v) for k, v in renamed.items()}
