"""Snakemake runs the DAG: every params profile dry-runs, the tiny pipeline runs for real."""

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from alitok import config

from conftest import REPO, dry_run_jobs, edit_params, run, tool_env
from fakes import make_fake_imagenet

PROFILES = ["tiny", "smoke", "imagenet256", "imagenet512"]  # and the released weights' profiles, below
RELEASES = {  # profile: the released file a missing weight is named by, and one generator's import command
    "release256": ("AliTok.pth", " weights/alitok_l.bin --out results/release256/generator/Lg55/model.pt --size L"),
    "llamagen256": ("vq_ds16_c2i.pt", " weights/c2i_L_256.pt --out results/llamagen256/generator/L/model.pt --size L"),
}


@pytest.mark.parametrize("profile", PROFILES)
def test_every_params_profile_dry_runs(project, tmp_path, profile):
    if profile.startswith("imagenet"):
        fake = tmp_path / "fake_imagenet"
        make_fake_imagenet(fake)
        edit_params(project, lambda d: d["profiles"]["imagenet256"]["data"].update(root=str(fake)))
        _place_evaluation_files(project, profile)
    proc = run(["snakemake", "-n", "--config", f"profile={profile}"], cwd=project)
    jobs = dry_run_jobs(proc.stdout)
    assert jobs["prepare_data"] == 1
    if profile in ("tiny", "smoke"):
        assert jobs["make_dataset"] == 1 and jobs["train_classifier"] == 1
    else:
        assert "make_dataset" not in jobs and "train_classifier" not in jobs
    assert f"results/{profile}/" in proc.stdout
    runs = {"tiny": ["S"], "smoke": ["S"], "imagenet256": ["B", "L", "XL"], "imagenet512": ["L"]}[profile]
    controls = 2 if profile in ("tiny", "smoke") else 0  # untrained, shuffled labels
    c = config.load(project / "params.yaml", profile)["ctf"]
    ctf = c["run"]  # CTF's stage 1, beside each plain scale
    matched = [s for s in ctf if c["matched_plain"]]  # the plain scale at CTF's protocol: sampled, not trained
    assert jobs["train_generator"] == len(runs) * (1 + controls) + len(ctf)
    assert (
        jobs["sample_generator"] == jobs["evaluate_generator"] == len(runs) * (1 + controls) + len(ctf) + len(matched)
    )
    assert (profile == "imagenet256") == (matched == ["B", "L", "XL"])
    for scale in matched:  # sampled from the plain scale's model, at CTF's protocol
        block = next(b for b in proc.stdout.split("\nrule ") if f"generator/{scale}-at_ctf/samples.npz" in b)
        assert block.startswith("sample_generator") and f"generator/{scale}/model.pt" in block
    assert jobs["ctf_clusters"] == jobs["train_ctf_stage2"] == 1  # one map and one stage 2 serve every stage 1
    assert jobs.get("ctf_redundancy") == (1 if controls else None)  # rFID with the domain classifier: embedded data
    assert all(f"generator/ctf-{scale}/model.pt" in proc.stdout for scale in ctf)
    assert jobs.get("evaluate_real") == (1 if controls else None)  # floor and ceiling: embedded data only
    for scale in ("S", "B", "L", "XL"):
        assert (f"generator/{scale}/model.pt" in proc.stdout) == (scale in runs)
        assert (f"generator/{scale}-shuffled_labels/model.pt" in proc.stdout) == (scale in runs and controls > 0)
    assert not (project / "results" / profile).exists(), "a dry run writes nothing"
    assert not (project / "mlflow.db").exists(), "a dry run opens no MLflow run"


def test_torch_jobs_take_their_core_share(project):
    """Snakemake sets OMP_NUM_THREADS to a job's threads (1 for a rule that declares none), and each torch rule asks
    for its params `core_share` of --cores: on 4 cores the tiny profile's jobs take 2 threads, two at a time, and
    the tokenizer's stages 1 and 2, alone on the critical path, take all 4."""
    out = run(["snakemake", "-n", "--cores", "4", "--config", "profile=tiny"], cwd=project).stdout
    threads = {}
    for block in out.split("\nrule ")[1:]:
        rule = block.split(":")[0]
        line = next((ln for ln in block.splitlines() if ln.strip().startswith("threads:")), "threads: 1")
        threads[rule] = int(line.split(":")[1])
    torch_rules = [r for r in threads if r.startswith(("train_", "eval_", "sample_", "extract_"))]
    assert {"train_classifier", "train_tokenizer_stage1", "train_generator", "sample_generator"} <= set(torch_rules)
    whole = {"train_tokenizer_stage1", "train_tokenizer_stage2"}
    assert {r: threads[r] for r in torch_rules} == {r: 4 if r in whole else 2 for r in torch_rules}


