"""VQ-16 trained by the tokenizer trainer: LlamaGen's VQ losses and straight-through gradients, a checkpoint that
loads as VQ-16, exact kill-and-resume, stage 2 refused, eval-tokenizer on it, and what the job reads."""

import json
import math
import random
import time
from dataclasses import asdict

import pytest
import torch
import torch.nn.functional as F
import yaml

from alitok import config, reads
from alitok.models.vq16 import VQ16, Quantizer, VQ16Config
from alitok.tokenizer import evaluate
from alitok.tokenizer.release import load_tokenizer

from conftest import REPO, final_weights, kill_at_step, make_tiny_data, save_random_classifier, tiny_train_cmd

# LlamaGen's VQ_16 shrunk for 2 CPU cores: at the tiny profile's 32 px, three levels give an 8x8 grid of 64 codes
TINY = dict(codebook_size=64, code_dim=8, base_channels=32, ch_mult=[1, 2, 2], z_channels=32, num_res_blocks=1)
STEPS = 5  # per phase of the tiny profile's three: 15 steps, room for a kill after the first checkpoint
TERMS = {"recon", "commitment", "codebook", "perceptual", "lpips", "gan_g", "gan_d"}


def vq16_params(p: dict, **section) -> dict:
    """The tiny params profile with the VQ-16 family."""
    p["tokenizer"].update(family="vq16", vq16=section or TINY)
    return p


# ---------------------------------------------------------------------------------------- losses and gradients


def test_vq_losses_are_llamagen_formulas():
    """On a hand-made batch: LlamaGen's nearest normalised code, its two losses on normalised vectors, z_q with
    the code's value and the normalised feature's gradient; codebook moves codes only, commitment the features."""
    torch.manual_seed(0)
    q = Quantizer(codebook_size=5, code_dim=3)
    with torch.no_grad():
        q.embedding.weight.copy_(torch.tensor([[2.0, 0, 0], [0, 3, 0], [0, 0, 0.5], [1, 1, 0], [-1, 0, 0]]))
    z = torch.tensor([[[4.0, 0.5, 0], [0.1, 0, 1], [-2, 0.2, 0.1]], [[1, 1.2, 0], [0, 5, 1], [0, 0, 2]]])
    z.requires_grad_(True)
    z_q, codes, losses = q.straight_through(z)

    zn, e = F.normalize(z.detach(), dim=-1), F.normalize(q.embedding.weight.detach(), dim=-1)
    expected = torch.cdist(zn, e.expand(2, -1, -1)).argmin(-1)
    assert codes.tolist() == expected.tolist() == [[0, 2, 4], [3, 1, 2]]
    assert torch.equal(codes, q(z.detach()))  # the index path of encode_codes agrees
    target = ((e[codes] - zn) ** 2).mean()
    torch.testing.assert_close(losses["codebook"], target, rtol=1e-6, atol=0)
    torch.testing.assert_close(losses["commitment"], target, rtol=1e-6, atol=0)
    torch.testing.assert_close(z_q.detach(), e[codes], rtol=0, atol=1e-7)

    losses["commitment"].backward(retain_graph=True)
    assert z.grad.abs().sum() > 0 and q.embedding.weight.grad is None
    z.grad = None
    losses["codebook"].backward(retain_graph=True)
    assert z.grad is None
    moved = q.embedding.weight.grad.abs().sum(1) > 0
    assert moved.tolist() == [True, True, True, True, True]  # every code is some feature's nearest here
    q.embedding.weight.grad = None
    w = torch.randn_like(z)
    (z_q * w).sum().backward()  # straight through: the gradient of the normalised feature itself
    assert q.embedding.weight.grad is None
    z_ref = z.detach().clone().requires_grad_(True)
    (F.normalize(z_ref, dim=-1) * w).sum().backward()
    torch.testing.assert_close(z.grad, z_ref.grad, rtol=0, atol=1e-7)


