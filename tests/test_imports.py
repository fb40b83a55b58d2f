"""The package and its model modules import with torch and einops alone (GPU machines lack the rest)."""

import subprocess
import sys

from conftest import REPO

HEAVY = ["snakemake", "dvc", "mlflow", "torch_fidelity", "torchvision", "pandas", "matplotlib", "yaml", "jsonschema", "scipy"]

PROBE = f"""
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {HEAVY!r}:
            raise ImportError('blocked for this test: ' + name)
sys.meta_path.insert(0, Block())
import alitok, alitok.atomic, alitok.models.classifier, alitok.models.tokenizer, alitok.data.manifest
import alitok.models.generator, alitok.generator.sampling, alitok.ctf.sampling, alitok.ctf.clusters
sys.path.insert(0, 'benchmarks')
import tokenizer_train, generator, ctf  # benchmarks run on the GPU machine too
import alitok.cli  # --help must work without the workflow stack too
m = alitok.models.classifier
print('ok')
"""


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
