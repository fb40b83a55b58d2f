"""The tokenizer's GAN phase: the release's discriminator against its numerics written out independently, the
PatchGAN, the hinge losses, and the release's alternating schedule in real training runs (counts of updates,
optimiser resets at phase starts, exact resume from a kill between a tokenizer and a discriminator update)."""

import json
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml

from alitok.tokenizer.gan import MaskBitDiscriminator, PatchGAN, generator_adv_loss, hinge_d_loss, turn

from conftest import REPO, final_weights, kill_at_step, make_tiny_data, run, save_random_classifier, tiny_train_cmd

# ---- the release's discriminator ---------------------------------------------------------------------------------


def test_release_configuration_has_the_release_parameter_count_and_names():
    """128 channels, 3 stages, GroupNorm 32, pool 16, counted layer by layer from the release's module list."""
    with torch.device("meta"):
        d = MaskBitDiscriminator(channels=128, stages=3, groups=32, pool=16)
    conv = lambda i, o, k: i * o * k * k + o  # noqa: E731
    expected = (
        conv(3, 128, 5)
        + conv(128, 128, 3) + 2 * 128
        + conv(128, 256, 3) + 2 * 256
        + conv(256, 512, 3) + 2 * 512
        + conv(512, 512, 1) + conv(512, 1, 5)
    )  # fmt: skip
    assert sum(p.numel() for p in d.parameters()) == expected == 1_909_889
    keys = set(d.state_dict())
    assert {"block_in.0.weight", "blocks.0.1.kernel", "blocks.2.2.weight", "to_logits.2.weight"} <= keys
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in d.modules())


@pytest.mark.parametrize("size,stages,pool", [(64, 3, 16), (32, 2, 4), (37, 2, 3)])
def test_release_discriminator_shapes(size, stages, pool):
    d = MaskBitDiscriminator(channels=16, stages=stages, groups=8, pool=pool)
    assert d(torch.rand(2, 3, size, size)).shape == (2, 1, pool, pool)


