"""The report's inputs: a manifest of files by role (what the write_report rule passes), read into one object.

The manifest names every file the report reads; nothing is inferred from a path's name:

    {"runs": {"S": {"evaluation": "...S.json", "generator": "...S/model.pt", "log": "...S/log.jsonl"}, ...},
     "paper": "results/paper/published.csv",
     "real": "...real_val.json", "classifier": "...classifier/metrics.json",
     "tokenizer": {"stage1": {"metrics": "...stage1_metrics.json", "log": "...stage1_log.jsonl"}, ...},
     "comparison": "...stage_comparison.md",
     "ctf": {"map": "...coarse_map.json", "stage2": "...stage2/model.pt", "stage2_log": "...stage2/log.jsonl",
             "redundancy": "...redundancy.json"}}

"runs" (each with its "evaluation") and "paper" are required, everything else optional. The figures' links to the
sample grids and reconstructions are the files beside a run's checkpoint and a stage's metrics; the report links
them, never reads them. `collect` reads; it writes nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from alitok import plots

if TYPE_CHECKING:  # pandas only where the report is written: the Snakefile imports this module while it builds the DAG
    import pandas as pd

REQUIRED = ("runs", "paper")
SECTIONS = {  # each optional section's keys
    "runs": ("evaluation", "generator", "log"),
    "tokenizer": ("metrics", "log"),
    "ctf": ("map", "stage2", "stage2_log", "redundancy"),
}
FILES = ("paper", "real", "classifier", "comparison")  # top-level single files
SAMPLES_GRID = "samples_grid.png"  # beside a run's checkpoint (sample-generator writes it)


class ManifestError(ValueError):
    """A manifest the report cannot read: a missing or unknown key, named."""


@dataclass
class ReportData:
    """Everything the report shows, read from the manifest's files; `render` and `figures` need no files."""

    evaluations: dict[str, dict]  # run -> evaluate output, in the manifest's order
    paper: pd.DataFrame  # results/paper/published.csv
    logs: dict[str, list[dict]] = field(default_factory=dict)  # run -> generator training log (runs that have one)
    params: dict[str, int] = field(default_factory=dict)  # run -> generator parameters (CTF: both stages)
    real: dict | None = None  # the real held-out images' evaluation: floor and ceiling
    classifier: dict | None = None  # the evaluation classifier's metrics
    tokenizer: dict[str, dict] = field(default_factory=dict)  # stage -> eval-tokenizer metrics
    tokenizer_logs: dict[str, list[dict]] = field(default_factory=dict)  # stage -> training log (for the curves)
    comparison: Path | None = None  # stage_comparison.md (linked)
    comparison_verdict: str | None = None  # its first line about whether the claim holds
    ctf_map: dict | None = None  # CTF's coarse map
    ctf_stage2_log: list[dict] | None = None  # CTF's stage-2 training log
    ctf_redundancy: dict | None = None  # the swap measurement
    sample_grids: dict[str, Path] = field(default_factory=dict)  # run -> its samples grid (linked)
    recon_grids: dict[str, Path] = field(default_factory=dict)  # stage -> its reconstructions grid (linked)
    pairing: dict | None = None  # params `evaluation.paper`: the paper row each run is set beside (not a file)


def check(manifest: dict) -> dict:
    """The manifest itself, or ManifestError naming what is missing or unknown (a misspelt key is never ignored)."""
    if not isinstance(manifest, dict):
        raise ManifestError(f"the manifest is a JSON object, not {type(manifest).__name__}")
    unknown = set(manifest) - set(FILES) - set(SECTIONS)
    missing = [k for k in REQUIRED if k not in manifest]
    if unknown or missing:
        raise ManifestError(
            "report manifest: "
            + "; ".join(
                ([f"missing {', '.join(missing)}"] if missing else [])
                + ([f"unknown {', '.join(sorted(unknown))}"] if unknown else [])
            )
        )
    entries = [(f"runs.{r}", named) for r, named in manifest["runs"].items()]
    entries += [(f"tokenizer.{s}", named) for s, named in manifest.get("tokenizer", {}).items()]
    entries += [("ctf", manifest["ctf"])] if "ctf" in manifest else []
    for where, named in entries:
        allowed = SECTIONS[where.split(".")[0]]
        if bad := set(named) - set(allowed):
            raise ManifestError(f"report manifest: {where} has unknown {', '.join(sorted(bad))} (known: {allowed})")
    for run, named in manifest["runs"].items():
        if "evaluation" not in named:
            raise ManifestError(f"report manifest: runs.{run} has no evaluation")
    return manifest


