"""MLflow tracking without a second DAG: Snakemake runs the jobs, MLflow records them, live.

One parent run per real pipeline invocation (the Snakefile's `onstart`, which Snakemake skips on dry runs),
whose id reaches every job through ALITOK_MLFLOW_PARENT. Each `alitok` job (rank 0 only) writes small records in
ALITOK_MLFLOW_RECORDS, with no MLflow import (that costs 5 s a job on 2 cores): one when it starts (rule,
wildcards, the params it read as `alitok.reads` declares them, the JSON-lines log it appends to while it trains)
and one when it ends (its status, its output files). A watcher thread in the Snakemake process (`Watcher`) turns
them into child runs as they appear: a run is created when its job starts, receives the training curve while the
job writes it, and ends FINISHED or FAILED with the job, with its final metrics (the metrics JSON) and artifacts
(PNG, JSON, Markdown). A job that leaves no end record (killed) ends KILLED when the invocation ends. Runs carry
rule, wildcards, git commit (`mlflow.source.git.commit`), params profile and params hash. Jobs run by hand, without
a parent, record nothing. The papers' published numbers are loaded as runs tagged `kind=paper` in the same
experiment, under the metric names our evaluation runs use (`gfid`, `is`, `images_per_s`, param `params_m`), so
one chart holds a reproduction and the paper's row.

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
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("alitok.tracking")

PARENT_ENV = "ALITOK_MLFLOW_PARENT"
RECORDS_ENV = "ALITOK_MLFLOW_RECORDS"
POLL_ENV = "ALITOK_MLFLOW_POLL"  # seconds between the watcher's looks at the records (default 2)
DEFAULT_URI = "sqlite:///mlflow.db"
ARTIFACT_SUFFIXES = {".png", ".json", ".md"}
STARTED = ".start.json"  # a job's start record; its end record is <key>.json
# our evaluation metrics under the names the papers' rows use, so one MLflow chart holds both
SHARED_NAMES = {"fid": "gfid", "speed.images_per_s": "images_per_s"}
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}  # the UI opens on runs, not GenAI traces


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
        return mlflow.create_experiment(name, artifact_location=location, tags=EXPERIMENT_TAGS)
    if exp.tags.get("mlflow.experimentKind") is None:  # a store made before the tag existed
        for k, v in EXPERIMENT_TAGS.items():
            mlflow.MlflowClient().set_experiment_tag(exp.experiment_id, k, v)
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
            "git_commit": (commit := git_commit()),
            "mlflow.source.git.commit": commit,
            "command": " ".join(argv)[:4000],
        },
    )
    load_references(p["name"], Path("results/paper/published.csv"))
    os.environ[PARENT_ENV] = run.info.run_id
    records = Path(".snakemake/alitok-mlflow") / run.info.run_id
    records.mkdir(parents=True, exist_ok=True)
    os.environ[RECORDS_ENV] = str(records.resolve())
    log.info("MLflow parent run %s in %s", run.info.run_id, mlflow.get_tracking_uri())
    global _watcher
    _watcher = Watcher(run.info.run_id, records, float(os.environ.get(POLL_ENV, "2")))
    _watcher.start()
    return run.info.run_id


_watcher: Watcher | None = None


def end_pipeline(ok: bool) -> None:
    """The last records become runs; a job that never ended is KILLED; then the parent's status."""
    global _watcher
    run_id = os.environ.get(PARENT_ENV)
    if not run_id:
        return
    watcher = _watcher or Watcher(run_id, Path(os.environ.get(RECORDS_ENV, "")), 0)
    _watcher = None
    watcher.finish()
    _mlflow().MlflowClient().set_terminated(run_id, "FINISHED" if ok else "FAILED")


class Watcher(threading.Thread):
    """Turns the jobs' records into live child runs: one thread in the Snakemake process, the only MLflow writer,
    so cluster jobs never race on a sqlite file and pay no MLflow import."""

    def __init__(self, parent: str, records: Path, interval: float):
        super().__init__(name="alitok-mlflow", daemon=True)
        self.parent, self.records, self.interval = parent, records, interval
        self.open: dict[str, dict] = {}  # key -> {"run": id, "logs": {path: offset}, "steps": set}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            try:
                self.poll()
            except Exception as e:  # noqa: BLE001 - tracking never fails the workflow
                log.warning("MLflow watcher: %s: %s", type(e).__name__, e)

    def finish(self) -> None:
        """Stop polling, take in what is left, and end the runs whose jobs left no end record."""
        self.stop.set()
        if self.is_alive():
            self.join()
        self.poll()
        client = _mlflow().MlflowClient()
        for key, state in list(self.open.items()):
            self._tail(client, state)
            client.set_terminated(state["run"], "KILLED")
            (self.records / f"{key}{STARTED}").unlink(missing_ok=True)
            del self.open[key]

    def poll(self) -> None:
        client = _mlflow().MlflowClient()
        for f in sorted(self.records.glob(f"*{STARTED}"), key=lambda f: f.stat().st_mtime):
            key = f.name.removesuffix(STARTED)
            if key not in self.open:
                self.open[key] = _start_run(client, self.parent, json.loads(f.read_text()))
        for state in self.open.values():
            self._tail(client, state)
        ended = [f for f in self.records.glob("*.json") if not f.name.endswith(STARTED)]
        for f in sorted(ended, key=lambda f: f.stat().st_mtime):
            key, record = f.stem, json.loads(f.read_text())
            state = self.open.pop(key, None) or _start_run(client, self.parent, record)
            self._tail(client, state)
            _end_run(client, state, record)
            f.unlink()
            (self.records / f"{key}{STARTED}").unlink(missing_ok=True)

    @staticmethod
    def _tail(client, state: dict) -> None:
        """The complete lines a job appended to its training log since the last look, as metrics now."""
        from mlflow.entities import Metric

        now = _now_ms()
        metrics = []
        for path, offset in state["logs"].items():
            path = Path(path)
            if not path.is_file():  # not written yet
                continue
            if path.stat().st_size < offset:  # a resume cut the log back to its checkpoint: read it again
                offset = 0
            with open(path, "rb") as fh:
                fh.seek(offset)
                chunk = fh.read()
            done = chunk.rfind(b"\n") + 1  # a line still being written waits for the next look
            state["logs"][str(path)] = offset + done
            for line in chunk[:done].decode().splitlines():
                r = json.loads(line)
                if int(r["step"]) in state["steps"]:
                    continue
                state["steps"].add(int(r["step"]))
                metrics += [Metric(k, v, now, int(r["step"])) for k, v in _numbers(r).items() if k != "step"]
        _log_metrics(client, state["run"], metrics)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _log_metrics(client, run_id: str, metrics: list) -> None:
    for i in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[i : i + 1000])


