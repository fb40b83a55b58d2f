"""Mixed precision without a GPU: the trainers' autocast paths (released fp16 + GradScaler, the paper's bf16)
run on the CPU once "cpu" is among precision.AMP_DEVICES, so dtype mistakes show up here, not on a cluster."""

import json

import pytest
import torch
import yaml

from alitok import config
from alitok.generator import train as generator_train
from alitok.tokenizer import train as tokenizer_train
from alitok.training import checkpoint, precision

from conftest import REPO, extract_tiny_tokens, make_tiny_data, save_random_classifier, save_random_tokenizer


def test_cpu_stays_fp32_unless_enabled(monkeypatch):
    cpu = torch.device("cpu")
    for name in ("fp16", "bf16", "fp32"):
        amp = precision.Precision(cpu, name)
        assert not amp.enabled and not amp.scaler.is_enabled()
        with amp.autocast():
            assert torch.nn.Linear(4, 4)(torch.ones(1, 4)).dtype == torch.float32
    monkeypatch.setattr(precision, "AMP_DEVICES", ("cuda", "cpu"))
    layer = torch.nn.Linear(4, 4)
    for name, dtype, scaled in (
        ("fp16", torch.float16, True),
        ("bf16", torch.bfloat16, False),
        ("fp32", torch.float32, False),
    ):
        amp = precision.Precision(cpu, name)
        assert amp.scaler.is_enabled() == scaled
        with amp.autocast():
            assert layer(torch.ones(1, 4)).dtype == dtype


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """Tiny data, a perceptual net, tokens of a random tokenizer, and params with every stage-1 phase 2 steps."""
    ws = tmp_path_factory.mktemp("precision")
    p = make_tiny_data(ws, train_per_class=2, val_per_class=1)
    save_random_classifier(ws / "perceptual.pt", p["data"]["embedded"]["num_classes"])
    save_random_tokenizer(ws / "tok.pt", p)
    extract_tiny_tokens(ws)
    doc = yaml.safe_load((REPO / "params.yaml").read_text())
    tiny = doc["profiles"]["tiny"]
    tiny["tokenizer"]["stage1"] = [dict(ph, steps=2) for ph in tiny["tokenizer"]["stage1"]]
    tiny["tokenizer"]["training"].update(log_every=1)
    tiny["generator"]["scales"]["S"].update(steps=4)
    tiny["generator"]["training"].update(log_every=1, eval_every=2)
    (ws / "params.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return ws


def _params(ws, section: str, name: str) -> dict:
    p = config.load(ws / "params.yaml", "tiny")
    p[section]["training"]["precision"] = name
    return p


def _log(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("name", ["fp16", "bf16"])
def test_tokenizer_trains_under_autocast(ws, name, monkeypatch):
    """Every loss term, the GradScaler (fp16) and the discriminator's step run under autocast; the weights
    stay fp32, the losses finite and near the fp32 run's, and not equal to them (autocast was on)."""

    def train(tag):
        tokenizer_train.run(
            _params(ws, "tokenizer", tag),
            stage=1,
            train_csv=ws / "data" / "train.csv",
            dataset_json=ws / "data" / "dataset.json",
            work_dir=ws / f"tok_{tag}" / "work",
            out=ws / f"tok_{tag}" / "final.pt",
            log_out=ws / f"tok_{tag}" / "log.jsonl",
            perceptual_net=ws / "perceptual.pt",
        )
        return _log(ws / f"tok_{tag}" / "log.jsonl")

    reference = _log(ws / "tok_fp32" / "log.jsonl") if (ws / "tok_fp32" / "log.jsonl").exists() else train("fp32")
    monkeypatch.setattr(precision, "AMP_DEVICES", ("cuda", "cpu"))
    records = train(name)
    assert {"recon", "commitment", "codebook", "aux", "perceptual", "lpips", "gan_g", "gan_d"} <= {
        k for r in records for k in r
    }
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in records)
    first, ref = records[0]["recon"], reference[0]["recon"]
    assert first != ref and abs(first - ref) < 0.05 * ref, (first, ref)
    state = checkpoint.load(ws / f"tok_{name}" / "final.pt", kind="tokenizer")["model"]
    assert all(v.dtype == torch.float32 for v in state.values() if v.is_floating_point())


def test_generator_trains_under_bf16_autocast(ws, monkeypatch):
    def train(tag):
        generator_train.run(
            _params(ws, "generator", tag),
            scale="S",
            train_dir=ws / "tokens" / "train",
            val_dir=ws / "tokens" / "val",
            work_dir=ws / f"gen_{tag}" / "work",
            out=ws / f"gen_{tag}" / "model.pt",
            log_out=ws / f"gen_{tag}" / "log.jsonl",
        )
        return [r for r in _log(ws / f"gen_{tag}" / "log.jsonl") if "loss" in r]

    reference = train("fp32")
    monkeypatch.setattr(precision, "AMP_DEVICES", ("cuda", "cpu"))
    records = train("bf16")
    assert len(records) == len(reference) and all(torch.isfinite(torch.tensor(r["loss"])) for r in records)
    pairs = [(r["loss"], q["loss"]) for r, q in zip(records, reference)]  # step 1: ln(vocab) either way (zero head)
    assert any(a != b for a, b in pairs) and all(abs(a - b) < 0.02 * b for a, b in pairs), pairs
    state = checkpoint.load(ws / "gen_bf16" / "model.pt", kind="generator")["model"]
    assert all(v.dtype == torch.float32 for v in state.values() if v.is_floating_point())
