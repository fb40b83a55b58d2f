"""On a cluster every job points at one `mlflow server` (MLFLOW_TRACKING_URI), never at a shared sqlite file:
the parent run, the jobs' child runs and their artifacts all land in the server's store."""

import argparse
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from alitok import tracking


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    port = free_port()
    store = tmp_path / "server"
    store.mkdir()
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "mlflow"),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{store / 'mlflow.db'}",
            "--artifacts-destination",
            str(store / "artifacts"),
            "--workers",
            "1",
        ],
        cwd=store,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    uri = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(f"{uri}/health", timeout=2)
            break
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("mlflow server did not start")
            time.sleep(0.5)
    yield uri, store
    proc.terminate()
    proc.wait(timeout=30)


def test_pipeline_and_job_runs_go_to_one_mlflow_server(server, tmp_path, monkeypatch):
    uri, store = server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    paper = Path(__file__).resolve().parents[1] / "results" / "paper"
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "paper").symlink_to(paper)
    p = {"name": "tiny", "evaluation": {"batch": 8}}
    parent = tracking.start_pipeline(p, ["snakemake", "--workflow-profile", "workflow/profiles/slurm"])

    out = tmp_path / "evaluation.json"
    out.write_text(json.dumps({"fid": 12.5, "class_consistency": 0.4}))
    args = argparse.Namespace(command="evaluate", mlflow_rule="evaluate_generator", mlflow_wildcards="run=S", out=out)
    assert tracking.record_job(args, p) is not None  # what a job on a compute node writes (no MLflow call)
    tracking.end_pipeline(True)

    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("alitok-tiny")
    (child,) = client.search_runs([exp.experiment_id], f"tags.mlflow.parentRunId = '{parent}'")
    assert child.data.tags["rule"] == "evaluate_generator" and child.data.metrics["gfid"] == 12.5
    assert [a.path for a in client.list_artifacts(child.info.run_id)] == ["evaluation.json"]
    assert client.get_run(parent).info.status == "FINISHED"
    assert not (tmp_path / "mlflow.db").exists(), "nothing went to a local sqlite file"
    assert (store / "mlflow.db").is_file() and any((store / "artifacts").rglob("evaluation.json"))
