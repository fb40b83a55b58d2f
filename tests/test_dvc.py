"""DVC wraps the Snakemake pipeline as one coarse stage and shares its results through a remote (a local folder
here): a colleague's clone runs plain `dvc pull` and has nothing to recompute; a changed generator param reruns only the
generator's side; a corrupted remote copy is refused by name."""

import hashlib
import json
import shutil

import pytest
import yaml

from conftest import run

pytestmark = pytest.mark.slow


def md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def snakemake_jobs(project) -> set[str]:
    """The rules a dry run would execute (empty when there is nothing to be done)."""
    out = run(["snakemake", "-n", "--workflow-profile", "workflow/profiles/local"], cwd=project).stdout
    if "Nothing to be done" in out:
        return set()
    table = out[out.index("Job stats:"):].split("total")[0].splitlines()[3:]
    return {line.split()[0] for line in table if line.strip()}


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


def change_a_generator_param_and_check_only_its_side_reruns(colleague):
    """`dvc exp run -S` on a generator param: training, sampling, evaluation and the report rerun, and nothing of
    the data, classifier, tokenizer or tokens."""
    tokenizer = colleague / "results" / "tiny" / "tokenizer" / "stage2.pt"
    generator = colleague / "results" / "tiny" / "generator" / "S" / "model.pt"
    before = {p: md5(p) for p in (tokenizer, generator)}  # content: marking a pull up to date touches files
    steps = yaml.safe_load((colleague / "params.yaml").read_text())["profiles"]["tiny"]["generator"]["scales"]["S"]["steps"]
    run(["dvc", "exp", "run", "-q", "-S", f"profiles.tiny.generator.scales.S.steps={steps + 2}"], cwd=colleague,
        timeout=1800)
    assert md5(tokenizer) == before[tokenizer], "a generator param retrained the tokenizer"
    assert md5(generator) != before[generator], "the generator was not retrained"
    log = max((colleague / ".snakemake" / "log").glob("*.snakemake.log"), key=lambda p: p.stat().st_mtime).read_text()
    ran = {line.split()[1].rstrip(":") for line in log.splitlines() if line.startswith(("rule ", "localrule "))}
    assert {"train_generator", "sample_generator", "evaluate_generator", "write_report"} <= ran
    assert not ran & {"make_dataset", "prepare_data", "train_tokenizer_stage1", "train_tokenizer_stage2",
                      "extract_tokens", "train_classifier"}, ran


def test_fresh_clone_pull_has_nothing_to_do_and_a_generator_param_reruns_only_its_side(tiny_shared, tmp_path):
    origin, _ = tiny_shared
    colleague = clone(origin, tmp_path / "colleague")
    run(["dvc", "pull", "-q"], cwd=colleague)
    assert snakemake_jobs(colleague) == set(), "a fresh clone plus plain `dvc pull` has nothing to be done"
    assert snakemake_jobs(colleague) == set(), "and still nothing on the next invocation"
    change_a_generator_param_and_check_only_its_side_reruns(colleague)

    shown = json.loads(run(["dvc", "exp", "show", "--json"], cwd=colleague).stdout)
    assert "generator.S.fid" in json.dumps(shown) or '"fid"' in json.dumps(shown)
    diff = json.loads(run(["dvc", "metrics", "diff", "--json", "HEAD"], cwd=colleague).stdout)
    assert any(k.startswith("generator.S.") for k in diff["results/tiny/metrics.json"]), diff
    assert not any(k.startswith("tokenizer.") for k in diff["results/tiny/metrics.json"]), diff
    plots = json.loads(run(["dvc", "plots", "diff", "--json", "HEAD"], cwd=colleague).stdout)
    assert not plots.get("errors"), plots.get("errors")


def test_a_param_changed_right_after_the_pull_reruns_only_its_side(tiny_shared, tmp_path):
    """No snakemake call between `dvc pull` and `dvc exp run -S`: the pulled results are marked up to date with
    dvc.lock's params, so the changed one is still seen."""
    origin, _ = tiny_shared
    colleague = clone(origin, tmp_path / "colleague")
    run(["dvc", "pull", "-q"], cwd=colleague)
    change_a_generator_param_and_check_only_its_side_reruns(colleague)


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
    proc = run(["snakemake", "-n", "--workflow-profile", "workflow/profiles/local"], cwd=colleague, check=False)
    assert proc.returncode != 0
    (line,) = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "does not match dvc.lock" in ln]
    assert "results/tiny/tokenizer/stage2.pt" in line and entry["md5"] in line
    assert not (colleague / "results" / "tiny" / "tokenizer" / "stage2.pt").exists()
    assert (colleague / "results" / "tiny" / "tokenizer" / "stage1.pt").is_file()  # the good files stay
    assert not (colleague / ".snakemake" / "metadata").exists(), "nothing was marked up to date"

    proc = run(["alitok", "pull"], cwd=colleague, check=False)  # pulling again fetches the same bad copy
    assert proc.returncode == 2
    assert any("stage2.pt" in ln and "does not match dvc.lock" in ln for ln in proc.stderr.splitlines())
    assert not (colleague / ".snakemake" / "metadata").exists()
