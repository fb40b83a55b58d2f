"""MLflow runs are live: a job's run exists with its curve while the job trains, and ends with the job's status.

The watcher runs here as it runs in the Snakemake process (started by `start_pipeline`); the jobs are real
`alitok train-tokenizer` processes that see the parent run through the environment, as Snakemake's jobs do.
"""

import json
import os
import signal
import subprocess
import time

import pytest
import yaml

from alitok import tracking

from conftest import REPO, make_tiny_data, save_random_classifier, tiny_train_cmd, tool_env


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    ws = tmp_path_factory.mktemp("live")
    emb = make_tiny_data(ws, train_per_class=4, val_per_class=2)["data"]["embedded"]
    save_random_classifier(ws / "perceptual.pt", emb["num_classes"])
    doc = yaml.safe_load((REPO / "params.yaml").read_text())
    tok = doc["profiles"]["tiny"]["tokenizer"]
    tok["stage1"] = [dict(ph, steps=20) for ph in tok["stage1"]]  # 60 steps: long enough to be seen running
    tok["training"].update(checkpoint_every=10, log_every=1)
    (ws / "params.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return ws


@pytest.fixture
def pipeline(workspace, monkeypatch):
    """A parent run with its watcher, polling every 0.2 s; the store is the workspace's own sqlite file."""
    monkeypatch.chdir(workspace)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{workspace / 'mlflow.db'}")
    monkeypatch.setenv(tracking.POLL_ENV, "0.2")
    parent = tracking.start_pipeline({"name": "tiny"}, ["snakemake", "--cores", "2"])
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{workspace / 'mlflow.db'}")
    yield parent, client
    tracking.end_pipeline(False)
    for key in (tracking.PARENT_ENV, tracking.RECORDS_ENV):  # start_pipeline set them for the jobs it spawns
        os.environ.pop(key, None)


def _job(ws, name, parent, train=None):
    """`alitok train-tokenizer` under the parent run, as Snakemake starts it (the environment carries the run)."""
    files = (ws / name / "work", ws / name / "final.pt", ws / name / "log.jsonl")
    inputs = ["--train", train or ws / "data" / "train.csv", "--dataset", ws / "data" / "dataset.json"]
    cmd = tiny_train_cmd(
        "train-tokenizer", *files, "--stage", 1, *inputs, "--perceptual-net", ws / "perceptual.pt",
        "--mlflow-rule", "train_tokenizer_stage1", "--mlflow-wildcards", f"job={name}", params=ws / "params.yaml",
    )  # fmt: skip
    env = tool_env() | {
        tracking.PARENT_ENV: parent,
        tracking.RECORDS_ENV: os.environ[tracking.RECORDS_ENV],
        "MLFLOW_TRACKING_URI": f"sqlite:///{ws / 'mlflow.db'}",
    }
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _child(client, parent, name):
    exp = client.get_experiment_by_name("alitok-tiny")
    query = f"tags.mlflow.parentRunId = '{parent}' and tags.wildcards = 'job={name}'"
    runs = client.search_runs([exp.experiment_id], query)
    return runs[0] if runs else None


def _wait(condition, timeout=120.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail("timed out")


def test_a_training_job_is_live_then_finished(workspace, pipeline):
    parent, client = pipeline
    proc = _job(workspace, "live", parent)

    def running_with_curve():
        assert proc.poll() is None, "the job ended before its run was seen live"
        r = _child(client, parent, "live")
        if r is None or r.info.status != "RUNNING":
            return None
        return r if client.get_metric_history(r.info.run_id, "loss") else None

    seen = _wait(running_with_curve)  # while the job trains: RUNNING, with part of its curve and its params
    assert 1 <= len(client.get_metric_history(seen.info.run_id, "loss")) < 60
    assert seen.data.params and seen.data.tags["rule"] == "train_tokenizer_stage1"
    assert proc.wait(timeout=300) == 0
    done = _wait(lambda: (r := _child(client, parent, "live")) and r.info.status == "FINISHED" and r)
    history = client.get_metric_history(done.info.run_id, "loss")
    logged = [json.loads(line)["step"] for line in (workspace / "live" / "log.jsonl").read_text().splitlines()]
    assert sorted(m.step for m in history) == logged, "every logged step once: live, then the rest at the end"
    assert all(m.timestamp > 0 for m in history)
    assert done.info.end_time - done.info.start_time > 1000, "the run lasts as long as the job"
    assert done.data.tags["mlflow.source.git.commit"] == done.data.tags["git_commit"]
    assert client.get_experiment_by_name("alitok-tiny").tags["mlflow.experimentKind"] == "custom_model_development"


def test_a_killed_job_reads_killed_and_a_failing_one_failed(workspace, pipeline):
    parent, client = pipeline
    proc = _job(workspace, "killed", parent)
    _wait(lambda: (r := _child(client, parent, "killed")) and client.get_metric_history(r.info.run_id, "loss"))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    (workspace / "broken.csv").write_text("not a manifest\n")
    assert _job(workspace, "failed", parent, train=workspace / "broken.csv").wait(timeout=120) != 0
    failed = _wait(lambda: (r := _child(client, parent, "failed")) and r.info.status != "RUNNING" and r)
    assert failed.info.status == "FAILED"
    assert _child(client, parent, "killed").info.status == "RUNNING", "no record yet says how it ended"
    tracking.end_pipeline(False)  # the invocation ends: the job that left no end record was killed
    assert _child(client, parent, "killed").info.status == "KILLED"
    assert client.get_run(parent).info.status == "FAILED"


def test_compare_without_a_store_says_what_is_missing(tmp_path):
    """A colleague's clone after `dvc pull` has results but no runs: compare explains, and creates no empty store."""
    from conftest import run

    proc = run(["alitok", "compare", "--params", REPO / "params.yaml", "--profile", "tiny"], cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "no MLflow store at mlflow.db" in proc.stderr and "not shared" in proc.stderr
    assert not (tmp_path / "mlflow.db").exists()