@pytest.mark.parametrize("profile", RELEASES)
def test_release_profile_samples_and_evaluates_without_training(project, profile):
    """release256 (AliTok's weights), llamagen256 (LlamaGen's VQ-16 and GPTs): the released tokenizer and
    generators are imported, sampled, evaluated; nothing is trained and no dataset is read (none is present here).
    A missing weight file is named with what to put there."""
    _place_evaluation_files(project, profile)
    proc = run(["snakemake", "-n", "--config", f"profile={profile}"], cwd=project, check=False)
    p = config.load(project / "params.yaml", profile)
    missing = f"release.tokenizer = {p['release']['tokenizer']} does not exist. Put"
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and missing in out and RELEASES[profile][0] in out
    for path in [p["release"]["tokenizer"], *p["release"]["generators"].values()]:
        (project / path).parent.mkdir(parents=True, exist_ok=True)
        (project / path).touch()
    proc = run(["snakemake", "-n", "-p", "--config", f"profile={profile}"], cwd=project)
    jobs = dry_run_jobs(proc.stdout)
    runs = len(p["generator"]["run"])
    assert jobs == {
        "import_tokenizer": 1,
        "import_generator": runs,
        "sample_generator": runs,
        "evaluate_generator": runs,
        "write_report": 1,
        "all": 1,
    }
    assert RELEASES[profile][1] in proc.stdout
    assert f"alitok import-generator --params params.yaml --profile {profile}" in proc.stdout


