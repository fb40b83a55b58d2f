"""The session's tiny run (conftest.tiny_shared): Snakemake ran the whole tiny pipeline under `dvc repro`, and every
test that reads that run lives here, so `make test`'s workers (one file each) make it once.

DVC wraps the Snakemake pipeline as one coarse stage and shares its results through a remote (a local folder
here): a colleague's clone runs `alitok pull` (or plain `dvc pull`, then `alitok pull --no-fetch`) and has nothing to
recompute; parsing the Snakefile writes nothing, and a real run after a plain `dvc pull` alone is refused; a changed
generator param reruns only the generator's side; a corrupted remote copy is refused by name."""

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from alitok.evaluation.report_figures import FIGURES

from conftest import dry_run_jobs, edit_params, file_snapshot, make_recipe, run, run_readme_block

pytestmark = pytest.mark.slow


def md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def snakemake_jobs(project) -> set[str]:
    """The rules a dry run would execute (empty when there is nothing to be done)."""
    out = run(["snakemake", "-n", "--workflow-profile", "workflow/profiles/local"], cwd=project).stdout
    return set() if "Nothing to be done" in out else set(dry_run_jobs(out))


def clone(origin, dest):
    run(["git", "clone", "-q", str(origin), str(dest)], cwd=origin.parent)
    for key, value in (("user.email", "ci@example.org"), ("user.name", "ci")):
        run(["git", "config", key, value], cwd=dest)
    return dest


def test_dvc_repro_runs_snakemake_and_records_metrics_plots_artifacts(tiny_shared):
    origin, _ = tiny_shared
    assert (origin / "results" / "tiny" / "tokenizer" / "stage2.pt").is_file()
    assert "up to date" in run(["dvc", "status"], cwd=origin).stdout.lower()
    metrics = json.loads(run(["dvc", "metrics", "show", "--json"], cwd=origin).stdout)
    flat = json.dumps(metrics)
    for key in ("val_accuracy", "class_consistency", "rfid", "val_class_gain"):
        assert key in flat, key
    plots = json.loads(run(["dvc", "plots", "show", "--json"], cwd=origin).stdout)
    assert not plots.get("errors"), plots.get("errors")
    names = json.dumps(plots)
    assert "curves/train/generator_S.json" in names and "curves/heldout/generator_S.json" in names
    tracked = run(["git", "ls-files"], cwd=origin).stdout.splitlines()
    assert not any(p.startswith("results/tiny/") for p in tracked), "large outputs are DVC's, not git's"
    assert "results/tiny/data/images" not in tracked and "dvc.lock" in tracked


def generator_steps(colleague) -> int:
    return yaml.safe_load((colleague / "params.yaml").read_text())["profiles"]["tiny"]["generator"]["scales"]["S"][
        "steps"
    ]


def change_a_generator_param_and_check_only_its_side_reruns(colleague):
    """`dvc exp run -S` on a generator param: training, sampling, evaluation and the report rerun, and nothing of
    the data, classifier, tokenizer or tokens."""
    tokenizer = colleague / "results" / "tiny" / "tokenizer" / "stage2.pt"
    generator = colleague / "results" / "tiny" / "generator" / "S" / "model.pt"
    before = {p: md5(p) for p in (tokenizer, generator)}  # content: marking a pull up to date touches files
    change = ["-S", f"profiles.tiny.generator.scales.S.steps={generator_steps(colleague) + 2}"]
    run(["dvc", "exp", "run", "-q", *change], cwd=colleague, timeout=1800)
    assert md5(tokenizer) == before[tokenizer], "a generator param retrained the tokenizer"
    assert md5(generator) != before[generator], "the generator was not retrained"
    log = max((colleague / ".snakemake" / "log").glob("*.snakemake.log"), key=lambda p: p.stat().st_mtime).read_text()
    ran = {line.split()[1].rstrip(":") for line in log.splitlines() if line.startswith(("rule ", "localrule "))}
    assert {"train_generator", "sample_generator", "evaluate_generator", "write_report"} <= ran
    assert not ran & {
        "make_dataset",
        "prepare_data",
        "train_tokenizer_stage1",
        "train_tokenizer_stage2",
        "extract_tokens",
        "train_classifier",
    }, ran


