import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = str(Path(sys.executable).parent)

if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test` runs two workers on two cores: one thread each, not four
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_collection_modifyitems(config, items):
    """`make test` hands each worker whole files: the tests on the session's tiny run must share one file, or two
    workers would each make that run."""
    files = {item.path.name for item in items if "tiny_shared" in item.fixturenames}
    if len(files) > 1:
        raise pytest.UsageError(f"tests using tiny_shared sit in {sorted(files)}: keep them in one file")


def tool_env() -> dict:
    """Environment for subprocesses: this interpreter's bin first, so `alitok` and `snakemake` resolve."""
    env = dict(os.environ)
    env["PATH"] = VENV_BIN + os.pathsep + env.get("PATH", "")
    env.setdefault("PYTHONHASHSEED", "0")
    for key in ("MLFLOW_TRACKING_URI", "ALITOK_MLFLOW_PARENT", "ALITOK_MLFLOW_RECORDS"):
        env.pop(key, None)  # each test's MLflow store is its own project's sqlite:///mlflow.db
    return env


def run(cmd, cwd, check=True, timeout=900):
    proc = subprocess.run(cmd, cwd=cwd, env=tool_env(), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


def tiny_train_cmd(command: str, work, out, log, *args, params=None, launcher=None) -> list[str]:
    """`alitok COMMAND --profile tiny ARGS` (train-tokenizer, train-generator) with its work dir, final model and
    JSON-lines log; `params`: a params file other than the default, `launcher`: another start than the `alitok`
    script (torchrun ... -m alitok)."""
    own_params = ["--params", params] if params else []
    outputs = ["--work-dir", work, "--out", out, "--log-out", log]
    return [*(launcher or ["alitok"]), command, *map(str, [*own_params, "--profile", "tiny", *args, *outputs])]


def generator_train_cmd(ws: Path, work, out, log, *args, **kw) -> list[str]:
    """tiny_train_cmd for `alitok train-generator` over the tokens that extract_tiny_tokens wrote in ws."""
    tokens = ["--train-tokens", ws / "tokens" / "train", "--val-tokens", ws / "tokens" / "val"]
    return tiny_train_cmd("train-generator", work, out, log, *args, *tokens, **kw)


def final_weights(model: Path, kind: str, train: list | None = None) -> dict:
    """The weights in a training run's final checkpoint; with `train`, after running that command (from the
    repository root) to its end."""
    from alitok.training import checkpoint

    if train is not None:
        run(train, cwd=REPO)
    return checkpoint.load(model, kind=kind)["model"]


def dry_run_jobs(stdout: str) -> dict:
    """The 'Job stats' table of a dry run, as {rule: count}."""
    lines = stdout.split("Job stats:")[1].splitlines()
    jobs = {}
    for line in lines[3:]:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        jobs[parts[0]] = int(parts[1])
    return jobs


def file_snapshot(root: Path, skip: tuple[str, ...] = ()) -> dict[str, tuple[int, int] | str]:
    """Everything under root: {relative path: (size, mtime_ns)} for a file or link, "dir" for a folder. Paths equal
    to or under one in `skip` are left out."""
    snap: dict[str, tuple[int, int] | str] = {}
    for path in root.rglob("*"):
        rel = path.relative_to(root).as_posix()
        if any(rel == s or rel.startswith(s + "/") for s in skip):
            continue
        st = path.lstat()
        snap[rel] = "dir" if path.is_dir() and not path.is_symlink() else (st.st_size, st.st_mtime_ns)
    return snap


@pytest.fixture
def project(tmp_path):
    """A scratch copy of the workflow (Snakefile, workflow/, params.yaml) to run Snakemake in."""
    dest = tmp_path / "project"
    dest.mkdir()
    shutil.copy(REPO / "Snakefile", dest)
    shutil.copy(REPO / "params.yaml", dest)
    shutil.copytree(REPO / "workflow", dest / "workflow")
    shutil.copytree(REPO / "results" / "paper", dest / "results" / "paper")  # the papers' numbers the report reads
    return dest


def edit_params(project_dir: Path, edit) -> None:
    path = project_dir / "params.yaml"
    doc = yaml.safe_load(path.read_text())
    edit(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def signal_at_step(cmd, log_path: Path, step: int, cwd, sig, timeout: float = 120) -> tuple[int, str]:
    """Start a training command in a session of its own and send `sig` to every process of it (torchrun and its
    ranks alike, as SLURM signals a job) once its JSON-lines log reaches `step`. Returns (exit code, stderr)."""
    import json
    import os
    import time

    proc = subprocess.Popen(
        cmd, cwd=cwd, env=tool_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        lines = log_path.read_text().splitlines() if log_path.exists() else []
        if lines and json.loads(lines[-1])["step"] >= step:
            os.killpg(proc.pid, sig)
            break
        time.sleep(0.02)
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def kill_at_step(cmd, log_path: Path, step: int, cwd, timeout: float = 120) -> int:
    """SIGKILL a training command once its log reaches `step`; returns the exit code."""
    import signal

    return signal_at_step(cmd, log_path, step, cwd, signal.SIGKILL, timeout)[0]


def terminate_at_step(cmd, log_path: Path, step: int, cwd, timeout: float = 180) -> tuple[int, str]:
    """SIGTERM, SLURM's preemption, once the log reaches `step`: (exit code, stderr)."""
    import signal

    return signal_at_step(cmd, log_path, step, cwd, signal.SIGTERM, timeout)


def make_tiny_data(ws: Path, train_per_class: int, val_per_class: int) -> dict:
    """The tiny profile's embedded dataset at a chosen size, under ws/images, with manifests in ws/data.
    Returns the resolved tiny params."""
    from alitok import config
    from alitok.data import prepare, synthetic

    p = config.load(REPO / "params.yaml", "tiny")
    emb = p["data"]["embedded"]
    synthetic.write_dataset(
        ws / "images",
        seed=emb["seed"],
        num_classes=emb["num_classes"],
        image_size=p["data"]["image_size"],
        train_per_class=train_per_class,
        val_per_class=val_per_class,
        variation=synthetic.Variation.from_params(emb["variation"]),
    )
    prepare.run(p["data"], ws / "images", ws / "data")
    return p


def save_random_tokenizer(path: Path, p: dict) -> None:
    """A stage-2 tokenizer checkpoint of the params' geometry with seeded random weights."""
    from dataclasses import asdict

    import torch

    from alitok.models.tokenizer import Tokenizer
    from alitok.tokenizer.train import model_config

    cfg = model_config(p)
    torch.manual_seed(0)
    torch.save(
        {
            "format": "alitok-tokenizer/1",
            "kind": "tokenizer",
            "stage": 2,
            "config": asdict(cfg),
            "model": Tokenizer(cfg, stage=2).state_dict(),
        },
        path,
    )


def extract_tiny_tokens(ws: Path, ten_crop_train: bool = False) -> None:
    """ws/tokens/{train,val}: ws/tok.pt's codes of the tiny data that make_tiny_data wrote in ws."""
    from alitok.tokens import extract

    for split in ("train", "val"):
        extract.run(
            tokenizer_path=ws / "tok.pt",
            split_csv=ws / "data" / f"{split}.csv",
            dataset_json=ws / "data" / "dataset.json",
            out_dir=ws / "tokens" / split,
            work_dir=ws / "work_tokens" / split,
            ten_crop=ten_crop_train and split == "train",
            crop_scale=1.1,
            shard_images=16,
            batch=8,
            workers=0,
        )


def save_random_classifier(path: Path, num_classes: int) -> None:
    """A seeded random domain classifier (width 4) in the checkpoint format load_classifier reads."""
    from dataclasses import asdict

    import torch

    from alitok.models.classifier import Classifier, ClassifierConfig

    torch.manual_seed(0)
    cfg = ClassifierConfig(num_classes=num_classes, width=4)
    torch.save(
        {
            "config": asdict(cfg),
            "state_dict": Classifier(cfg).state_dict(),
            "classes": [],
            "image_size": 32,
            "val_accuracy": 0.0,
        },
        path,
    )


def readme_block(name: str) -> list[str]:
    """The command lines of the README's fenced block after `<!-- sharing: NAME ... -->`, comments removed."""
    text = (REPO / "README.md").read_text()
    block = text.split(f"<!-- sharing: {name}", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]


def make_recipe(target: str) -> str:
    """The command a Makefile target runs after `setup` (the venv the tests already run in)."""
    lines = (REPO / "Makefile").read_text().split(f"\n{target}: setup\n", 1)[1].splitlines()
    end = next((i for i, ln in enumerate(lines) if not ln.startswith("\t")), len(lines))
    (recipe,) = [ln.strip() for ln in lines[:end]]
    return recipe


def run_readme_block(name: str, cwd: Path, **substitutions) -> subprocess.CompletedProcess:
    """The README's block as written, as one shell script, with its placeholders filled and `make <target>` as that
    target's recipe (the tests already run in the venv that `setup` makes; the profile is params.yaml's)."""
    lines = []
    for line in readme_block(name):
        for placeholder, value in substitutions.items():
            line = line.replace(placeholder, str(value))
        lines.append(make_recipe(line.split()[1]) if line.startswith("make ") else line)
    return run(["bash", "-ec", "\n".join(lines)], cwd=cwd, timeout=1800)


@pytest.fixture(scope="session")
def tiny_shared(tmp_path_factory):
    """Lab member A: runs the README's sharing lines on the tiny profile: `make smoke` (`dvc repro`, which runs
    Snakemake), the remote, the commit of dvc.lock, `dvc push`. Session-wide: the DVC tests and the tiny
    end-to-end test read the same run (one run, not two)."""
    root = tmp_path_factory.mktemp("dvc")
    origin, remote = root / "origin", root / "remote"
    origin.mkdir()
    remote.mkdir()
    for name in ("Snakefile", "params.yaml", "dvc.yaml", ".dvcignore", ".gitignore"):
        shutil.copy(REPO / name, origin)
    for name in ("workflow", "alitok", "results/paper"):
        shutil.copytree(REPO / name, origin / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    doc = yaml.safe_load((origin / "params.yaml").read_text())
    doc["profile"] = "tiny"
    (origin / "params.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    run(["git", "init", "-q"], cwd=origin)
    for key, value in (("user.email", "ci@example.org"), ("user.name", "ci")):
        run(["git", "config", key, value], cwd=origin)
    run(["dvc", "init", "-q"], cwd=origin)
    run(["dvc", "config", "core.analytics", "false"], cwd=origin)
    run(["git", "add", "-A"], cwd=origin)
    run(["git", "commit", "-qm", "the project"], cwd=origin)  # the repository as a lab member clones it
    run_readme_block("owner", origin, **{"/shared/alitok-dvc": remote})
    return origin, remote
