"""`alitok <command>`: one subcommand per pipeline stage, each with explicit input and output paths.

Snakemake rules call exactly one subcommand each; the same commands run by hand. A command's arguments are
declared beside its `run()`, in the module named below (`add_arguments`, `main`); only the module of the command
given is imported, so `alitok --help` and the model code never pull in the workflow stack or torch.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from pathlib import Path

from alitok import joblog
from alitok.training.preemption import PREEMPTED, Preempted

log = logging.getLogger("alitok")

COMMANDS = {  # name: (module with add_arguments and main, help)
    "params": ("alitok.config", "print the resolved, validated params of a profile"),
    "make-dataset": ("alitok.data.synthetic", "generate the embedded dataset (ImageFolder tree of PNGs)"),
    "prepare-data": ("alitok.data.prepare", "scan an ImageFolder tree into manifests, listing bad images"),
    "export-digits": ("alitok.data.digits", "write scikit-learn's bundled digits as an ImageFolder tree (a real set)"),
    "train-classifier": ("alitok.classifier.train", "train the domain classifier (evaluation features only)"),
    "train-tokenizer": ("alitok.tokenizer.train", "train one tokenizer stage through its phases (resumable, DDP)"),
    "eval-tokenizer": ("alitok.tokenizer.evaluate", "held-out PSNR, SSIM, rFID and a reconstruction grid"),
    "compare-tokenizer-stages": (
        "alitok.tokenizer.compare",
        "does stage 2 beat stage 1 continued for the same steps? (held-out PSNR, rFID)",
    ),
    "extract-tokens": ("alitok.tokens.extract", "encode a split with the final tokenizer into uint16 token shards"),
    "train-generator": ("alitok.generator.train", "train the AR generator of one scale on tokens (resumable, DDP)"),
    "sample": ("alitok.generator.sample", "class-conditional samples of one generator: ADM archive and a grid"),
    "ctf-clusters": ("alitok.ctf.clusters", "CTF's coarse labels: k-means over the tokenizer's codebook (JSON)"),
    "ctf-redundancy": ("alitok.ctf.redundancy", "CTF's redundancy test: tokens swapped within cluster vs anywhere"),
    "evaluate": ("alitok.evaluation.samples", "FID, IS, precision/recall, class-consistency (and speed) of samples"),
    "sampling-sweep": ("alitok.evaluation.sweep", "gFID, IS, class-consistency of a generator per guidance setting"),
    "report": ("alitok.evaluation.report", "report.md and figures: our metrics with their context, beside the papers'"),
    "plan": ("alitok.plan", "what a profile costs: FLOPs, steps, GPU-hours at a stated MFU, disk, per stage"),
    "pull": ("alitok.sharing", "dvc pull, verify every file against dvc.lock, mark the results up to date"),
    "compare": ("alitok.tracking", "our gFID runs from MLflow beside the papers' published rows"),
    "import-tokenizer": ("alitok.tokenizer.release", "convert a released AliTok or LlamaGen tokenizer to this format"),
    "import-generator": ("alitok.generator.release", "convert a released AliTok or LlamaGen generator to this format"),
    "ablation-score": ("alitok.ablations.score", "sample and evaluate ablation units that share their trained models"),
    "ablation-report": ("alitok.ablations.report", "the ablation tables with seeds and verdicts, figures, claims"),
}


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors a user can fix: printed as one line naming the file or key, without a traceback."""
    from alitok.atomic import OutputError
    from alitok.config import ParamsError
    from alitok.ctf.clusters import CoarseMapError
    from alitok.data.imagefolder import DataError
    from alitok.sharing import SharingError
    from alitok.tokenizer.release import ReleaseError
    from alitok.tokens.store import TokenStoreError
    from alitok.training.checkpoint import CheckpointError

    return (ParamsError, OutputError, CheckpointError, FileNotFoundError, NotADirectoryError, DataError,
            ReleaseError, TokenStoreError, SharingError, CoarseMapError)  # fmt: skip


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (default: params.yaml)")
    p.add_argument("--profile", default=None, help="params profile (default: the file's `profile` key)")
    p.add_argument("--log", type=Path, default=None, help="also write the log to this file")
    p.add_argument("--mlflow-rule", default=None, help="Snakemake rule name: tags this job's MLflow child run")
    p.add_argument("--mlflow-wildcards", default=None, help="Snakemake wildcards: tag of this job's MLflow child run")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Every command listed; only `command`'s module imported, for its arguments."""
    parser = argparse.ArgumentParser(prog="alitok", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="<command>")
    for name, (module, help) in COMMANDS.items():
        p = sub.add_parser(name, help=help, description=help)
        if name == command:
            _common(p)
            importlib.import_module(module).add_arguments(p)
    return parser


def _params(args) -> dict:
    from alitok.ablations import units

    return units.load(args.params, args.profile)


def _setup_logging(log_file: Path | None) -> None:
    """Log lines on stderr, which goes to the console and to `log_file` (the rule's log): with warnings, progress
    and a failure's traceback (alitok/joblog.py)."""
    joblog.capture(log_file)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        handlers=[logging.StreamHandler(sys.stderr)],
        force=True,
    )


def _track(args, p: dict, status: str | None) -> None:
    """The job's records for its live MLflow child run (only under a pipeline's parent run): status None when it
    starts, then FINISHED or FAILED. A tracking failure is reported, never turned into a failed job whose outputs
    Snakemake would delete."""
    from alitok import tracking

    if not os.environ.get(tracking.PARENT_ENV) or args.command in ("params", "compare"):
        return
    try:
        tracking.job_started(args, p) if status is None else tracking.record_job(args, p, status)
    except Exception as e:  # noqa: BLE001 - any MLflow failure
        log.warning("MLflow: could not record this job (%s: %s); it runs on untracked", type(e).__name__, e)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command if command in COMMANDS else None).parse_args(argv)
    _setup_logging(args.log)
    try:
        p = _params(args)  # every command gets the resolved profile the same way, and reads what it declares
        _track(args, p, None)
        try:
            importlib.import_module(COMMANDS[args.command][0]).main(args, p)
        except Preempted as e:  # checkpointed on SIGTERM: the run reads KILLED, the exit status asks for a retry
            _track(args, p, "KILLED")
            print(f"alitok {args.command}: {e}", file=sys.stderr)
            return PREEMPTED
        except BaseException:  # the run reads FAILED; a SIGKILL leaves no record and reads KILLED
            _track(args, p, "FAILED")
            raise
        _track(args, p, "FINISHED")
    except _user_errors() as e:
        print(f"alitok {args.command}: error: {e}", file=sys.stderr)  # one line, no traceback; the log has it too
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