def test_forward_reconstructs_in_unit_range_unclamped_and_trains_encoder_and_codebook():
    """The training forward: images in [0, 1] in and out, not clamped (decode_codes clamps); the pixel loss reaches
    the encoder through the quantiser, the codebook loss the codebook."""
    torch.manual_seed(0)
    model = VQ16(VQ16Config(image_size=16, **{**TINY, "ch_mult": [1, 2]}))
    with torch.no_grad():
        model.decoder.conv_out.bias.copy_(torch.tensor([0.5, 0.0, -2.0]))  # red over, blue under the range
    x = torch.rand(2, 3, 16, 16)
    out = model(x)
    assert set(out) == {"image", "codes", "z", "commitment", "codebook"}
    assert out["image"].shape == x.shape and out["codes"].shape == (2, 64) and out["z"].shape == (2, 64, 8)
    assert out["image"][:, 0].max() > 1 and out["image"][:, 2].min() < 0
    with torch.no_grad():
        assert torch.equal(out["codes"], model.encode_codes(x))
        torch.testing.assert_close(model.decode_codes(out["codes"]), out["image"].clamp(0, 1), rtol=0, atol=1e-5)

    F.mse_loss(out["image"], x).backward(retain_graph=True)
    assert model.encoder.conv_in.weight.grad.abs().sum() > 0 and model.quant_conv.weight.grad.abs().sum() > 0
    assert model.quantize.embedding.weight.grad is None  # the pixel loss sees the codes' values only
    out["codebook"].backward()
    assert model.quantize.embedding.weight.grad.abs().sum() > 0


def test_usage_stats_of_a_batch():
    q = Quantizer(codebook_size=64, code_dim=8)
    stats = q.usage_stats(torch.tensor([[0, 0, 1, 2], [0, 0, 1, 2]]))
    assert stats["codebook_used"] == 3 / 64
    assert stats["codebook_perplexity"] == pytest.approx(math.exp(-(0.5 * math.log(0.5) + 0.5 * math.log(0.25))))


# ---------------------------------------------------------------------------------------- what the job reads


def test_reads_declare_the_family_and_its_section():
    alitok = config.load(REPO / "params.yaml", "tiny")
    declared = reads.train_tokenizer(alitok, 1)["tokenizer"]
    assert list(declared) == ["model", "quantizer", "loss", "perceptual", "discriminator", "optimizer", "training",
                              "stage1"]  # fmt: skip
    explicit = config.load(REPO / "params.yaml", "tiny")
    explicit["tokenizer"]["family"] = "alitok"
    assert reads.train_tokenizer(explicit, 1) == reads.train_tokenizer(alitok, 1)

    vq = vq16_params(config.load(REPO / "params.yaml", "tiny"))
    declared = reads.train_tokenizer(vq, 1)["tokenizer"]
    assert "model" not in declared and declared["family"] == "vq16" and declared["vq16"] == TINY
    wider = vq16_params(config.load(REPO / "params.yaml", "tiny"), **{**TINY, "z_channels": 64})
    assert config.section_hash(reads.train_tokenizer(wider, 1)) != config.section_hash(reads.train_tokenizer(vq, 1))
    vq["tokenizer"]["model"]["enc_width"] = 64  # AliTok's section: not read by a VQ-16 job
    assert reads.train_tokenizer(vq, 1)["tokenizer"] == declared


