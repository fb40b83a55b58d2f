import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = str(Path(sys.executable).parent)


def tool_env() -> dict:
    """Environment for subprocesses: this interpreter's bin first, so `alitok` and `snakemake` resolve."""
    env = dict(os.environ)
    env["PATH"] = VENV_BIN + os.pathsep + env.get("PATH", "")
    env.setdefault("PYTHONHASHSEED", "0")
    return env


def run(cmd, cwd, check=True, timeout=900):
    proc = subprocess.run(cmd, cwd=cwd, env=tool_env(), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


@pytest.fixture
def project(tmp_path):
    """A scratch copy of the workflow (Snakefile, workflow/, params.yaml) to run Snakemake in."""
    dest = tmp_path / "project"
    dest.mkdir()
    shutil.copy(REPO / "Snakefile", dest)
    shutil.copy(REPO / "params.yaml", dest)
    shutil.copytree(REPO / "workflow", dest / "workflow")
    return dest


def edit_params(project_dir: Path, edit) -> None:
    path = project_dir / "params.yaml"
    doc = yaml.safe_load(path.read_text())
    edit(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def kill_at_step(cmd, log_path: Path, step: int, cwd, timeout: float = 120) -> int:
    """Start a training command and SIGKILL it once its JSON-lines log reaches `step`; returns the exit code."""
    import json
    import signal
    import time

    proc = subprocess.Popen(cmd, cwd=cwd, env=tool_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        lines = log_path.read_text().splitlines() if log_path.exists() else []
        if lines and json.loads(lines[-1])["step"] >= step:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    return proc.wait()
