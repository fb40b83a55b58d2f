"""Set-up files agree with each other and hold no machine-specific path."""

import re
import subprocess

import yaml

from conftest import REPO


def _pins(lines):
    pins = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.lower()] = version
    return pins


def test_requirements_and_environment_yml_agree():
    req = _pins((REPO / "requirements.txt").read_text().splitlines())
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    deps = env["dependencies"]
    assert "python=3.11" in deps
    pip_section = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    assert _pins(pip_section) == req
    assert all("==" in line for line in pip_section), "every pip entry is pinned"


def test_stack_pins_are_the_known_working_ones():
    req = _pins((REPO / "requirements.txt").read_text().splitlines())
    assert req["torch"] == "2.14.1" and req["torchvision"] == "0.29.1"
    assert req["torch-fidelity"] == "0.4.0" and req["mlflow"] == "3.17.2"


def test_no_machine_specific_paths_in_project_files():
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    # built from parts so this file does not match itself
    # absolute paths only: at the start of a line or after whitespace, a quote, '=' or '('
    pattern = re.compile(
        r"(?:^|[\s\"'=(])(/(?:" + "|".join(["wo" + "rk", "ro" + "ot", "ho" + "me", "Us" + "ers", "op" + "t"]) + ")/)",
        re.MULTILINE,
    )
    offenders = []
    for name in files:
        path = REPO / name
        if not path.is_file() or path.suffix in {".png", ".pt", ".npz"}:
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        offenders += [f"{name}: {m.group(1)}" for m in pattern.finditer(text)]
    assert not offenders, offenders


def test_setup_script_is_a_fast_noop_when_stamp_matches():
    script = (REPO / "scripts" / "setup_venv.sh").read_text()
    assert "sha256sum" in script and ".requirements.sha256" in script
    proc = subprocess.run(["bash", "scripts/setup_venv.sh"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "building" not in proc.stderr


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    assert "make test" in readme and ci.strip().splitlines()[-1] == "make test"