def test_ctf256_lists_every_missing_input_then_plans_the_paper_setting(project, tmp_path):
    """CTF in its own setting: one dry run names every file the user must provide (ImageNet, LlamaGen's VQ-16, the
    Inception weights, the ADM batch); with them in place, ImageNet is encoded by the imported VQ-16 (no tokenizer
    training) and LlamaGen-B/L/XL and CTF-B/L/XL train on its codes, then sample, evaluate and report."""
    proc = run(["snakemake", "-n", "--config", "profile=ctf256"], cwd=project, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "4 input(s) the pipeline cannot make are missing" in out
    for line in (
        "data.root = data/imagenet is not a directory",
        "release.tokenizer = weights/vq_ds16_c2i.pt",
        "evaluation.extractor_weights = ",
        "evaluation.reference.path = ",
    ):
        assert out.count(line) == 1, line
    fake = tmp_path / "fake_imagenet"
    make_fake_imagenet(fake)
    edit_params(project, lambda d: d["profiles"]["imagenet256"]["data"].update(root=str(fake)))
    _place_evaluation_files(project, "ctf256")
    (project / "weights" / "vq_ds16_c2i.pt").touch()
    proc = run(["snakemake", "-n", "-p", "--config", "profile=ctf256"], cwd=project)
    jobs = dry_run_jobs(proc.stdout)
    assert jobs == {
        "prepare_data": 1,
        "import_tokenizer": 1,
        "extract_tokens": 2,
        "ctf_clusters": 1,
        "train_ctf_stage2": 1,
        "train_generator": 6,
        "sample_generator": 9,  # + B-, L- and XL-at_ctf: the plain generators at CTF's protocol (ctf.matched_plain)
        "evaluate_generator": 9,
        "write_report": 1,
        "all": 1,
    }
    assert "--tokenizer results/ctf256/tokenizer/stage1.pt --split train" in proc.stdout  # VQ-16: one stage
    for run_name in ("B", "L", "XL", "ctf-B", "ctf-L", "ctf-XL"):
        assert f"results/ctf256/generator/{run_name}/samples.npz" in proc.stdout
    assert not (project / "results" / "ctf256").exists(), "a dry run writes nothing"


def test_the_folder_path_on_a_real_packaged_dataset(project, tmp_path):
    """Any labelled folder in one line (issue 30), on scikit-learn's bundled digits at tiny scale: greyscale 8 x 8
    PNGs, one of them corrupt, turned into RGB crops; the classifier and perceptual net trained on the folder; the
    report names its extractor and its controls. CTF and the stage-1 control are the tiny run's (test_dvc.py)."""
    digits = tmp_path / "digits"
    run(["alitok", "export-digits", "--out", str(digits)], cwd=project)
    corrupt = sorted((digits / "train" / "7").iterdir())[0]
    corrupt.write_bytes(b"not a png")
    line = ["snakemake", "--cores", "2", "--config", "profile=folder_tiny", f"data_root={digits}"]
    run(line, cwd=project)
    out = project / "results" / "folder_tiny"
    info = json.loads((out / "data" / "dataset.json").read_text())
    assert info["root"] == str(digits) and info["classes"] == [str(d) for d in range(10)]
    report_json = json.loads((out / "data" / "report.json").read_text())
    assert [b["path"] for b in report_json["bad_images"]] == [f"train/7/{corrupt.name}"]
    assert info["counts"]["train"] + info["counts"]["val"] == 1797 - 1
    assert 0 <= json.loads((out / "classifier" / "metrics.json").read_text())["val_accuracy"] <= 1
    evaluation = json.loads((out / "evaluation" / "S.json").read_text())
    assert evaluation["protocol"]["extractor"] == "domain_classifier" and evaluation["chance"] == 0.1
    report = (out / "report.md").read_text()
    assert "Extractor: `domain_classifier`" in report and "not Inception numbers" in report
    assert "Control `S-untrained`" in report and "Control `S-shuffled_labels`" in report
    assert "Real held-out images against the reference" in report and "ctf-S" not in report
    again = run([*line[:1], "-n", *line[1:]], cwd=project)
    assert "Nothing to be done" in again.stdout + again.stderr
    proc = run(["snakemake", "-n", "--config", "data_root=/somewhere"], cwd=project, check=False)
    assert proc.returncode != 0 and "with an imagefolder profile: --config profile=folder" in proc.stdout + proc.stderr


def _place_evaluation_files(project, profile):
    """Dry runs only check that the user's files exist: empty stand-ins for the Inception weights and ADM batch."""
    p = config.load(project / "params.yaml", profile)["evaluation"]
    for path in (p["extractor_weights"], p["reference"]["path"]):
        (project / path).parent.mkdir(parents=True, exist_ok=True)
        (project / path).touch()


def test_missing_inception_weights_is_a_clear_error(project, tmp_path):
    fake = tmp_path / "fake_imagenet"
    make_fake_imagenet(fake)
    edit_params(project, lambda d: d["profiles"]["imagenet256"]["data"].update(root=str(fake)))
    proc = run(["snakemake", "-n", "--config", "profile=imagenet256"], cwd=project, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "evaluation.extractor_weights = weights/pt_inception-2015-12-05-6726825d.pth does not exist" in out
    assert "Inception-v3 weights" in out


def test_missing_imagenet_root_is_a_clear_error(project):
    proc = run(["snakemake", "-n", "--config", "profile=imagenet256"], cwd=project, check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "data.root = data/imagenet is not a directory" in out and "train/<wnid>" in out


def _seconds(benchmark_tsv, column: str = "s") -> float:
    """Wall seconds (`s`) or CPU seconds (`cpu_time`) of one job, from the `benchmark:` file Snakemake wrote."""
    header, values = benchmark_tsv.read_text().splitlines()[:2]
    return float(dict(zip(header.split("\t"), values.split("\t")))[column])


# Per-core float32 matmul speed of the machine the smoke budgets were set on (2-core AMD EPYC sandbox, 2026-11-26:
# a best one-thread burst of 93 GFLOP/s at n = 512). benchmarks/peak.py's sustained_matmul, both cores busy, all the
# work over all the time, reads 0.93 of the best burst on that machine type (0.90-0.94 in three runs, 2026-12-06).
REFERENCE_SPEED = 86e9


def _machine_speed() -> float:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from peak import sustained_matmul

    return sustained_matmul()


@pytest.mark.slow
@pytest.mark.alone
def test_smoke_pipeline(project):
    """The README's first command: the embedded default pipeline, as far as it goes today."""
    before = _machine_speed()  # the machine's speed, for the time budgets below
    start = time.monotonic()
    run(["snakemake", "--cores", "2"], cwd=project, timeout=3000)  # ~8 min on 2 cores, CTF included
    wall = time.monotonic() - start
    speed = min(before, _machine_speed())  # and after: a shared machine that slowed during the run counts slower
    out = project / "results" / "smoke"
    info = json.loads((out / "data" / "dataset.json").read_text())
    report = json.loads((out / "data" / "report.json").read_text())
    metrics = json.loads((out / "classifier" / "metrics.json").read_text())
    assert len(info["classes"]) >= 10 and report["bad_images"] == []
    assert metrics["val_accuracy"] >= 0.95, metrics["val_accuracy"]
    data_and_classifier = sum(
        _seconds(out / "benchmarks" / f"{r}.tsv") for r in ("make_dataset", "prepare_data", "train_classifier")
    )
    assert data_and_classifier < 180, f"smoke data + classifier took {data_and_classifier:.0f} s (budget 180 s)"
    control = config.load(project / "params.yaml", "smoke")["tokenizer"]["training"]["compare_stage1_continued"]
    for variant in ("stage1", "stage2") + (("stage1_continued",) if control else ()):  # tiny runs the control
        m = json.loads((out / "tokenizer" / f"{variant}_metrics.json").read_text())
        assert m["num_images"] == len(json.loads((out / "data" / "dataset.json").read_text())["classes"]) * 60
        assert m["psnr"] > 0 and m["rfid"] >= 0 and 0 <= m["recon_class_accuracy"] <= 1
        assert (out / "tokenizer" / f"{variant}_curve.png").stat().st_size > 0
    assert (
        ("stage 1 continued (control)" in (out / "tokenizer" / "stage_comparison.md").read_text())
        if control
        else not (out / "tokenizer" / "stage1_continued.pt").exists()
    )
    log = [json.loads(line) for line in (out / "generator" / "S" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["val_loss"] < log[0]["loss"]  # held-out next-token loss fell during training
    with np.load(out / "generator" / "S" / "samples.npz") as z:
        size = config.load(project / "params.yaml", "smoke")["data"]["image_size"]
        assert z["arr_0"].shape[1:] == (size, size, 3) and len(z["arr_0"]) == len(z["arr_1"])

    # The report and its context: the controls carry no class, so the instrument must put them at chance.
    from alitok.evaluation.report import CC_GOAL, FIGURES
    from alitok.metrics import intervals

    text = (out / "report.md").read_text()
    assert all((out / "figures" / f).stat().st_size > 0 for f in FIGURES)
    real = json.loads((out / "evaluation" / "real_val.json").read_text())
    assert real["class_consistency"] >= 0.95  # the ceiling: the classifier on real held-out images
    for control in ("S-untrained", "S-shuffled_labels"):
        m = json.loads((out / "evaluation" / f"{control}.json").read_text())
        cc = intervals.Interval.of(m["intervals"]["class_consistency"])
        assert intervals.at_chance(cc, m["chance"]), (control, cc.text(3, percent=True))  # the report's rule
        said = f"Control `{control}`: class-consistency {cc.text(3, percent=True)}"
        assert said in text and "**at chance, as it must be**" in text
    assert "**Rules of the verdicts below**" in text
    main = json.loads((out / "evaluation" / "S.json").read_text())
    assert main["fid"] > real["fid"] >= 0  # samples sit above the real-image floor

    # CTF beside the plain generator on the same tokens
    ctf = json.loads((out / "evaluation" / "ctf-S.json").read_text())
    assert ctf["fid"] > real["fid"] and ctf["speed"]["images_per_s"] > 0
    assert "| ctf-S | S |" in text and "The redundancy finding" in text

    # Budgets: 10 minutes for the whole run on 2 cores (issue 24), within which the older ones still hold: 15 minutes
    # for the plain pipeline (issue 6), at most 5 more for CTF (issue 8). Jobs run
    # two at a time, so CTF's cost is its jobs' CPU time over the 2 cores and the plain pipeline's is the rest of
    # the wall time. Reference-machine minutes: a machine with a lower sustained matmul speed per core gets more.
    ctf_jobs = [
        "ctf_clusters",
        "train_ctf_stage2",
        "ctf_redundancy",
        "train_generator_ctf-S",
        "sample_generator_ctf-S",
        "evaluate_generator_ctf-S",
    ]
    ctf_share = sum(_seconds(out / "benchmarks" / f"{job}.tsv", "cpu_time") for job in ctf_jobs) / 2
    slower = max(1.0, REFERENCE_SPEED / speed)
    per_core = f"{speed / 1e9:.1f} GFLOP/s per core"
    timing = f"wall {wall:.0f} s, CTF's share {ctf_share:.0f} s, machine factor {slower:.2f} ({per_core})"
    assert ctf_share < 300 * slower, "CTF over its 5 minutes: " + timing
    assert wall - ctf_share < 900 * slower, "the plain pipeline over its 15 minutes: " + timing
    assert wall < 600 * slower, "the smoke run, CTF included, over its 10 minutes (issue 24): " + timing
    # Issues 6 and 8's goal, judged as the report judges it: on the 95 % interval's lower end (issue 31), which
    # fresh-clone runs in two thread layouts met (docs/evaluation.md, "Goals on the lower end").
    for name, m in (("S", main), ("ctf-S", ctf)):
        cc = intervals.Interval.of(m["intervals"]["class_consistency"])
        assert intervals.meets(cc, CC_GOAL), f"{name}: class-consistency {cc.text(3, percent=True)}; {timing}"
        line = f"`{name}`: class-consistency {cc.text(3, percent=True)} (n = {m['num_samples']})"
        assert f"{line} against the goal of {CC_GOAL:.0%} on the lower end: **met**" in text


def test_second_invocation_in_one_directory_is_refused(project):
    """A run holding the directory (here a process holding the run lock) makes a second real invocation fail
    before any job, naming the holder; a dry run still works; the lock dies with its process."""
    hold = (
        "import sys, time; from alitok import runlock; runlock.acquire(['snakemake', '--first-run']); "
        "print('held', flush=True); time.sleep(300)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", hold], cwd=project, env=tool_env(), stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        proc = run(["snakemake", "-c1", "--config", "profile=tiny"], cwd=project, check=False)
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0
        assert "another pipeline run is active" in out and "--first-run" in out and f"pid {holder.pid}" in out
        assert not (project / "results" / "tiny").exists()  # no job started
        run(["snakemake", "-n", "--config", "profile=tiny"], cwd=project)
    finally:
        holder.kill()
        holder.wait()
    check = run(
        [sys.executable, "-c", "from alitok import runlock; runlock.acquire(['again']); print('ok')"], cwd=project
    )
    assert check.stdout.strip() == "ok"


def test_every_report_figure_has_a_caption():
    """`snakemake --report` captions (workflow/report/*.rst): one per figure the report rule declares, named after it;
    the report itself is checked on the session's tiny run (tests/test_dvc.py)."""
    from alitok.evaluation.report_figures import FIGURES

    captions = REPO / "workflow" / "report"
    for name in [Path(f).stem for f in FIGURES] + ["workflow"]:
        assert (captions / f"{name}.rst").read_text().strip(), name


# Loaded by every Python process of the test's Snakemake run (PYTHONPATH); only the make-dataset job acts on it.
FAIL_MAKE_DATASET = """import sys

if sys.argv[1:2] == ["make-dataset"]:  # the job fails as a bug in the data stage would
    import warnings

    from alitok.data import synthetic

    def write_dataset(*args, **kwargs):
        warnings.warn("about to fail (injected)")
        raise RuntimeError("injected failure in write_dataset")

    synthetic.write_dataset = write_dataset
"""


def test_a_failing_job_leaves_its_traceback_in_its_log(project, tmp_path):
    """The rule's log (logs/<profile>/<rule>.log) gets the job's stderr: its warning and its traceback, once; the
    console still shows them."""
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(FAIL_MAKE_DATASET)
    proc = subprocess.run(
        ["snakemake", "--cores", "1", "--config", "profile=tiny", "--", "results/tiny/data/images"],
        cwd=project,
        env=tool_env() | {"PYTHONPATH": str(inject)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    log = (project / "logs" / "tiny" / "make_dataset.log").read_text()
    assert "UserWarning: about to fail (injected)" in log
    assert log.count("Traceback (most recent call last)") == 1
    assert log.rstrip().endswith("RuntimeError: injected failure in write_dataset")
    assert "RuntimeError: injected failure in write_dataset" in proc.stderr
