"""DVC wraps the Snakemake pipeline as one coarse stage: `dvc repro` runs it, metrics are readable."""

import json
import shutil

import pytest

from conftest import REPO, edit_params, run


@pytest.fixture
def dvc_project(project):
    shutil.copy(REPO / "dvc.yaml", project)
    shutil.copy(REPO / ".dvcignore", project)
    shutil.copytree(REPO / "alitok", project / "alitok", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    run(["git", "init", "-q"], cwd=project)
    run(["dvc", "init", "-q"], cwd=project)
    run(["dvc", "config", "core.analytics", "false"], cwd=project)
    edit_params(project, lambda d: d.update(profile="tiny"))
    return project


def test_dvc_repro_runs_snakemake_for_the_selected_profile(dvc_project):
    run(["dvc", "repro", "-q"], cwd=dvc_project)
    assert (dvc_project / "results" / "tiny" / "classifier" / "model.pt").is_file()
    metrics = json.loads(run(["dvc", "metrics", "show", "--json"], cwd=dvc_project).stdout)
    flat = json.dumps(metrics)
    assert "val_accuracy" in flat and "results/tiny/classifier/metrics.json" in flat
    status = run(["dvc", "status"], cwd=dvc_project).stdout
    assert "up to date" in status.lower()
