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