def test_the_readmes_sharing_flow_pushes_what_a_colleague_needs(tiny_shared):
    """`make smoke`, the remote, the commit, `dvc push` as the README writes them (conftest ran them): dvc.lock
    records the results, and the remote holds them without the thousands of generated images."""
    origin, remote = tiny_shared
    assert make_recipe("smoke") == "dvc repro"  # what conftest ran for `make smoke`, on params.yaml's profile
    stage = yaml.safe_load((origin / "dvc.lock").read_text())["stages"]["pipeline"]
    (listing,) = [o for o in stage["outs"] if o["path"] == "results/tiny"]
    listed = json.loads(
        (origin / ".dvc" / "cache" / "files" / "md5" / listing["md5"][:2] / listing["md5"][2:]).read_text()
    )
    paths = {e["relpath"] for e in listed}
    images = list((origin / "results" / "tiny" / "data" / "images").rglob("*.png"))
    assert len(images) > 100 and not any(p.startswith("data/images/") for p in paths)
    on_disk = {
        str(p.relative_to(origin / "results" / "tiny"))
        for p in (origin / "results" / "tiny").rglob("*")
        if p.is_file() and not str(p.relative_to(origin / "results" / "tiny")).startswith(("data/images/", "work/"))
    }
    assert paths == on_disk, "everything else is shared"
    assert {
        "tokenizer/stage2.pt",
        "generator/S/model.pt",
        "generator/S/samples.npz",
        "metrics.json",
        "report.md",
    } <= paths
    assert any(p.startswith("tokens/") for p in paths)
    pushed = [p for p in remote.rglob("*") if p.is_file()]
    assert len(pushed) <= len(paths) + 1, f"{len(pushed)} objects for {len(paths)} files and one listing"


def test_fresh_clone_pull_has_nothing_to_do_and_a_generator_param_reruns_only_its_side(tiny_shared, tmp_path):
    """The README's colleague lines as written: clone, `make pull`, `snakemake -n` has nothing to do; the generated
    images are back, each as its manifest's sha256 says. A base profile's param is seen by DVC too."""
    origin, _ = tiny_shared
    proc = run_readme_block("colleague", tmp_path, **{"<url>": origin})
    assert "Nothing to be done" in proc.stdout, proc.stdout[-2000:]
    colleague = tmp_path / "alitok"
    for key, value in (("user.email", "ci@example.org"), ("user.name", "ci")):
        run(["git", "config", key, value], cwd=colleague)
    assert "regenerated" in proc.stderr and (colleague / "results/tiny/data/images").is_dir()
    assert snakemake_jobs(colleague) == set(), "and still nothing on the next invocation"

    # tiny inherits smoke: a change there is a change of tiny's params, and DVC says so
    doc = yaml.safe_load((colleague / "params.yaml").read_text())
    lr = doc["profiles"]["smoke"]["classifier"]["lr"]
    edit_params(colleague, lambda d: d["profiles"]["smoke"]["classifier"].update(lr=lr * 2))
    status = run(["dvc", "status"], cwd=colleague).stdout
    assert "pipeline" in status and "modified:" in status and "profiles" in status, status
    diff = run(["dvc", "params", "diff"], cwd=colleague).stdout
    assert "profiles.smoke.classifier.lr" in diff and "profiles.imagenet256" not in diff
    edit_params(colleague, lambda d: d["profiles"]["smoke"]["classifier"].update(lr=lr))
    assert "up to date" in run(["dvc", "status"], cwd=colleague).stdout.lower()
    change_a_generator_param_and_check_only_its_side_reruns(colleague)

    shown = json.loads(run(["dvc", "exp", "show", "--json"], cwd=colleague).stdout)
    assert "generator.S.fid" in json.dumps(shown) or '"fid"' in json.dumps(shown)
    diff = json.loads(run(["dvc", "metrics", "diff", "--json", "HEAD"], cwd=colleague).stdout)
    assert any(k.startswith("generator.S.") for k in diff["results/tiny/metrics.json"]), diff
    assert not any(k.startswith("tokenizer.") for k in diff["results/tiny/metrics.json"]), diff
    plots = json.loads(run(["dvc", "plots", "diff", "--json", "HEAD"], cwd=colleague).stdout)
    assert not plots.get("errors"), plots.get("errors")


