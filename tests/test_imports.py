"""The package and its model modules import with torch and einops alone (GPU machines lack the rest)."""

import contextlib
import io
import subprocess
import sys

import pytest

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
    """`alitok --help` lists every command; each command's --help shows its own and the common options. One
    process for the commands' help: each imports its stage module, torch included, which costs seconds apiece."""
    from alitok.cli import COMMANDS, build_parser

    proc = subprocess.run([sys.executable, "-m", "alitok", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and all(stage in proc.stdout for stage in COMMANDS)
    assert {"make-dataset", "prepare-data", "train-classifier"} <= set(COMMANDS)
    for stage in COMMANDS:
        with pytest.raises(SystemExit) as end, contextlib.redirect_stdout(io.StringIO()) as out:
            build_parser(stage).parse_args([stage, "--help"])
        assert end.value.code == 0 and "--params" in out.getvalue(), stage


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


def _module_name(path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """alitok module -> the alitok modules it imports anywhere in its source, at module level or inside a function
    (a lazy import defers a dependency, it does not remove it). Parsed, not imported: nothing heavy is loaded."""
    import ast

    files = {_module_name(f): f for f in sorted((REPO / "alitok").rglob("*.py"))}

    def resolve(name: str) -> str | None:
        """The deepest alitok module that `name` (a module or a name inside one) lies in."""
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the package, up level - 1
                    anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{anchor}.{base}" if base else anchor
                targets = [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            deps |= {m for t in targets if t.split(".")[0] == "alitok" and (m := resolve(t)) not in (None, name)}
        graph[name] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                return path[path.index(d) :] + [d]
            if d not in state and (cycle := visit(d)):
                return cycle
        path.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (cycle := visit(m)):
            return cycle
    return None


def test_cycle_finder_finds_lazy_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycles():
    graph = import_graph()
    assert {"alitok.config", "alitok.cli", "alitok.ablations.units"} <= set(graph)  # the walk found the package
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle inside alitok: " + " -> ".join(cycle)
