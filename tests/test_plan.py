"""`alitok plan`: its FLOP counts against torch's FlopCounterMode on real steps, its schedules against the released
ones, and the command on the paper profiles."""

import json
import subprocess
import sys

import pytest
import torch

from alitok import config, plan
from alitok.models.generator import Generator, GeneratorConfig

from conftest import REPO


@pytest.mark.parametrize(
    "arch, causal", [("alitok", True), ("llamagen", True), ("llamagen", False)], ids=["alitok", "llamagen", "ctf2"]
)
def test_sequence_formula_is_within_5_percent_of_flop_counter_on_a_real_step(arch, causal):
    """6 N T + 12 L T^2 d against FlopCounterMode over a real forward and backward (CPU attention included)."""
    torch.manual_seed(0)
    k = 64
    cfg = GeneratorConfig(
        arch=arch, width=128, depth=3, heads=4, vocab_size=512, num_classes=10, num_prefix=9, grid=8, causal=causal,
        input_vocab=0 if causal else k,
    )  # fmt: skip
    model, batch = Generator(cfg), 4
    codes = torch.randint(0, 512 if causal else k, (batch, cfg.seq_len))
    counter = plan.flop_counter()
    with counter:
        model(torch.randint(0, 10, (batch,)), codes).float().logsumexp(-1).mean().backward()
    counted = counter.get_total_flops()
    attention = sum(v for op, v in counter.get_flop_counts()["Global"].items() if "attention" in str(op))
    assert attention > 0  # the CPU's fused attention is counted
    estimate = batch * plan.sequence_train_flops(model, cfg.seq_len + (0 if causal else 1))
    assert abs(estimate / counted - 1) < 0.05, (estimate, counted)


def test_tokenizer_training_counts_three_forwards_within_5_percent():
    """The tokenizer's forward counted on fake tensors (shapes only), x3, against a real stage-1 step's forward and
    backward counted on the CPU."""
    p = config.load(REPO / "params.yaml", "smoke")
    size = p["data"]["image_size"]
    fake = plan.forward_flops(plan.shapes_only(plan._tokenizer(p, 1)), size)
    torch.manual_seed(0)
    model = plan._tokenizer(p, 1)().train()
    x = torch.rand(2, 3, size, size)
    counter = plan.flop_counter()
    with counter:
        out = model(x)
        (out["image"].float().square().mean() + out["commitment"] + out["codebook"]).backward()
    assert abs(3 * 2 * fake / counter.get_total_flops() - 1) < 0.05, (fake, counter.get_total_flops())


def test_paper_schedules_are_the_released_ones():
    """Steps and batches of imagenet256 and ctf256 against the released recipes, in epochs of ILSVRC-2012's train
    set: AliTok-B/L 800 epochs and XL 400 at 2,048 (docs/papers/alitok.md §2.3), its tokenizer's README phases
    350K + 300K steps (§1.6); LlamaGen's c2i recipe 300 epochs of 5,004 steps at 256 (docs/papers/llamagen.md §3)."""
    alitok = plan.plan(config.load(REPO / "params.yaml", "imagenet256"))
    stages = {s.name: s for s in alitok["stages"]}
    for scale, epochs in (("B", 800), ("L", 800), ("XL", 400)):
        s = stages[f"generator {scale}"]
        assert s.batch == 2048 and abs(s.steps * s.batch / plan.IMAGENET_TRAIN / epochs - 1) < 0.002
    stage1 = [s for s in alitok["stages"] if s.name.startswith("tokenizer stage 1")]
    stage2 = [s for s in alitok["stages"] if s.name.startswith("tokenizer stage 2")]
    assert sum(s.steps for s in stage1) == 350_000 and sum(s.steps for s in stage2) == 300_000
    assert {s.batch for s in stage1 + stage2} == {1536}
    assert stages["extract tokens"].batch == plan.IMAGENET_TRAIN * 10 + plan.IMAGENET_VAL  # ten crops
    # the generator of 177M parameters: 6 N T dominates, with N its matmul weights (embedding tables excluded)
    assert 5.5e14 < stages["generator B"].flops_per_step < 6.5e14
    ctf = plan.plan(config.load(REPO / "params.yaml", "ctf256"))
    assert not any(s.name.startswith("tokenizer") for s in ctf["stages"])  # LlamaGen's VQ-16 is imported
    for scale in ("B", "L", "XL"):
        s = next(s for s in ctf["stages"] if s.name == f"generator {scale}")
        assert s.batch == 256 and s.steps == 300 * (plan.IMAGENET_TRAIN // 256)
    release = plan.plan(config.load(REPO / "params.yaml", "release256"))
    assert all(s.sampling for s in release["stages"]) and len(release["stages"]) == 5  # nothing is trained


def test_the_command_prints_a_paper_profiles_plan(tmp_path):
    """imagenet512 through the command (imagenet256, ctf256 and release256 are planned in-process above)."""
    for profile in ("imagenet512",):
        out = tmp_path / f"{profile}.json"
        proc = subprocess.run(
            [sys.executable, "-m", "alitok", "plan", "--profile", profile, "--gpu", "A100", "--json", str(out)],
            cwd=REPO, capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert f"# Compute plan: params profile `{profile}`" in proc.stdout and "| **total** |" in proc.stdout
        result = json.loads(out.read_text())
        assert result["gpu"] == "A100" and all(s["gpu_hours"] > 0 and s["flops"] > 0 for s in result["stages"])
    bad = subprocess.run(
        [sys.executable, "-m", "alitok", "plan", "--profile", "imagenet256", "--mfu", "1.5"],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert bad.returncode != 0 and "--mfu must be in (0, 1]" in bad.stderr