def test_a_param_changed_right_after_the_pull_reruns_only_its_side(tiny_shared, tmp_path):
    """A param changed between a plain `dvc pull` and `alitok pull --no-fetch`: the pulled results are marked up
    to date with dvc.lock's params, so the changed one is still seen."""
    origin, _ = tiny_shared
    colleague = clone(origin, tmp_path / "colleague")
    run(["dvc", "pull", "-q"], cwd=colleague)
    steps = generator_steps(colleague)
    edit_params(colleague, lambda d: d["profiles"]["tiny"]["generator"]["scales"]["S"].update(steps=steps + 2))
    run(["alitok", "pull", "--no-fetch"], cwd=colleague)
    # what would run, planned (the rerun itself is the test above's): the generator's side, nothing upstream
    jobs = dry_run_jobs(run(["snakemake", "-n"], cwd=colleague).stdout)
    assert {"train_generator", "sample_generator", "evaluate_generator", "write_report"} <= set(jobs), jobs
    assert not set(jobs) & {"make_dataset", "prepare_data", "train_tokenizer_stage1", "extract_tokens"}, jobs
    status = run(["dvc", "status"], cwd=colleague).stdout
    assert "modified:" in status and "profiles" in status, status


def test_a_corrupt_remote_copy_is_refused_by_name(tiny_shared, tmp_path):
    origin, remote = tiny_shared
    bad_remote = shutil.copytree(remote, tmp_path / "remote")
    lock = yaml.safe_load((origin / "dvc.lock").read_text())
    (out,) = lock["stages"]["pipeline"]["outs"]
    listing = origin / ".dvc" / "cache" / "files" / "md5" / out["md5"][:2] / out["md5"][2:]
    (entry,) = [e for e in json.loads(listing.read_text()) if e["relpath"] == "tokenizer/stage2.pt"]
    obj = bad_remote / "files" / "md5" / entry["md5"][:2] / entry["md5"][2:]
    data = bytearray(obj.read_bytes())
    data[len(data) // 2] ^= 0xFF
    obj.chmod(0o644)
    obj.write_bytes(bytes(data))

    colleague = clone(origin, tmp_path / "colleague")
    run(["dvc", "remote", "modify", "--local", "lab", "url", str(bad_remote)], cwd=colleague)
    run(["dvc", "pull", "-q"], cwd=colleague)  # DVC trusts the remote: the flipped byte is checked out
    proc = run(["alitok", "pull", "--no-fetch"], cwd=colleague, check=False)
    assert proc.returncode == 2
    (line,) = [ln for ln in proc.stderr.splitlines() if "does not match dvc.lock" in ln]
    assert "results/tiny/tokenizer/stage2.pt" in line and entry["md5"] in line
    assert not (colleague / "results" / "tiny" / "tokenizer" / "stage2.pt").exists()
    assert (colleague / "results" / "tiny" / "tokenizer" / "stage1.pt").is_file()  # the good files stay
    assert not (colleague / ".snakemake" / "metadata").exists(), "nothing was marked up to date"

    proc = run(["alitok", "pull"], cwd=colleague, check=False)  # pulling again fetches the same bad copy
    assert proc.returncode == 2
    assert any("stage2.pt" in ln and "does not match dvc.lock" in ln for ln in proc.stderr.splitlines())
    assert not (colleague / ".snakemake" / "metadata").exists()


def test_after_a_plain_dvc_pull_a_dry_run_writes_nothing_and_a_real_run_is_refused(tiny_shared, tmp_path):
    """Parsing the Snakefile has no side effects (it used to hash and touch pulled results): after a plain `dvc pull`
    a dry run warns, naming `alitok pull`, and writes nothing outside Snakemake's own .snakemake/; a real run is
    refused before any job instead of recomputing the pulled results; `alitok pull --no-fetch` then adopts them."""
    origin, _ = tiny_shared
    colleague = clone(origin, tmp_path / "colleague")
    run(["dvc", "pull", "-q"], cwd=colleague)
    # pulled files get arbitrary times: here, deterministically, one input looks newer than what was computed from it
    (colleague / "results" / "tiny" / "tokenizer" / "stage2.pt").touch()
    outside = (".snakemake",)  # Snakemake's bookkeeping; ours, .snakemake/alitok/, must not appear either

    def changed(before):  # Python's bytecode caches aside too (the clone's alitok/ is imported)
        after = file_snapshot(colleague, skip=outside)
        diff = (k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
        return sorted(k for k in diff if "__pycache__" not in k.split("/"))

    before = file_snapshot(colleague, skip=outside)
    proc = run(["snakemake", "-n", "--workflow-profile", "workflow/profiles/local"], cwd=colleague)
    assert changed(before) == [] and not (colleague / ".snakemake" / "alitok").exists()
    (warning,) = [ln for ln in proc.stderr.splitlines() if "alitok pull --no-fetch" in ln]
    assert warning.startswith("alitok: warning: results/tiny") and "docs/sharing.md" in warning
    assert dry_run_jobs(proc.stdout).get("train_generator"), "unadopted, the pulled results look out of date"

    proc = run(["snakemake", "--workflow-profile", "workflow/profiles/local"], cwd=colleague, check=False)
    assert proc.returncode != 0 and "not recomputing pulled results" in proc.stdout + proc.stderr
    assert changed(before) == [], "a job ran"

    run(["alitok", "pull", "--no-fetch"], cwd=colleague)
    assert snakemake_jobs(colleague) == set()


def test_snakemake_report_captions_every_result(tiny_shared, tmp_path):
    """`snakemake --report` as docs/evaluation.md gives it, on the session's tiny run: the workflow's description and
    every result (the report's figures, each run's samples, the tokenizer's reconstructions) with its caption, its
    Jinja rendered. The same run's job logs name their runs and hold progress bars as lines."""
    origin, _ = tiny_shared
    out = tmp_path / "report.html"
    run(["snakemake", "--report", str(out), "--cores", "1"], cwd=origin)
    html = out.read_text()
    description = json.loads(re.search(r"^\s*var workflow_desc = (.*);$", html, re.M).group(1))
    assert "AliTok and CTF" in description and "results/tiny/report.md" in description
    results = json.loads(re.search(r"^\s*var results = (\{.*\});$", html, re.M).group(1))
    tiny = origin / "results" / "tiny"
    runs = sorted(p.parent.name for p in (tiny / "generator").glob("*/samples_grid.png"))
    assert {"S", "S-untrained", "ctf-S"} <= set(runs)
    expected = {f"results/tiny/figures/{f}" for f in FIGURES}
    expected |= {f"results/tiny/generator/{r}/samples_grid.png" for r in runs}
    expected |= {f"results/tiny/tokenizer/{v}_recon.png" for v in ("stage1", "stage2", "stage1_continued")}
    assert set(results) == expected
    for path, result in results.items():
        caption = result["caption"]
        assert len(re.sub("<[^>]+>", "", caption).split()) > 20 and "{{" not in caption, path
    for r in runs:  # the run's name, from its wildcards
        assert f">{r}</" in results[f"results/tiny/generator/{r}/samples_grid.png"]["caption"]

    logs = origin / "logs" / "tiny"
    stage2 = (logs / "train_ctf_stage2.log").read_text()
    assert "generator ctf stage 2 trained" in stage2 and "None trained" not in stage2
    assert "generator ctf stage 2: 100%" in stage2 and "\r" not in stage2  # its bar's last state, a line
    assert "sample S-untrained: 100%" in (logs / "sample_generator_S-untrained.log").read_text()


def test_tiny_pipeline_runs_and_then_has_nothing_to_do(tiny_shared, tmp_path):
    """The tiny pipeline as the session's `dvc repro` ran it (conftest.tiny_shared: one run serves the DVC tests
    too), copied with its Snakemake metadata and mtimes so the param edits below stay here."""
    project = Path(shutil.copytree(tiny_shared[0], tmp_path / "project", symlinks=True))
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
    comparison = (out / "tokenizer" / "stage_comparison.md").read_text()
    assert "| stage 2 |" in comparison and "stage 1 continued (control)" in comparison
    train_tokens = json.loads((out / "tokens" / "train" / "manifest.json").read_text())
    assert train_tokens["crops"] == 10 and train_tokens["images"] == 240
    assert json.loads((out / "tokens" / "val" / "manifest.json").read_text())["crops"] == 1
    assert len((out / "generator" / "S" / "log.jsonl").read_text().splitlines()) > 0
    with np.load(out / "generator" / "S" / "samples.npz") as z:
        assert z["arr_0"].shape == (20, 32, 32, 3) and z["arr_1"].shape == (20,)
    assert (out / "generator" / "S" / "samples_grid.png").stat().st_size > 0
    assert (out / "generator" / "S" / "curve.png").stat().st_size > 0
    for run_name in ("S", "S-untrained", "S-shuffled_labels"):
        m = json.loads((out / "evaluation" / f"{run_name}.json").read_text())
        assert m["fid"] >= 0 and m["is"] >= 1 - 1e-6 and 0 <= m["precision"] <= 1 and 0 <= m["recall"] <= 1
        assert 0 <= m["class_consistency"] <= 1 and m["chance"] == 0.1 and m["num_samples"] == 20
        assert m["protocol"]["control"] == (None if run_name == "S" else run_name.split("-")[1])
        assert m["protocol"]["guidance"] == 4.0 and m["protocol"]["uint8"] == "round"
        assert m["speed"]["images_per_s"] > 0 and m["speed"]["hardware"]
    assert json.loads((out / "generator" / "S-untrained" / "log.jsonl").read_text().splitlines()[0])["step"] == 0
    # CTF on the same tokens: its stage 1 is run ctf-S, sampled and evaluated beside S with both stages timed
    ctf = json.loads((out / "evaluation" / "ctf-S.json").read_text())
    assert ctf["protocol"]["kind"] == "ctf" and ctf["protocol"]["clusters"] == 32 and ctf["speed"]["images_per_s"] > 0
    assert json.loads((out / "ctf" / "coarse_map.json").read_text())["used_codes"] > 0
    assert json.loads((out / "ctf" / "stage2" / "log.jsonl").read_text().splitlines()[-1])["step"] == 8
    assert {"reconstruction", "within_cluster", "whole_codebook"} <= set(
        json.loads((out / "ctf" / "redundancy.json").read_text())
    )
    real = json.loads((out / "evaluation" / "real_val.json").read_text())
    assert real["num_samples"] == 60 and "speed" not in real
    assert real["class_consistency"] == pytest.approx(metrics["val_accuracy"], abs=1e-6)  # the ceiling
    report = (out / "report.md").read_text()
    assert "## Generator" in report and "no gap to the papers is computed" in report
    assert "| ctf-S | S |" in report and "swapped within the cluster" in report  # CTF beside plain; redundancy
    summary = json.loads((out / "metrics.json").read_text())
    assert "ctf-S" in summary["generator"] and set(summary["ctf"]) == {"coarse_map", "stage2", "redundancy"}
    assert (out / "curves" / "heldout" / "ctf_stage2.json").stat().st_size > 0
    assert all((out / "figures" / f).stat().st_size > 0 for f in ("gfid_vs_params.png", "generator_curves.png"))
    _check_mlflow(project)

    # CTF in its own setting (docs/ctf.md): a VQ-16-family tokenizer trained on the same data, LlamaGen-shaped plain
    # and CTF generators on its codes, reported with this run's classifier, real-image floor and controls.
    setting = run(["snakemake", "--cores", "2", "--config", "profile=tiny", "--", "ctf_setting"], cwd=project)
    ran = set(re.findall(r"^(?:local)?rule (\w+):", setting.stdout + setting.stderr, re.M))
    assert not ran & {"make_dataset", "prepare_data", "train_classifier", "train_perceptual_net", "evaluate_real"}
    assert {"train_tokenizer_stage1", "extract_tokens", "train_generator", "train_ctf_stage2"} <= ran
    assert "train_tokenizer_stage2" not in ran and "write_setting_report" in ran
    own = out / "ctf_setting"
    assert json.loads((own / "tokenizer" / "stage1_metrics.json").read_text())["family"] == "vq16"
    assert not (own / "tokenizer" / "stage2.pt").exists()  # VQ-16 trains in one stage
    for run_name in ("S", "S-untrained", "S-shuffled_labels", "ctf-S"):
        p = json.loads((own / "evaluation" / f"{run_name}.json").read_text())["protocol"]
        assert (p["profile"], p["arch"], p["tokenizer"]) == ("tiny/ctf_setting", "llamagen", "vq16")
    assert json.loads((own / "ctf" / "coarse_map.json").read_text())["codes"] == "used"
    own_report = (own / "report.md").read_text()
    assert "params profile `tiny/ctf_setting`" in own_report and "| ctf-S | S |" in own_report
    assert f"held-out accuracy: {metrics['val_accuracy']:.1%}" in own_report  # the main run's classifier
    assert "Control `S-shuffled_labels`" in own_report and "plain (llamagen, vq16 tokens)" in own_report

    again = run(["snakemake", "-n", "--config", "profile=tiny"], cwd=project)
    assert "Nothing to be done" in again.stdout + again.stderr

    # A classifier-only param change reruns the classifier, not data generation or prep.
    edit_params(project, lambda d: d["profiles"]["tiny"]["classifier"].update(epochs=3))
    jobs = dry_run_jobs(run(["snakemake", "-n", "--config", "profile=tiny"], cwd=project).stdout)
    assert jobs.get("train_classifier") == 1
    assert "make_dataset" not in jobs and "prepare_data" not in jobs and "train_tokenizer_stage1" not in jobs

    # A stage-2 phase change retrains stage 2 and the control, never stage 1.
    edit_params(project, lambda d: d["profiles"]["tiny"]["tokenizer"]["stage2"][0].update(steps=3))
    jobs = dry_run_jobs(run(["snakemake", "-n", "--config", "profile=tiny"], cwd=project).stdout)
    assert jobs.get("train_tokenizer_stage2") == 1 and jobs.get("train_tokenizer_stage1_continued") == 1
    assert "train_tokenizer_stage1" not in jobs

    # A sampling change resamples; a generator optimizer change retrains the generator; neither re-extracts.
    edit_params(project, lambda d: d["profiles"]["tiny"]["tokenizer"]["stage2"][0].update(steps=2))  # undo
    edit_params(project, lambda d: d["profiles"]["tiny"]["generator"]["sampling"].update(batch=4))
    runs = 4  # S, its two controls, CTF's ctf-S
    jobs = dry_run_jobs(run(["snakemake", "-n", "--config", "profile=tiny"], cwd=project).stdout)
    assert jobs.get("sample_generator") == runs and "train_generator" not in jobs and "extract_tokens" not in jobs
    assert jobs.get("evaluate_generator") == runs and jobs.get("write_report") == 1
    edit_params(project, lambda d: d["profiles"]["tiny"]["generator"].setdefault("optimizer", {}).update(lr=5e-4))
    jobs = dry_run_jobs(run(["snakemake", "-n", "--config", "profile=tiny"], cwd=project).stdout)
    assert jobs.get("train_generator") == runs and jobs.get("sample_generator") == runs and "extract_tokens" not in jobs
    assert jobs.get("train_ctf_stage2") == 1 and "ctf_clusters" not in jobs  # the optimizer is shared; the map is not

    # A CTF sampling change resamples CTF only; a cluster change redoes the map and everything on it, not the tokens.
    edit_params(project, lambda d: d["profiles"]["tiny"]["generator"].pop("optimizer"))  # undo: smoke's optimizer again
    edit_params(project, lambda d: d["profiles"]["tiny"]["generator"]["sampling"].update(batch=8))  # undo
    edit_params(project, lambda d: d["profiles"]["tiny"]["ctf"].setdefault("sampling", {}).update(tau2=0.9))
    jobs = dry_run_jobs(run(["snakemake", "-n", "--config", "profile=tiny"], cwd=project).stdout)
    assert jobs.get("sample_generator") == 1 and "train_generator" not in jobs
    edit_params(project, lambda d: d["profiles"]["tiny"]["ctf"]["clusters"].update(seed=1))
    jobs = dry_run_jobs(run(["snakemake", "-n", "--config", "profile=tiny"], cwd=project).stdout)
    assert jobs.get("ctf_clusters") == 1 and jobs.get("train_ctf_stage2") == 1 and jobs.get("ctf_redundancy") == 1
    assert jobs.get("train_generator") == 1 and "extract_tokens" not in jobs  # ctf-S only
    edit_params(project, lambda d: d["profiles"]["tiny"]["ctf"]["clusters"].update(seed=0))  # undo
    edit_params(project, lambda d: d["profiles"]["tiny"]["ctf"]["sampling"].update(tau2=1.0))  # undo

    # An evaluation change re-evaluates and rewrites the report; it never resamples or retrains.
    edit_params(project, lambda d: d["profiles"]["tiny"]["evaluation"].update(batch=8))
    jobs = dry_run_jobs(run(["snakemake", "-n", "--config", "profile=tiny"], cwd=project).stdout)
    assert jobs.get("evaluate_generator") == runs and jobs.get("evaluate_real") == 1
    assert "sample_generator" not in jobs and "train_generator" not in jobs


def _check_mlflow(project):
    """The parent run of the invocation, a child run per job (tagged), and the papers' rows as runs."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    exp = client.get_experiment_by_name("alitok-tiny")
    (parent,) = client.search_runs([exp.experiment_id], "tags.kind = 'pipeline'")
    assert parent.info.status == "FINISHED" and parent.data.tags["profile"] == "tiny"
    children = client.search_runs([exp.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    rules = {(c.data.tags["rule"], c.data.tags["wildcards"]) for c in children}
    assert ("train_generator", "run=S") in rules and ("evaluate_generator", "run=S-shuffled_labels") in rules
    assert ("train_generator", "run=ctf-S") in rules and ("train_ctf_stage2", "") in rules
    assert ("write_report", "") in rules and len(children) == 30
    assert all(c.data.tags["params_hash"] == parent.data.tags["params_hash"] for c in children)
    train = next(
        c for c in children if c.data.tags["rule"] == "train_generator" and c.data.tags["wildcards"] == "run=S"
    )
    logged = [r for r in map(json.loads, (project / "results/tiny/generator/S/log.jsonl").read_text().splitlines())]
    assert len(client.get_metric_history(train.info.run_id, "loss")) == len(logged) > 1  # per logged step
    assert train.data.params["generator.optimizer.lr"]
    evaluation = next(c for c in children if c.data.tags["rule"] == "evaluate_generator")
    # the papers' metric names (gfid, images_per_s, param params_m), so one MLflow chart holds ours and theirs
    assert {"gfid", "is", "precision", "recall", "class_consistency", "images_per_s"} <= set(evaluation.data.metrics)
    assert float(evaluation.data.params["params_m"]) > 0
    assert all(c.info.end_time > c.info.start_time for c in children)
    assert any(a.path.endswith(".json") for a in client.list_artifacts(evaluation.info.run_id))
    papers = client.search_runs([exp.experiment_id], "tags.kind = 'paper'", max_results=1000)
    release_b = [
        r for r in papers if r.data.tags["table"] == "release (ImageNet-256)" and r.data.tags["model"] == "AliTok-B"
    ]
    assert len(release_b) == 1 and release_b[0].data.metrics["gfid"] == 1.50
    compare = run(["alitok", "compare", "--profile", "tiny"], cwd=project).stdout
    assert "ours" in compare and "AliTok-XL" in compare and "images_per_s" in compare
    assert "run=ctf-S" in compare and "run=S " in compare + " "  # CTF beside the plain generator
