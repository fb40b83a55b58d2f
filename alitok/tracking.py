"""MLflow tracking without a second DAG: Snakemake runs the jobs, MLflow records them.

One parent run per real pipeline invocation (the Snakefile's `onstart`, which Snakemake skips on dry runs),
whose id reaches every job through ALITOK_MLFLOW_PARENT. Each `alitok` job (rank 0 only) leaves a small record
(rule, wildcards, the params it read as `alitok.reads` declares them, its output files) in ALITOK_MLFLOW_RECORDS,
with no MLflow import (5 s a job on 2 cores); when the invocation ends (`onsuccess`/`onerror`) the records become
child runs tagged with rule, wildcards, git commit, params profile and params hash, holding params, per-step
training metrics (the job's JSON-lines log), final metrics (its metrics JSON) and artifacts (PNG, JSON,
Markdown). Jobs run by hand, without a parent, record nothing. The papers' published numbers are loaded as runs
tagged `kind=paper` in the same experiment, so the UI shows a reproduction next to the paper's row.

The store is `sqlite:///mlflow.db` unless MLFLOW_TRACKING_URI says otherwise (MLflow 3.17 refuses ./mlruns).
Only the Snakemake process writes to it, so cluster jobs never race on the file; on a cluster, pointing
MLFLOW_TRACKING_URI at one `mlflow server` lets every user's invocation share it (docs/cluster.md).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("alitok.tracking")

PARENT_ENV = "ALITOK_MLFLOW_PARENT"
RECORDS_ENV = "ALITOK_MLFLOW_RECORDS"
DEFAULT_URI = "sqlite:///mlflow.db"
ARTIFACT_SUFFIXES = {".png", ".json", ".md"}


def _mlflow():
    import mlflow

    mlflow.set_tracking_uri(os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_URI))
    return mlflow


def experiment(profile: str) -> str:
    """The experiment of a params profile. With a local store, artifacts go next to it (never ./mlruns); with an
    `mlflow server` the server stores them, so compute nodes need no shared artifact folder."""
    mlflow = _mlflow()
    name = f"alitok-{profile}"
    exp = mlflow.get_experiment_by_name(name)
    if exp is None:
        served = mlflow.get_tracking_uri().startswith(("http://", "https://"))
        location = None if served else Path("mlartifacts").resolve().as_uri()
        return mlflow.create_experiment(name, artifact_location=location)
    return exp.experiment_id


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def params_hash(p: dict) -> str:
    return hashlib.sha256(json.dumps(p, sort_keys=True, default=str).encode()).hexdigest()[:16]


def flatten(d, prefix: str = "") -> dict:
    out = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(flatten(v, f"{prefix}{k}."))
    elif isinstance(d, list) and d and all(isinstance(x, dict) for x in d):
        for i, v in enumerate(d):
            out.update(flatten(v, f"{prefix}{v.get('name', i)}."))
    else:
        out[prefix.rstrip(".")] = d
    return out


def start_pipeline(p: dict, argv: list[str]) -> str:
    """The parent run of one Snakemake invocation; its id goes to the jobs through the environment."""
    mlflow = _mlflow()
    client = mlflow.MlflowClient()
    run = client.create_run(
        experiment(p["name"]),
        run_name=f"pipeline {p['name']}",
        tags={
            "kind": "pipeline",
            "profile": p["name"],
            "params_hash": params_hash(p),
            "git_commit": git_commit(),
            "command": " ".join(argv)[:4000],
        },
    )
    load_references(p["name"], Path("results/paper/published.csv"))
    os.environ[PARENT_ENV] = run.info.run_id
    records = Path(".snakemake/alitok-mlflow") / run.info.run_id
    records.mkdir(parents=True, exist_ok=True)
    os.environ[RECORDS_ENV] = str(records.resolve())
    log.info("MLflow parent run %s in %s", run.info.run_id, mlflow.get_tracking_uri())
    return run.info.run_id


def end_pipeline(ok: bool) -> None:
    """Child runs from the jobs' records, then the parent's status."""
    run_id = os.environ.get(PARENT_ENV)
    if not run_id:
        return
    records = Path(os.environ.get(RECORDS_ENV, ""))
    for f in sorted(records.glob("*.json"), key=lambda f: f.stat().st_mtime):
        child_run(run_id, json.loads(f.read_text()))
        f.unlink()
    _mlflow().MlflowClient().set_terminated(run_id, "FINISHED" if ok else "FAILED")


def _outputs(args) -> list[Path]:
    """Files a command wrote: every path argument named out*, log_out, curve_out (directories expanded)."""
    files = []
    for key, value in vars(args).items():
        if not (key.startswith("out") or key in ("log_out", "curve_out", "figure_dir")) or value is None:
            continue
        path = Path(value)
        files += sorted(f for f in path.iterdir() if f.is_file()) if path.is_dir() else [path]
    return [f for f in files if f.is_file()]


def _numbers(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, bool):
            continue
        if isinstance(v, (int, float)):
            out[f"{prefix}{k}"] = float(v)
        elif isinstance(v, dict) and not prefix:
            out.update(_numbers(v, f"{k}."))
    return out


def record_job(args, p: dict) -> Path | None:
    """The record of a finished job under a pipeline run (rank 0 only); it becomes a child run at the end."""
    parent, records = os.environ.get(PARENT_ENV), os.environ.get(RECORDS_ENV)
    if not parent or not records or int(os.environ.get("RANK", "0")) != 0:
        return None
    from alitok import reads

    params = flatten(reads.of_command(args.command, p, args))  # what the job read: its rerun trigger too
    record = {
        "tags": {
            "kind": "job",
            "rule": args.mlflow_rule or args.command,
            "wildcards": args.mlflow_wildcards or "",
            "command": args.command,
            "profile": p["name"],
            "params_hash": params_hash(p),
            "git_commit": git_commit(),
            **({"ablation_unit": f"{p['ablation']['unit']}/seed{p['ablation']['seed']}"} if "ablation" in p else {}),
            **({"setting": p["setting"]} if "setting" in p else {}),
        },
        "params": {k: str(v)[:6000] for k, v in params.items()},
        "outputs": [str(f.resolve()) for f in _outputs(args)],
    }
    name = hashlib.sha256(json.dumps(record["tags"], sort_keys=True).encode()).hexdigest()[:16]
    from alitok import atomic

    path = Path(records) / f"{name}.json"
    atomic.write_json(path, record)
    return path


def child_run(parent: str, record: dict) -> str:
    from mlflow.entities import Metric, Param

    client = _mlflow().MlflowClient()
    tags = {**record["tags"], "mlflow.parentRunId": parent}
    run = client.create_run(
        experiment(tags["profile"]), run_name=f"{tags['rule']} {tags['wildcards']}".strip(), tags=tags
    )
    rid = run.info.run_id
    items = [Param(k, v) for k, v in record["params"].items()]
    for i in range(0, len(items), 100):
        client.log_batch(rid, params=items[i : i + 100])
    metrics = []
    for f in map(Path, record["outputs"]):
        if not f.is_file():
            continue
        if f.suffix == ".jsonl":  # per-step training log
            for line in f.read_text().splitlines():
                r = json.loads(line)
                metrics += [Metric(k, v, 0, int(r["step"])) for k, v in _numbers(r).items() if k != "step"]
        elif f.suffix == ".json":
            data = json.loads(f.read_text())
            if isinstance(data, dict):
                metrics += [Metric(k, v, 0, 0) for k, v in _numbers(data).items()]
        if f.suffix in ARTIFACT_SUFFIXES:
            client.log_artifact(rid, str(f))
    for i in range(0, len(metrics), 1000):
        client.log_batch(rid, metrics=metrics[i : i + 1000])
    client.set_terminated(rid, "FINISHED")
    return rid


def load_references(profile: str, paper_csv: Path) -> int:
    """One run per (paper, table, model, setting) of the published numbers; already loaded rows are skipped."""
    import pandas as pd

    if not paper_csv.is_file():
        return 0
    mlflow = _mlflow()
    client = mlflow.MlflowClient()
    exp = experiment(profile)
    have = {r.data.tags.get("row_key") for r in client.search_runs([exp], "tags.kind = 'paper'", max_results=50000)}
    paper = pd.read_csv(paper_csv)
    added = 0
    for (name, version, table, model, setting), rows in paper.groupby(
        ["paper", "version", "table", "model", "setting"]
    ):
        key = f"{name}|{version}|{table}|{model}|{setting}"
        if key in have:
            continue
        first = rows.iloc[0]
        run = client.create_run(
            exp,
            run_name=f"paper: {name} {model} ({table}, {setting})",
            tags={
                "kind": "paper",
                "row_key": key,
                "paper": name,
                "version": version,
                "table": table,
                "model": model,
                "setting": setting,
                "source": first.source,
                "evidence": first.evidence,
            },
        )
        client.log_param(run.info.run_id, "params_m", first.params_m)
        for r in rows.itertuples():
            client.log_metric(run.info.run_id, r.metric, float(r.value))
        client.set_terminated(run.info.run_id, "FINISHED")
        added += 1
    return added


def compare(profile: str, metric: str = "fid") -> pd.DataFrame:
    """Our evaluation runs beside the papers' gFID rows, from MLflow (what `alitok compare` prints)."""
    import pandas as pd

    mlflow = _mlflow()
    client = mlflow.MlflowClient()
    exp = mlflow.get_experiment_by_name(f"alitok-{profile}")
    if exp is None:
        raise FileNotFoundError(
            f"no MLflow experiment alitok-{profile} in {mlflow.get_tracking_uri()}: run the "
            "pipeline first (or set MLFLOW_TRACKING_URI)"
        )
    rows = []
    for r in client.search_runs([exp.experiment_id], "tags.command = 'evaluate'", order_by=["start_time DESC"]):
        if metric in r.data.metrics:
            rows.append(
                {
                    "who": "ours",
                    "run": r.data.tags.get("wildcards") or r.data.tags.get("rule"),
                    "gfid": r.data.metrics[metric],
                    "class_consistency": r.data.metrics.get("class_consistency"),
                    "images_per_s": r.data.metrics.get("speed.images_per_s"),
                    "commit": r.data.tags.get("git_commit", "")[:8],
                    "source": r.info.run_id[:8],
                }
            )
    for r in client.search_runs([exp.experiment_id], "tags.kind = 'paper'"):
        if "gfid" in r.data.metrics:
            rows.append(
                {
                    "who": f"{r.data.tags['paper']} {r.data.tags['version']}",
                    "run": f"{r.data.tags['model']} ({r.data.tags['setting']})",
                    "gfid": r.data.metrics["gfid"],
                    "class_consistency": None,
                    "images_per_s": r.data.metrics.get("images_per_s"),
                    "commit": "",
                    "source": f"{r.data.tags['table']}; {r.data.tags['source']}",
                }
            )
    return pd.DataFrame(rows)


def add_arguments(parser) -> None:
    """`alitok compare` takes only the common options (--profile picks the experiment)."""


def main(args, p: dict) -> None:
    table = compare(p["name"])
    print(table.to_string(index=False) if len(table) else "no evaluation runs or paper rows recorded yet")