def files(manifest: dict) -> list[str]:
    """Every file the manifest names, in its order: what the rule's input is (Snakemake waits for each)."""
    out = []
    for value in manifest.values():
        out += files(value) if isinstance(value, dict) else [str(value)]
    return out


def _load(path) -> dict:
    return json.loads(Path(path).read_text())


def param_count(checkpoint) -> int:
    import torch

    return sum(v.numel() for v in torch.load(checkpoint, map_location="cpu", weights_only=False)["model"].values())


def collect(manifest: dict) -> ReportData:
    """Read every file the manifest names (see the module docstring); nothing is written."""
    import pandas as pd

    check(manifest)
    runs, tok, ctf = manifest["runs"], manifest.get("tokenizer", {}), manifest.get("ctf", {})
    evals = {run: _load(f["evaluation"]) for run, f in runs.items()}
    params = {run: param_count(f["generator"]) for run, f in runs.items() if "generator" in f}
    stage2_params = param_count(ctf["stage2"]) if "stage2" in ctf else 0
    for run, m in evals.items():  # CTF's size is both stages'
        if m["protocol"].get("kind") == "ctf" and run in params:
            params[run] += stage2_params
    comparison = Path(manifest["comparison"]) if "comparison" in manifest else None
    verdict = None
    if comparison is not None:
        verdict = next((ln.strip() for ln in comparison.read_text().splitlines() if "hold" in ln.lower()), None)
    return ReportData(
        evaluations=evals,
        paper=pd.read_csv(manifest["paper"]),
        logs={run: plots.read_log(f["log"]) for run, f in runs.items() if "log" in f},
        params=params,
        real=_load(manifest["real"]) if "real" in manifest else None,
        classifier=_load(manifest["classifier"]) if "classifier" in manifest else None,
        tokenizer={stage: _load(f["metrics"]) for stage, f in tok.items() if "metrics" in f},
        tokenizer_logs={stage: plots.read_log(f["log"]) for stage, f in tok.items() if "log" in f},
        comparison=comparison,
        comparison_verdict=verdict,
        ctf_map=_load(ctf["map"]) if "map" in ctf else None,
        ctf_stage2_log=plots.read_log(ctf["stage2_log"]) if "stage2_log" in ctf else None,
        ctf_redundancy=_load(ctf["redundancy"]) if "redundancy" in ctf else None,
        sample_grids={run: Path(f["generator"]).parent / SAMPLES_GRID for run, f in runs.items() if "generator" in f},
        recon_grids={
            stage: Path(str(f["metrics"]).replace("_metrics.json", "_recon.png"))  # eval-tokenizer writes both
            for stage, f in tok.items()
            if "metrics" in f
        },
    )


def comparable(evaluation: dict) -> bool:
    """The paper's gFID is Inception features against the ADM ImageNet batch; only that is a like-for-like gap."""
    p = evaluation["protocol"]
    return p["extractor"] == "inception-v3-compat" and p["reference"]["kind"] == "adm_npz"


PAIRED_METRICS = (("gfid", "fid"), ("is", "is"), ("precision", "precision"), ("recall", "recall"))


def paired_rows(paper: pd.DataFrame, pairing: dict) -> dict[str, dict[str, float]]:
    """run -> {our metric key: the paper's value} from the rows `pairing` (params `evaluation.paper`) names: the
    quality table's FID, IS, precision and recall, and the speed table's images/s."""
    mine = paper[paper.paper == pairing["name"]]
    out = {}
    for run, model in pairing["rows"].items():
        rows = mine[mine.model == model]
        quality = rows[rows.table == pairing["quality"]].set_index("metric").value
        speed = rows[(rows.table == pairing["speed"]) & (rows.metric == "images_per_s")].value
        values = {ours: float(quality[theirs]) for theirs, ours in PAIRED_METRICS if theirs in quality.index}
        if len(speed):
            values["images_per_s"] = float(speed.iloc[0])
        out[run] = values
    return out


def paper_rows(paper: pd.DataFrame) -> pd.DataFrame:
    """The papers' main gFID rows (with guidance)."""
    main = paper[(paper.metric == "gfid") & (paper.setting == "w/ cfg")]
    return main[main.table.str.contains("main|release|Table 1")]
