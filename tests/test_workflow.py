"""Snakemake runs the DAG: every params profile dry-runs, the tiny pipeline runs for real."""

import json
import time

import pytest

from conftest import edit_params, run
from fakes import make_fake_imagenet

PROFILES = ["tiny", "smoke", "imagenet256", "imagenet512"]


def _jobs(stdout: str) -> dict:
    """The 'Job stats' table of a dry run, as {rule: count}."""
    lines = stdout.split("Job stats:")[1].splitlines()
    jobs = {}
    for line in lines[3:]:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        jobs[parts[0]] = int(parts[1])
    return jobs


@pytest.mark.parametrize("profile", PROFILES)
def test_every_params_profile_dry_runs(project, tmp_path, profile):
    if profile.startswith("imagenet"):
        fake = tmp_path / "fake_imagenet"
        make_fake_imagenet(fake)
        edit_params(project, lambda d: d["profiles"]["imagenet256"]["data"].update(root=str(fake)))
    proc = run(["snakemake", "-n", "--config", f"profile={profile}"], cwd=project)
    jobs = _jobs(proc.stdout)
    assert jobs["prepare_data"] == 1
    if profile in ("tiny", "smoke"):
        assert jobs["make_dataset"] == 1 and jobs["train_classifier"] == 1
    else:
        assert "make_dataset" not in jobs and "train_classifier" not in jobs
    assert f"results/{profile}/" in proc.stdout
    assert not (project / "results").exists(), "a dry run writes nothing"


def test_missing_imagenet_root_is_a_clear_error(project):
    proc = run(["snakemake", "-n", "--config", "profile=imagenet256"], cwd=project, check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "data.root = data/imagenet is not a directory" in out and "train/<wnid>" in out


def test_tiny_pipeline_runs_and_then_has_nothing_to_do(project):
    run(["snakemake", "--cores", "2", "--config", "profile=tiny"], cwd=project)
    out = project / "results" / "tiny"
    info = json.loads((out / "data" / "dataset.json").read_text())
    assert len(info["classes"]) == 10 and info["counts"] == {"train": 240, "val": 60}
    metrics = json.loads((out / "classifier" / "metrics.json").read_text())
    assert 0.0 <= metrics["val_accuracy"] <= 1.0
    for name in ["model.pt", "curve.png", "confusion.png"]:
        assert (out / "classifier" / name).stat().st_size > 0
    assert (project / "logs" / "tiny" / "prepare_data.log").read_text()
    again = run(["snakemake", "-n", "--config", "profile=tiny"], cwd=project)
    assert "Nothing to be done" in again.stdout + again.stderr

    # A classifier-only param change reruns the classifier, not data generation or prep.
    edit_params(project, lambda d: d["profiles"]["tiny"]["classifier"].update(epochs=3))
    jobs = _jobs(run(["snakemake", "-n", "--config", "profile=tiny"], cwd=project).stdout)
    assert jobs.get("train_classifier") == 1
    assert "make_dataset" not in jobs and "prepare_data" not in jobs


@pytest.mark.slow
def test_smoke_data_and_classifier_within_budget(project):
    """The README's first command: the embedded default pipeline (today: data + domain classifier)."""
    start = time.monotonic()
    run(["snakemake", "--cores", "2"], cwd=project)
    seconds = time.monotonic() - start
    out = project / "results" / "smoke"
    info = json.loads((out / "data" / "dataset.json").read_text())
    report = json.loads((out / "data" / "report.json").read_text())
    metrics = json.loads((out / "classifier" / "metrics.json").read_text())
    assert len(info["classes"]) >= 10 and report["bad_images"] == []
    assert metrics["val_accuracy"] >= 0.95, metrics["val_accuracy"]
    assert seconds < 180, f"smoke data + classifier took {seconds:.0f} s (budget 180 s on 2 cores)"