def _start_run(client, parent: str, record: dict) -> dict:
    """A job's child run, RUNNING from the time its start record says, with the params the job read."""
    from mlflow.entities import Param

    tags = {**record["tags"], "mlflow.parentRunId": parent, "mlflow.source.git.commit": record["tags"]["git_commit"]}
    run = client.create_run(
        experiment(tags["profile"]),
        run_name=f"{tags['rule']} {tags['wildcards']}".strip(),
        tags=tags,
        start_time=record.get("start_ms"),
    )
    rid = run.info.run_id
    items = [Param(k, v) for k, v in record["params"].items()]
    for i in range(0, len(items), 100):
        client.log_batch(rid, params=items[i : i + 100])
    return {"run": rid, "logs": {p: 0 for p in record.get("live_logs", [])}, "steps": set()}


def _end_run(client, state: dict, record: dict) -> None:
    """The job's outputs (the steps its live log did not already give, final metrics, artifacts) and its status."""
    from mlflow.entities import Metric, Param

    rid, end = state["run"], record.get("end_ms") or _now_ms()
    metrics = []
    for f in map(Path, record.get("outputs", [])):
        if not f.is_file():
            continue
        if f.suffix == ".jsonl":  # per-step training log: the steps not seen live
            for line in f.read_text().splitlines():
                r = json.loads(line)
                if int(r["step"]) not in state["steps"]:
                    metrics += [Metric(k, v, end, int(r["step"])) for k, v in _numbers(r).items() if k != "step"]
        elif f.suffix == ".json":
            data = json.loads(f.read_text())
            if isinstance(data, dict):
                metrics += [Metric(SHARED_NAMES.get(k, k), v, end, 0) for k, v in _numbers(data).items()]
        if f.suffix in ARTIFACT_SUFFIXES:
            client.log_artifact(rid, str(f))
    if "params_m" in record:
        client.log_batch(rid, params=[Param("params_m", str(record["params_m"]))])
    _log_metrics(client, rid, metrics)
    client.set_terminated(rid, record.get("status", "FINISHED"), end_time=end)


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


def _job_record(args, p: dict) -> tuple[Path, dict] | None:
    """Where a job's records go and what they share (tags, params), or None outside a pipeline run (or off rank 0)."""
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
    }
    key = hashlib.sha256(json.dumps(record["tags"], sort_keys=True).encode()).hexdigest()[:16]
    return Path(records) / key, record


def job_started(args, p: dict) -> Path | None:
    """The start record (rank 0 only): the watcher opens the job's run from it and follows its training log."""
    found = _job_record(args, p)
    if found is None:
        return None
    from alitok import atomic

    base, record = found
    work = getattr(args, "work_dir", None)
    record |= {"start_ms": _now_ms(), "live_logs": [str((Path(work) / "log.jsonl").resolve())] if work else []}
    path = base.with_name(base.name + STARTED)
    atomic.write_json(path, record)
    return path


def record_job(args, p: dict, status: str = "FINISHED") -> Path | None:
    """The end record (rank 0 only): the job's status and, when it finished, its output files (and an evaluated
    generator's size, `params_m`, as the papers' rows give it)."""
    found = _job_record(args, p)
    if found is None:
        return None
    from alitok import atomic

    base, record = found
    record |= {"status": status, "end_ms": _now_ms()}
    if status == "FINISHED":
        record["outputs"] = [str(f.resolve()) for f in _outputs(args)]
        if args.command == "evaluate" and getattr(args, "generator", None):
            from alitok.evaluation.report_data import param_count

            models = [args.generator, getattr(args, "ctf_stage2", None)]  # CTF's size is both stages'
            record["params_m"] = round(sum(param_count(m) for m in models if m) / 1e6, 3)
    path = base.with_name(base.name + ".json")
    atomic.write_json(path, record)
    return path


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


def compare(profile: str, metric: str = "gfid") -> pd.DataFrame:
    """Our evaluation runs beside the papers' gFID rows, from MLflow (what `alitok compare` prints)."""
    import pandas as pd

    uri = os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_URI)
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise FileNotFoundError(
            f"no MLflow store at {uri.removeprefix('sqlite:///')}: runs are recorded by the pipeline on the machine "
            "that ran it and are not shared through DVC. Run `snakemake` here (pulled results are not recomputed), "
            "or point MLFLOW_TRACKING_URI at the team's `mlflow server` (docs/cluster.md)"
        )
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
                    "images_per_s": r.data.metrics.get("images_per_s"),
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
