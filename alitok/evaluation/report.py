"""`alitok report`: results/<params profile>/report.md, its figures, and what DVC compares (metrics.json, curves).

Three steps, each usable alone: `collect` reads the files a manifest names (report_data), `render` turns them into
markdown (report_render, pure), `figures` draws them (report_figures); `write_metrics` writes metrics.json and the
curves folder (summary). `run` does all four; report.md is written last, so a killed job leaves no new report
beside old figures.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from alitok import atomic
from alitok.evaluation import summary
from alitok.evaluation.report_data import ManifestError, ReportData, check, collect, comparable, files, paper_rows
from alitok.evaluation.report_figures import FIGURES, figures
from alitok.evaluation.report_render import CC_GOAL, ctf_pairs, render, verdicts

__all__ = [
    "CC_GOAL",
    "FIGURES",
    "ManifestError",
    "ReportData",
    "add_arguments",
    "check",
    "collect",
    "comparable",
    "ctf_pairs",
    "figures",
    "files",
    "main",
    "manifest_arg",
    "paper_rows",
    "render",
    "run",
    "verdicts",
    "write_metrics",
]

log = logging.getLogger(__name__)


def write_metrics(data: ReportData, metrics_out, curves_dir) -> None:
    """metrics.json (`dvc metrics`) and one curve file per training log and kind (`dvc plots`)."""
    curve_logs = {f"generator_{run}": records for run, records in data.logs.items()}
    curve_logs |= {f"tokenizer_{stage}": records for stage, records in data.tokenizer_logs.items()}
    if data.ctf_stage2_log is not None:
        curve_logs["ctf_stage2"] = data.ctf_stage2_log
    summary.write(
        metrics_out,
        curves_dir,
        summary.metrics(
            evaluations=data.evaluations,
            generator_logs=data.logs,
            real=data.real,
            tokenizer=data.tokenizer,
            classifier=data.classifier,
            ctf={
                "coarse_map": data.ctf_map,
                "stage2_log": data.ctf_stage2_log or [],
                "redundancy": data.ctf_redundancy,
            },
        ),
        summary.curves(curve_logs),
    )


def run(manifest: dict, *, out, fig_dir, metrics_out=None, curves_dir=None, pairing: dict | None = None) -> ReportData:
    """Collect, draw, write metrics.json and the curves (when metrics_out is given), then report.md. `pairing`:
    params `evaluation.paper`, the paper row each run is set beside."""
    data = collect(manifest)
    data.pairing = pairing
    figures(data, fig_dir)
    if metrics_out is not None:
        write_metrics(data, metrics_out, curves_dir)
    atomic.write_text(out, render(data, out=out, fig_dir=fig_dir))
    return data


def manifest_arg(value: str) -> dict:
    """--manifest: the JSON text itself (what the rule passes), or the path of a JSON file (by hand)."""
    try:
        text = value if value.lstrip().startswith("{") else Path(value).read_text()
        manifest = json.loads(text)
    except (OSError, ValueError) as e:
        raise argparse.ArgumentTypeError(f"not a JSON object or a readable JSON file: {e}") from None
    try:
        return check(manifest)
    except ManifestError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--manifest",
        type=manifest_arg,
        required=True,
        help="the input files by role, as JSON text or a JSON file: runs, paper, real, classifier, tokenizer, "
        "comparison, ctf (alitok/evaluation/report_data.py)",
    )
    parser.add_argument("--out", type=Path, required=True, help="report.md")
    parser.add_argument("--figure-dir", type=Path, required=True, help="where the figures go")
    parser.add_argument("--metrics-out", type=Path, required=True, help="metrics.json that DVC compares")
    parser.add_argument("--curves-dir", type=Path, required=True, help="folder of loss curves that `dvc plots` draws")


def main(args: argparse.Namespace, p: dict) -> None:
    """`alitok report`: every number comes from the manifest's files; params say only which paper row each run is
    set beside (alitok.reads.report)."""
    run(
        args.manifest,
        out=args.out,
        fig_dir=args.figure_dir,
        metrics_out=args.metrics_out,
        curves_dir=args.curves_dir,
        pairing=p["evaluation"].get("paper"),
    )
    log.info("report written to %s", args.out)
