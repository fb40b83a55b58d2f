"""Benchmarks carry the smoke configs as constants (they must not need the workflow stack): keep them true."""

import sys

from alitok import config
from alitok.generator.config import model_config as generator_config
from alitok.generator.runs import embedded_classes
from alitok.tokenizer.train import model_config as tokenizer_config

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import generator as generator_bench  # noqa: E402
import tokenizer_train as tokenizer_bench  # noqa: E402


def test_tokenizer_benchmark_matches_smoke_params():
    p = config.load(REPO / "params.yaml", "smoke")
    tok = p["tokenizer"]
    assert tokenizer_bench.TokenizerConfig(**tokenizer_bench.SMOKE_MODEL) == tokenizer_config(p)
    s = tokenizer_bench.SMOKE_STEP
    assert s == {
        "batch": tok["training"]["global_batch"],
        "init_std": tok["quantizer"]["init_std"],
        "usage_decay": tok["quantizer"]["usage_decay"],
        "commitment": tok["quantizer"]["commitment_weight"],
        "aux": tok["loss"]["aux_weight"],
        "grad_clip": tok["optimizer"]["grad_clip"],
        "betas": tuple(tok["optimizer"]["betas"]),
    }


def test_generator_benchmark_matches_smoke_params():
    p = config.load(REPO / "params.yaml", "smoke")
    cfg = generator_config(p, "S", embedded_classes(p))
    bench = generator_bench.GeneratorConfig(**generator_bench.SMOKE)
    for field in ("arch", "width", "depth", "heads", "vocab_size", "num_prefix", "grid", "num_classes"):
        assert getattr(bench, field) == getattr(cfg, field), field
    narrow = generator_bench.GeneratorConfig(**generator_bench.NARROW)
    assert narrow.seq_len == 273  # the paper's sampling length


import gpu as gpu_check  # noqa: E402


def test_gpu_check_guidance_is_the_imagenet256_profiles():
    scales = config.load(REPO / "params.yaml", "imagenet256")["generator"]["scales"]
    assert gpu_check.GUIDANCE == {s: (scales[s]["guidance"], scales[s]["guidance_power"]) for s in ("B", "L", "XL")}


def test_gpu_check_runs_on_the_cpu_at_tiny_sizes():
    """benchmarks/gpu.py as a fresh machine runs it, at tiny shapes on the CPU (torch.compile off: its CPU compile
    alone takes a minute): every part prints, every check agrees, exit 0."""
    import subprocess

    proc = subprocess.run(
        [sys.executable, "gpu.py", "--tiny", "--device", "cpu", "--sizes", "B", "L", "--train-batch", "4",
         "--sample-batch", "4", "--train-steps", "1", "--compile-size", "none"],
        cwd=REPO / "benchmarks", capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = proc.stdout
    for part in ("## 1. Training", "## 2. Sampling", "## 3. Fast paths", "## 4-5. Release import"):
        assert part in out
    assert out.count("| yes |") == 2 * 2 + 2 and "All checks agree" in out  # tf32 and bf16 per size, import, DDP
    assert "| L | bf16 |" in out and "| 10.1 |" in out  # the paper's A800 figure beside ours


def test_gpu_check_exits_1_on_a_mismatch(monkeypatch, capsys):
    """A fast path outside its tolerance fails the check (here bf16 held to 0)."""
    monkeypatch.setitem(gpu_check.TOLERANCE, "bf16", 0.0)
    monkeypatch.setattr(gpu_check, "ddp_check", lambda: {"ok": True, "max_diff": 0.0, "note": ""})
    argv = ["gpu.py", "--tiny", "--device", "cpu", "--sizes", "B", "--train-batch", "2", "--sample-batch", "2"]
    monkeypatch.setattr(sys, "argv", argv + ["--train-steps", "1", "--compile-size", "none"])
    sizes = dict(gpu_check.release.SIZES["alitok"])
    assert gpu_check.main() == 1
    assert gpu_check.release.SIZES["alitok"] == sizes  # the tiny stand-in for the release is undone
    out = capsys.readouterr().out
    assert "| B | bf16 |" in out and "| NO |" in out and "MISMATCH" in out


def test_sustained_matmul_counts_every_core_and_restores_the_thread_count():
    """The smoke test's machine factor (tests/test_workflow.py): one-thread matmuls on two cores, all the work over
    all the time, so a shared machine's stalls show; the caller's thread count is left as it was."""
    import torch
    from peak import sustained_matmul

    threads = torch.get_num_threads()
    speed = sustained_matmul(n=64, seconds=0.2, workers=2)
    assert torch.get_num_threads() == threads
    assert 1e6 < speed < 1e13  # FLOP/s per core, whatever the machine