# ---------------------------------------------------------------------------------------- training runs


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """Tiny data, a perceptual net (the domain classifier of eval-tokenizer too) and the tiny profile with VQ-16
    at five steps per phase, a checkpoint every third step and a log record every step."""
    ws = tmp_path_factory.mktemp("vq16")
    emb = make_tiny_data(ws, train_per_class=2, val_per_class=1)["data"]["embedded"]
    save_random_classifier(ws / "perceptual.pt", emb["num_classes"])
    doc = yaml.safe_load((REPO / "params.yaml").read_text())
    tiny = doc["profiles"]["tiny"]["tokenizer"]
    tiny.update(family="vq16", vq16=TINY)
    tiny["stage1"] = [dict(ph, steps=STEPS) for ph in tiny["stage1"]]
    tiny["training"].update(checkpoint_every=3, log_every=1)
    (ws / "params.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return ws


def train_cmd(ws, name):
    inputs = ["--train", ws / "data" / "train.csv", "--dataset", ws / "data" / "dataset.json"]
    files = (ws / name / "work", ws / name / "final.pt", ws / name / "log.jsonl")
    perceptual = ["--perceptual-net", ws / "perceptual.pt"]
    return tiny_train_cmd("train-tokenizer", *files, "--stage", 1, *inputs, *perceptual, params=ws / "params.yaml")


@pytest.fixture(scope="module")
def uninterrupted(workspace):
    return final_weights(workspace / "straight" / "final.pt", "tokenizer", train_cmd(workspace, "straight"))


def test_training_writes_a_checkpoint_that_loads_as_vq16(workspace, uninterrupted):
    path = workspace / "straight" / "final.pt"
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    assert (ckpt["format"], ckpt["kind"], ckpt["family"], ckpt["stage"]) == ("alitok-tokenizer/1", "tokenizer",
                                                                             "vq16", 1)  # fmt: skip
    assert ckpt["config"] == asdict(VQ16Config(image_size=32, **TINY)) and ckpt["steps"] == 3 * STEPS
    model = load_tokenizer(path)
    assert isinstance(model, VQ16) and not model.training
    assert all(torch.equal(model.state_dict()[k], v) for k, v in uninterrupted.items())
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        codes = model.encode_codes(x)
        images = model.decode_codes(codes)
    assert codes.shape == (3, 64) and int(codes.max()) < 64 and images.shape == x.shape
    assert images.min() >= 0 and images.max() <= 1

    records = [json.loads(line) for line in (workspace / "straight" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, 3 * STEPS + 1))
    active = {t for r in records for t, v in r.items() if t in TERMS | {"aux"} and v != 0}
    assert active == TERMS, "every term but AliTok's auxiliary one"
    assert all(0 < r["codebook_used"] <= 1 and r["codebook_perplexity"] >= 1 for r in records)
    assert all(r["commitment"] == pytest.approx(r["codebook"]) for r in records)  # one value, two gradients


def test_kill_and_resume_gives_identical_weights(workspace, uninterrupted):
    name = "killed"
    code = kill_at_step(train_cmd(workspace, name), workspace / name / "work" / "log.jsonl",
                        random.Random(int(time.time())).randint(4, 10), cwd=REPO)  # fmt: skip
    assert code != 0 and (workspace / name / "work" / "last.pt").is_file(), "killed after its first checkpoint"
    resumed = final_weights(workspace / name / "final.pt", "tokenizer", train_cmd(workspace, name))
    assert resumed.keys() == uninterrupted.keys()
    for key in uninterrupted:
        assert torch.equal(resumed[key], uninterrupted[key]), key
    steps = [json.loads(line)["step"] for line in (workspace / name / "log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 3 * STEPS + 1)), "the log has each step exactly once after the resume"


@pytest.mark.parametrize("stage, phases_from", [(2, None), (1, 2)])
def test_stage2_and_its_control_are_refused(tmp_path, stage, phases_from):
    from alitok.tokenizer import train

    p = vq16_params(config.load(REPO / "params.yaml", "tiny"))
    files = {"train_csv": None, "dataset_json": None, "log_out": tmp_path / "log.jsonl", "out": tmp_path / "out.pt"}
    asked = f"--stage {stage}" + (f" --phases-from {phases_from}" if phases_from else "")
    message = rf"^tokenizer.family vq16 has one training stage .*, not {asked}: stage 2 and the continued"
    with pytest.raises(config.ParamsError, match=message):
        train.run(p, stage=stage, phases_from=phases_from, work_dir=tmp_path / "work", **files)
    assert not list(tmp_path.iterdir()), "refused before anything is written"


def test_eval_tokenizer_on_a_vq16_checkpoint(workspace, uninterrupted, tmp_path):
    ws = workspace
    metrics = evaluate.run(
        ws / "straight" / "final.pt",
        ws / "data" / "val.csv",
        ws / "data" / "dataset.json",
        ws / "perceptual.pt",
        tmp_path / "metrics.json",
        tmp_path / "recon.png",
    )
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics
    assert metrics["family"] == "vq16" and metrics["stage"] == 1 and metrics["num_images"] == 10
    assert 5 < metrics["psnr"] < 60 and 0 < metrics["codebook_used_fraction"] <= 1
    assert math.isfinite(metrics["rfid"]) and (tmp_path / "recon.png").stat().st_size > 0
