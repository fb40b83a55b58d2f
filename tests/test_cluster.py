"""The SLURM profile dry-runs without SLURM installed, and every planned job asks for what params say."""

import re

import pytest
from test_workflow import _place_evaluation_files

from alitok import config

from conftest import edit_params, run
from fakes import make_fake_imagenet


def planned_jobs(stdout: str) -> list[dict]:
    """Each job of a dry run: its rule, resources and shell command."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", stdout)[1:]:
        rule = re.match(r"(?:local)?rule (\w+):", block).group(1)
        res = re.search(r"^\s+resources: (.*)$", block, re.M).group(1)
        resources = dict(kv.split("=", 1) for kv in res.split(", "))
        shell = re.search(r"^Shell command: (.*)$", block, re.M)
        jobs.append({"rule": rule, "resources": resources, "shell": shell.group(1) if shell else None})
    return jobs


@pytest.mark.parametrize("profile", ["imagenet256", "imagenet512"])
def test_slurm_profile_dry_runs_with_the_resources_params_give(project, tmp_path, profile):
    fake = tmp_path / "fake_imagenet"
    make_fake_imagenet(fake)
    edit_params(project, lambda d: d["profiles"]["imagenet256"]["data"].update(root=str(fake)))
    _place_evaluation_files(project, profile)
    proc = run(
        ["snakemake", "-n", "--workflow-profile", "workflow/profiles/slurm", "--config", f"profile={profile}"],
        cwd=project,
    )
    resources = config.load(project / "params.yaml", profile)["resources"]
    jobs = [j for j in planned_jobs(proc.stdout) if j["rule"] != "all"]
    assert {j["rule"] for j in jobs} >= {
        "prepare_data",
        "train_tokenizer_stage1",
        "train_tokenizer_stage2",
        "extract_tokens",
        "train_generator",
        "sample_generator",
        "evaluate_generator",
        "write_report",
        "ctf_clusters",
        "train_ctf_stage2",
    }
    for job in jobs:
        want = resources.get(job["rule"], resources["default"])
        for key, value in want.items():
            assert job["resources"][key] == str(value), (job["rule"], key)
        gpus = want["gpu"]
        launched_by_torchrun = job["shell"] is not None and job["shell"].startswith("torchrun ")
        assert launched_by_torchrun == (gpus > 1), job["rule"]
        if gpus > 1:
            assert f"--nproc-per-node {gpus} -m alitok " in job["shell"]
    assert any(j["rule"] == "train_generator" and j["resources"]["gpu"] == "8" for j in jobs)


def test_more_than_one_gpu_for_a_single_process_rule_is_refused(project):
    edit_params(
        project,
        lambda d: d["profiles"]["smoke"]["resources"].update(
            evaluate_generator={"gpu": 2, "mem_mb": 1000, "runtime": 5}
        ),
    )
    with pytest.raises(config.ParamsError, match="resources"):
        config.load(project / "params.yaml", "smoke")


def test_an_unknown_rule_in_resources_is_refused(project):
    edit_params(
        project,
        lambda d: d["profiles"]["smoke"]["resources"].update(train_genrator={"gpu": 1, "mem_mb": 1, "runtime": 1}),
    )
    with pytest.raises(config.ParamsError, match="train_genrator"):
        config.load(project / "params.yaml", "smoke")