def _reference_forward(sd: dict, x: torch.Tensor, stages: int, groups: int, pool: int) -> torch.Tensor:
    """The release's discriminator written from its description with plain tensor operations: "same" padding by
    hand, the blur as two separable 1-D passes, GroupNorm from its definition, LeakyReLU by `where`, and adaptive
    max pooling over PyTorch's floor/ceil bins."""

    def same(h, k, stride):  # TensorFlow "same": output ceil(n / stride), the extra pixel at the end
        pads = []
        for n in (h.shape[-1], h.shape[-2]):
            total = max(stride * (math.ceil(n / stride) - 1) + k - n, 0)
            pads += [total // 2, total - total // 2]
        return F.pad(h, pads)

    def conv(h, name):
        w = sd[name + ".weight"]
        return F.conv2d(same(h, w.shape[-1], 1), w, sd[name + ".bias"])

    def blur(h):
        c = h.shape[1]
        taps = torch.tensor([1.0, 3.0, 3.0, 1.0]) / 8
        h = same(h, 4, 2)
        h = F.conv2d(h, taps.view(1, 1, 1, 4).repeat(c, 1, 1, 1), stride=(1, 2), groups=c)
        return F.conv2d(h, taps.view(1, 1, 4, 1).repeat(c, 1, 1, 1), stride=(2, 1), groups=c)

    def group_norm(h, name):
        n, c = h.shape[:2]
        g = h.reshape(n, groups, -1)
        g = (g - g.mean(-1, keepdim=True)) / torch.sqrt(g.var(-1, unbiased=False, keepdim=True) + 1e-5)
        return g.reshape(h.shape) * sd[name + ".weight"].view(1, c, 1, 1) + sd[name + ".bias"].view(1, c, 1, 1)

    def leaky(h):
        return torch.where(h >= 0, h, 0.1 * h)

    def adaptive_max(h):
        rows = []
        for i in range(pool):
            r0, r1 = (i * h.shape[-2]) // pool, -((-(i + 1) * h.shape[-2]) // pool)
            cols = []
            for j in range(pool):
                c0, c1 = (j * h.shape[-1]) // pool, -((-(j + 1) * h.shape[-1]) // pool)
                cols.append(h[..., r0:r1, c0:c1].amax(dim=(-2, -1)))
            rows.append(torch.stack(cols, -1))
        return torch.stack(rows, -2)

    h = leaky(conv(x, "block_in.0"))
    for b in range(stages):
        h = leaky(group_norm(blur(conv(h, f"blocks.{b}.0")), f"blocks.{b}.2"))
    h = adaptive_max(h)
    return conv(leaky(conv(h, "to_logits.0")), "to_logits.2")


@pytest.mark.parametrize("size,stages,pool", [(64, 3, 4), (37, 2, 3), (24, 2, 8)])
def test_release_discriminator_matches_its_numerics_written_independently(size, stages, pool):
    """Odd sizes exercise the uneven "same" padding; a pool above the feature size repeats cells, as PyTorch does."""
    torch.manual_seed(size)
    d = MaskBitDiscriminator(channels=16, stages=stages, groups=4, pool=pool)
    for m in d.modules():  # non-trivial GroupNorm affine parameters
        if isinstance(m, nn.GroupNorm):
            nn.init.normal_(m.weight, 1.0, 0.3)
            nn.init.normal_(m.bias, 0.0, 0.3)
    x = torch.rand(3, 3, size, size)
    ours = d(x)
    ref = _reference_forward({k: v.detach() for k, v in d.state_dict().items()}, x, stages, 4, pool)
    assert ours.shape == ref.shape
    torch.testing.assert_close(ours, ref, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("make", [lambda: MaskBitDiscriminator(16, 2, 8, 4), lambda: PatchGAN(8, 2)])
def test_discriminators_are_per_sample(make):
    """GroupNorm: a sample's logits do not depend on the rest of the batch (what makes DDP match one process)."""
    d = make()
    x = torch.rand(4, 3, 32, 32)
    assert torch.allclose(d(x)[:1], d(x[:1]), atol=1e-6)


@pytest.mark.parametrize("size,layers,expected", [(64, 3, 6), (32, 2, 6), (256, 3, 30)])
def test_patchgan_shape(size, layers, expected):
    d = PatchGAN(channels=8, layers=layers)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in d.modules())
    assert d(torch.rand(2, 3, size, size)).shape == (2, 1, expected, expected)


def test_hinge_losses():
    ones = torch.ones(2, 1, 3, 3)
    assert hinge_d_loss(ones, -ones).item() == 0.0  # both sides beyond the margin
    assert hinge_d_loss(0 * ones, 0 * ones).item() == 1.0
    assert hinge_d_loss(-ones, ones).item() == 2.0
    mixed = hinge_d_loss(torch.tensor([3.0, 0.5]), torch.tensor([-0.5, 2.0]))
    assert mixed.item() == pytest.approx(0.5 * (0.25 + 1.75))
    assert generator_adv_loss(torch.tensor([1.0, -3.0])).item() == 1.0


def test_turns():
    gan_phase, plain = {"steps": 5, "gan_weight": 0.005}, {"steps": 5, "gan_weight": 0.0}
    release = [turn("release", gan_phase, k) for k in range(5)]
    assert [t.label for t in release] == ["generator", "discriminator"] * 2 + ["generator"]
    assert [t.lr_step for t in release if t.generator] == [0, 1, 2] and release[0].lr_steps == 3
    assert {turn("llamagen", gan_phase, k).label for k in range(5)} == {"both"}
    assert {turn(r, plain, k).label for r in ("release", "llamagen") for k in range(5)} == {"generator"}


# ---- the release's schedule in training runs ----------------------------------------------------------------------

PHASE_STEPS = 10  # three stage-1 phases: the GAN phase is global steps 21..30


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """tiny with the release recipe: MaskBit D, alternation, optimiser resets, no clipping, every tensor decayed."""
    ws = tmp_path_factory.mktemp("release_gan")
    emb = make_tiny_data(ws, train_per_class=4, val_per_class=2)["data"]["embedded"]
    save_random_classifier(ws / "perceptual.pt", emb["num_classes"])
    doc = yaml.safe_load((REPO / "params.yaml").read_text())
    tok = doc["profiles"]["tiny"]["tokenizer"]
    tok["discriminator"] = {"recipe": "release", "channels": 8, "layers": 1, "groups": 4, "pool": 2, "loss_weight": 0.1}
    tok["optimizer"] = {"grad_clip": None, "reset_each_phase": True, "decay_vectors": True}
    tok["stage1"] = [dict(ph, steps=PHASE_STEPS) for ph in tok["stage1"]]
    tok["stage2"] = [
        dict(ph, steps=2, gan_weight=0.0) for ph in tok["stage2"]
    ]  # D untouched: shows what it started from
    tok["training"].update(checkpoint_every=3, log_every=1)
    (ws / "params.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return ws


def train_cmd(ws, name, stage=1, init=None):
    inputs = ["--train", ws / "data" / "train.csv", "--dataset", ws / "data" / "dataset.json"]
    files = (ws / name / "work", ws / name / "final.pt", ws / name / "log.jsonl")
    cmd = tiny_train_cmd(
        "train-tokenizer", *files, "--stage", stage, *inputs, "--perceptual-net", ws / "perceptual.pt",
        params=ws / "params.yaml",
    )  # fmt: skip
    return cmd + (["--init", str(init)] if init else [])


@pytest.fixture(scope="module")
def straight(workspace):
    return final_weights(workspace / "straight" / "final.pt", "tokenizer", train_cmd(workspace, "straight"))


def _records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_gan_phase_alternates_and_each_phase_restarts_the_optimisers(workspace, straight):
    records = _records(workspace / "straight" / "log.jsonl")
    assert [r["step"] for r in records] == list(range(1, 3 * PHASE_STEPS + 1))
    phases = [[r for r in records if r["phase"] == name] for name in ("lpips_warmup", "perceptual", "gan")]
    for before in phases[:2]:  # no GAN: every iteration is a tokenizer update, the schedule moves each time
        assert {r["update"] for r in before} == {"generator"}
        assert [r["lr_step"] for r in before] == list(range(PHASE_STEPS))
        assert [r["g_updates"] for r in before] == list(range(1, PHASE_STEPS + 1)), "AdamW restarts at the phase"
        assert {r["d_updates"] for r in before} == {0}
    gan = phases[2]
    assert [r["update"] for r in gan] == ["generator", "discriminator"] * (PHASE_STEPS // 2)
    assert gan[-1]["g_updates"] == gan[-1]["d_updates"] == PHASE_STEPS // 2
    assert [r["g_updates"] for r in gan] == [k // 2 + 1 for k in range(PHASE_STEPS)]
    assert [r["lr_step"] for r in gan if r["update"] == "generator"] == list(range(PHASE_STEPS // 2))
    assert len({r["lr"] for r in gan}) == PHASE_STEPS // 2, "the schedule advances on tokenizer updates only"
    assert all(r["gan_g"] != 0 and r["gan_d"] != 0 for r in gan[1:])


def test_kill_between_a_tokenizer_and_a_discriminator_update_resumes_exactly(workspace, straight):
    """Checkpoints every 3 steps: the one at step 21 falls after the GAN phase's first (tokenizer) update, so a
    kill at step 22 resumes with a discriminator update first."""
    name = "killed"
    kill_at_step(train_cmd(workspace, name), workspace / name / "work" / "log.jsonl", 22, cwd=REPO)
    last = torch.load(workspace / name / "work" / "last.pt", weights_only=False, map_location="cpu")
    assert last["step"] == 21
    assert turn("release", {"steps": PHASE_STEPS, "gan_weight": 0.005}, 21 - 2 * PHASE_STEPS).label == "discriminator"
    resumed = final_weights(workspace / name / "final.pt", "tokenizer", train_cmd(workspace, name))
    assert resumed.keys() == straight.keys()
    for key in straight:
        assert torch.equal(resumed[key], straight[key]), key
    both = [torch.load(workspace / n / "final.pt", weights_only=True)["discriminator"] for n in ("straight", name)]
    assert all(torch.equal(both[0][k], both[1][k]) for k in both[0])


def test_stage2_starts_its_discriminator_from_stage1s(workspace, straight):
    run(train_cmd(workspace, "stage2", stage=2, init=workspace / "straight" / "final.pt"), cwd=REPO)
    d1 = torch.load(workspace / "straight" / "final.pt", weights_only=True)["discriminator"]
    d2 = torch.load(workspace / "stage2" / "final.pt", weights_only=True)["discriminator"]
    assert all(torch.equal(d1[k], d2[k]) for k in d1)
