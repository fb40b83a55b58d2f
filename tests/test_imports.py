"""The package and its model modules import with torch and einops alone (GPU machines lack the rest)."""

import subprocess
import sys

from conftest import REPO, tool_env

HEAVY = [
    "snakemake",
    "dvc",
    "mlflow",
    "torch_fidelity",
    "torchvision",
    "pandas",
    "matplotlib",
    "yaml",
    "jsonschema",
    "scipy",
]
# not while the Snakefile is parsed (Snakemake itself imports pandas, through its SLURM plugin)
DAG_FREE = ["torch", "mlflow", "torch_fidelity", "torchvision", "matplotlib"]


def blocker(packages: list[str], why: str) -> str:
    """Python source that makes importing any of `packages` (or their submodules) an ImportError saying `why`."""
    return f"""import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {packages!r}:
            raise ImportError({why!r} + name)
sys.meta_path.insert(0, Block())
"""


PROBE = (
    blocker(HEAVY, "blocked for this test: ")
    + """
import alitok, alitok.atomic, alitok.models.classifier, alitok.models.tokenizer, alitok.data.manifest
import alitok.models.generator, alitok.generator.sampling, alitok.ctf.sampling, alitok.ctf.clusters
sys.path.insert(0, 'benchmarks')
import tokenizer_train, generator, ctf  # benchmarks run on the GPU machine too
import alitok.cli  # --help must work without the workflow stack too
m = alitok.models.classifier
print('ok')
"""
)


def test_models_import_with_torch_and_einops_only():
    proc = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_cli_help_for_every_stage():
    from alitok.cli import build_parser

    parser = build_parser()
    stages = [a for a in parser._subparsers._group_actions[0].choices]
    assert {"make-dataset", "prepare-data", "train-classifier"} <= set(stages)
    for stage in stages:
        proc = subprocess.run([sys.executable, "-m", "alitok", stage, "--help"], capture_output=True, text=True)
        assert proc.returncode == 0 and "--params" in proc.stdout, stage


def test_building_the_dag_imports_no_torch(project, tmp_path):
    """Every Snakemake invocation, dry runs included, parses the Snakefile: doing that without torch, MLflow,
    torch-fidelity or matplotlib saves seconds per invocation (jobs import what they need themselves)."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(blocker(DAG_FREE, "the DAG build imported "))
    env = tool_env() | {"PYTHONPATH": str(site)}
    proc = subprocess.run(
        ["snakemake", "-n", "--config", "profile=tiny"], cwd=project, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0 and "Job stats" in proc.stdout, (proc.stdout + proc.stderr)[-3000:]
