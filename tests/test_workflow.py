"""Snakemake runs the DAG: every params profile dry-runs, the tiny pipeline runs for real."""

import json

import numpy as np
import pytest

from conftest import edit_params, run
from fakes import make_fake_imagenet

from alitok import config

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
    runs = {"tiny": ["S"], "smoke": ["S"], "imagenet256": ["B", "L", "XL"], "imagenet512": ["L"]}[profile]
    assert jobs["train_generator"] == jobs["sample_generator"] == len(runs)
    for scale in ("S", "B", "L", "XL"):
        assert (f"generator/{scale}/model.pt" in proc.stdout) == (scale in runs)
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
    for variant in ("stage1", "stage2", "stage1_continued"):
        assert (out / "tokenizer" / f"{variant}.pt").stat().st_size > 0
        assert (out / "tokenizer" / f"{variant}_recon.png").stat().st_size > 0
        assert (out / "tokenizer" / f"{variant}_curve.png").stat().st_size > 0
        m = json.loads((out / "tokenizer" / f"{variant}_metrics.json").read_text())
        assert m["stage"] in (1, 2) and 0 <= m["recon_class_accuracy"] <= 1
    assert "| stage 2 |" in (out / "tokenizer" / "stage_comparison.md").read_text()
    train_tokens = json.loads((out / "tokens" / "train" / "manifest.json").read_text())
    assert train_tokens["crops"] == 10 and train_tokens["images"] == 240
    assert json.loads((out / "tokens" / "val" / "manifest.json").read_text())["crops"] == 1
    assert len((out / "generator" / "S" / "log.jsonl").read_text().splitlines()) > 0
    with np.load(out / "generator" / "S" / "samples.npz") as z:
        assert z["arr_0"].shape == (20, 32, 32, 3) and z["arr_1"].shape == (20,)
    assert (out / "generator" / "S" / "samples_grid.png").stat().st_size > 0
    assert (out / "generator" / "S" / "curve.png").stat().st_size > 0
    again = run(["snakemake", "-n", "--config", "profile=tiny"], cwd=project)
    assert "Nothing to be done" in again.stdout + again.stderr

    # A classifier-only param change reruns the classifier, not data generation or prep.
    edit_params(project, lambda d: d["profiles"]["tiny"]["classifier"].update(epochs=3))
    jobs = _jobs(run(["snakemake", "-n", "--config", "profile=tiny"], cwd=project).stdout)
    assert jobs.get("train_classifier") == 1
    assert "make_dataset" not in jobs and "prepare_data" not in jobs and "train_tokenizer_stage1" not in jobs

    # A stage-2 phase change retrains stage 2 and the control, never stage 1.
    edit_params(project, lambda d: d["profiles"]["tiny"]["tokenizer"]["stage2"][0].update(steps=3))
    jobs = _jobs(run(["snakemake", "-n", "--config", "profile=tiny"], cwd=project).stdout)
    assert jobs.get("train_tokenizer_stage2") == 1 and jobs.get("train_tokenizer_stage1_continued") == 1
    assert "train_tokenizer_stage1" not in jobs

    # A sampling change resamples; a generator optimizer change retrains the generator; neither re-extracts.
    edit_params(project, lambda d: d["profiles"]["tiny"]["tokenizer"]["stage2"][0].update(steps=2))  # undo
    edit_params(project, lambda d: d["profiles"]["tiny"]["generator"]["sampling"].update(batch=4))
    jobs = _jobs(run(["snakemake", "-n", "--config", "profile=tiny"], cwd=project).stdout)
    assert jobs.get("sample_generator") == 1 and "train_generator" not in jobs and "extract_tokens" not in jobs
    edit_params(project, lambda d: d["profiles"]["tiny"]["generator"].setdefault("optimizer", {}).update(lr=5e-4))
    jobs = _jobs(run(["snakemake", "-n", "--config", "profile=tiny"], cwd=project).stdout)
    assert jobs.get("train_generator") == 1 and jobs.get("sample_generator") == 1 and "extract_tokens" not in jobs


def _seconds(benchmark_tsv) -> float:
    """Wall seconds of one job, from the `benchmark:` file Snakemake wrote for it."""
    header, values = benchmark_tsv.read_text().splitlines()[:2]
    return float(dict(zip(header.split("\t"), values.split("\t")))["s"])


@pytest.mark.slow
def test_smoke_pipeline(project):
    """The README's first command: the embedded default pipeline, as far as it goes today."""
    run(["snakemake", "--cores", "2"], cwd=project, timeout=3000)  # ~16 min on 2 cores
    out = project / "results" / "smoke"
    info = json.loads((out / "data" / "dataset.json").read_text())
    report = json.loads((out / "data" / "report.json").read_text())
    metrics = json.loads((out / "classifier" / "metrics.json").read_text())
    assert len(info["classes"]) >= 10 and report["bad_images"] == []
    assert metrics["val_accuracy"] >= 0.95, metrics["val_accuracy"]
    data_and_classifier = sum(_seconds(out / "benchmarks" / f"{r}.tsv")
                              for r in ("make_dataset", "prepare_data", "train_classifier"))
    assert data_and_classifier < 180, f"smoke data + classifier took {data_and_classifier:.0f} s (budget 180 s)"
    for variant in ("stage1", "stage2", "stage1_continued"):
        m = json.loads((out / "tokenizer" / f"{variant}_metrics.json").read_text())
        assert m["num_images"] == len(json.loads((out / "data" / "dataset.json").read_text())["classes"]) * 60
        assert m["psnr"] > 0 and m["rfid"] >= 0 and 0 <= m["recon_class_accuracy"] <= 1
        assert (out / "tokenizer" / f"{variant}_curve.png").stat().st_size > 0
    assert "stage 1 continued (control)" in (out / "tokenizer" / "stage_comparison.md").read_text()
    log = [json.loads(line) for line in (out / "generator" / "S" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["val_loss"] < log[0]["loss"]  # held-out next-token loss fell during training
    with np.load(out / "generator" / "S" / "samples.npz") as z:
        size = config.load(project / "params.yaml", "smoke")["data"]["image_size"]
        assert z["arr_0"].shape[1:] == (size, size, 3) and len(z["arr_0"]) == len(z["arr_1"])
