"""Tokenizer losses: clear errors for missing weights, LPIPS and logits MSE on random local weights (nothing is
downloaded), the smoke "domain" perceptual network. The GAN's pieces are tests/test_tokenizer_gan.py's."""

import subprocess
import sys
from dataclasses import asdict

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

from alitok.models.classifier import Classifier, ClassifierConfig
from alitok.tokenizer.losses import (
    LPIPS_SCALE,
    LPIPS_SHIFT,
    VGG16_LPIPS_CHANNELS,
    PerceptualLoss,
)


@pytest.fixture(scope="module")
def vgg_files(tmp_path_factory):
    """Random (seeded) VGG16 conv weights in torchvision's state-dict keys, and LPIPS linear weights in the lpips
    package's keys. Only the conv part is saved: the 100M-parameter classifier is never used by LPIPS."""
    d = tmp_path_factory.mktemp("vgg")
    g = torch.Generator().manual_seed(0)
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in torchvision.models.vgg16(weights=None).state_dict().items()}
    sd = {}
    for k, shape in shapes.items():
        if not k.startswith("features."):
            continue
        if k.endswith("weight"):
            sd[k] = torch.randn(shape, generator=g) * (2 / (shape[1] * 9)) ** 0.5
        else:
            sd[k] = torch.randn(shape, generator=g) * 0.01
    lin = {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1, generator=g) for k, c in enumerate(VGG16_LPIPS_CHANNELS)}
    torch.save(sd, d / "vgg16.pth")
    torch.save(lin, d / "lpips_vgg.pth")
    return (
        {
            "lpips_net": "vgg16",
            "lpips_vgg_weights": str(d / "vgg16.pth"),
            "lpips_linear_weights": str(d / "lpips_vgg.pth"),
        },
        sd,
        lin,
    )


@pytest.fixture(scope="module")
def domain_ckpt(tmp_path_factory):
    """A tiny untrained classifier checkpoint in the format alitok.classifier.train writes."""
    torch.manual_seed(0)
    config = ClassifierConfig(num_classes=5, width=4)
    model = Classifier(config)
    path = tmp_path_factory.mktemp("domain") / "model.pt"
    torch.save(
        {
            "config": asdict(config),
            "state_dict": model.state_dict(),
            "classes": list("abcde"),
            "image_size": 32,
            "val_accuracy": 0.2,
        },
        path,
    )
    return path


def _pair(size=32, n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, size, size, generator=g)
    y = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    return x, y


def _check_frozen_and_differentiable(loss_fn, x, y):
    """x: target images, y: a 'reconstruction' that must receive gradients."""
    assert loss_fn(x, x)[0].item() == pytest.approx(0.0, abs=1e-6)
    y = y.clone().requires_grad_(True)
    total, parts = loss_fn(y, x)
    assert total.item() > 0
    total.backward()
    assert y.grad is not None and y.grad.abs().sum() > 0
    params = list(loss_fn.parameters())
    assert all(not p.requires_grad and p.grad is None for p in params)
    return total, parts


# ---- errors ------------------------------------------------------------------------------------------------------


def test_missing_logits_weights_names_the_key(tmp_path):
    missing = tmp_path / "convnext_small.pth"
    with pytest.raises(FileNotFoundError, match=r"perceptual\.logits_weights: .*convnext_small\.pth does not exist"):
        PerceptualLoss({"logits_net": "convnext_small", "logits_weights": str(missing)}, 1.0, 0.0)
    with pytest.raises(FileNotFoundError, match=r"perceptual\.logits_weights is not set.*perceptual weight to 0"):
        PerceptualLoss({"logits_net": "convnext_small", "logits_weights": None}, 1.0, 0.0)


def test_missing_lpips_weights_names_the_key(tmp_path, vgg_files):
    cfg, _, _ = vgg_files
    with pytest.raises(FileNotFoundError, match=r"perceptual\.lpips_vgg_weights.*vgg16.*lpips weight to 0"):
        PerceptualLoss({**cfg, "lpips_vgg_weights": str(tmp_path / "nope.pth")}, 0.0, 1.0)
    with pytest.raises(FileNotFoundError, match=r"perceptual\.lpips_linear_weights is not set"):
        PerceptualLoss({**cfg, "lpips_linear_weights": None}, 0.0, 1.0)
    with pytest.raises(FileNotFoundError, match=r"perceptual\.logits_weights is not set.*perceptual_net"):
        PerceptualLoss({"logits_net": "domain", "logits_weights": None}, 1.0, 0.0)


def test_zero_weight_needs_no_file():
    loss_fn = PerceptualLoss({"logits_net": "convnext_small", "logits_weights": None, "lpips_net": "vgg16"}, 0.0, 0.0)
    x, y = _pair()
    total, parts = loss_fn(x, y)
    assert total.item() == 0 and parts == {}


# ---- LPIPS (VGG16) -------------------------------------------------------------------------------------------------


def _reference_lpips(sd, lin, x, y):
    """Independent LPIPS v0.1 as the lpips package computes it (1x1 conv heads, normalize_tensor with eps 1e-10)."""
    vgg = torchvision.models.vgg16(weights=None).features
    vgg.load_state_dict({k[len("features.") :]: v for k, v in sd.items()})
    vgg.eval()
    shift = torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1)
    scale = torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1)

    def taps(t):
        h, out = ((2 * t - 1) - shift) / scale, []
        for i, layer in enumerate(vgg):
            h = layer(h)
            if i in (3, 8, 15, 22, 29):
                out.append(h.clone())
        return out

    def norm(f):
        return f / (torch.sqrt(torch.sum(f**2, dim=1, keepdim=True)) + 1e-10)

    val = 0
    for k, (a, b) in enumerate(zip(taps(x), taps(y))):
        conv = nn.Conv2d(a.shape[1], 1, 1, bias=False)
        conv.weight.data = lin[f"lin{k}.model.1.weight"]
        val = val + conv((norm(a) - norm(b)) ** 2).mean(dim=(2, 3), keepdim=True)
    return val.flatten()


def test_lpips_vgg(vgg_files):
    cfg, sd, lin = vgg_files
    loss_fn = PerceptualLoss(cfg, 0.0, 1.0)
    x, y = _pair(size=32)
    total, parts = _check_frozen_and_differentiable(loss_fn, x, y)
    assert set(parts) == {"lpips"} and total.item() == pytest.approx(parts["lpips"].item())
    with torch.no_grad():
        expected = _reference_lpips(sd, lin, x, y).mean()
    assert total.item() == pytest.approx(expected.item(), rel=1e-4)
    loss_fn.train()  # a parent's .train() must not unfreeze anything
    assert not any(m.training for m in loss_fn.modules())


def test_lpips_bad_linear_file(tmp_path, vgg_files):
    cfg, _, lin = vgg_files
    bad = tmp_path / "bad.pth"
    torch.save({k: v for k, v in lin.items() if not k.startswith("lin4")}, bad)
    with pytest.raises(ValueError, match="lin4.model.1.weight"):
        PerceptualLoss({**cfg, "lpips_linear_weights": str(bad)}, 0.0, 1.0)


# ---- logits MSE (ConvNeXt-S) ---------------------------------------------------------------------------------------


def test_convnext_logits_mse(tmp_path):
    torch.manual_seed(0)
    net = torchvision.models.convnext_small(weights=None).eval()
    path = tmp_path / "convnext_small.pth"
    torch.save(net.state_dict(), path)
    cfg = {"logits_net": "convnext_small", "logits_weights": str(path), "logits_size": 224}
    loss_fn = PerceptualLoss(cfg, 1.0, 0.0)
    x, y = _pair(size=64, n=1)
    total, parts = _check_frozen_and_differentiable(loss_fn, x, y)
    assert set(parts) == {"perceptual"}
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    def logits(t):
        return net((F.interpolate(t, size=224, mode="bilinear", align_corners=False, antialias=True) - mean) / std)

    with torch.no_grad():
        expected = F.mse_loss(logits(y), logits(x))
    assert total.item() == pytest.approx(expected.item(), rel=1e-4)


def test_convnext_wrong_file(tmp_path):
    path = tmp_path / "not_convnext.pth"
    torch.save({"weight": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match="expected state dict"):
        PerceptualLoss({"logits_net": "convnext_small", "logits_weights": str(path)}, 1.0, 0.0)


# ---- the smoke "domain" network ------------------------------------------------------------------------------------


def test_domain_variant(domain_ckpt):
    cfg = {
        "logits_net": "domain",
        "logits_weights": None,
        "logits_size": 32,
        "lpips_net": "domain",
        "lpips_vgg_weights": None,
        "lpips_linear_weights": None,
    }
    loss_fn = PerceptualLoss(cfg, 0.5, 2.0, domain_checkpoint=domain_ckpt)
    assert loss_fn.logits_net.net is loss_fn.lpips_net.net  # one network serves both parts
    x, y = _pair(size=32, n=4)
    total, parts = _check_frozen_and_differentiable(loss_fn, x, y)
    assert set(parts) == {"perceptual", "lpips"}
    assert parts["perceptual"] > 0 and parts["lpips"] > 0
    assert total.item() == pytest.approx(0.5 * parts["perceptual"].item() + 2.0 * parts["lpips"].item(), rel=1e-6)
    assert loss_fn.logits_mse(y, x).item() == pytest.approx(parts["perceptual"].item(), rel=1e-6)
    assert loss_fn.lpips(y, x).item() == pytest.approx(parts["lpips"].item(), rel=1e-6)

    # the trainer's spelling: default weights build both parts, the checkpoint under cfg["domain_weights"]
    both = PerceptualLoss({**cfg, "domain_weights": str(domain_ckpt)})
    assert both.lpips(y, x).item() == pytest.approx(parts["lpips"].item(), rel=1e-6)
    logits_only = PerceptualLoss(cfg, 1.0, 0.0, domain_checkpoint=domain_ckpt)
    with pytest.raises(RuntimeError, match="LPIPS part was not built"):
        logits_only.lpips(y, x)

    # the cfg path wins over domain_checkpoint, and the logits part matches the classifier directly
    only_logits = PerceptualLoss({**cfg, "logits_weights": str(domain_ckpt)}, 1.0, 0.0)
    from alitok.classifier.train import load_classifier

    model, _ = load_classifier(domain_ckpt)
    with torch.no_grad():
        expected = F.mse_loss(model(y), model(x))
    assert only_logits(y, x)[0].item() == pytest.approx(expected.item(), rel=1e-5)


def test_classifier_feature_maps():
    model = Classifier(ClassifierConfig(num_classes=3, width=4)).eval()
    maps = model.feature_maps(torch.rand(2, 3, 32, 32))
    assert [tuple(m.shape[1:]) for m in maps] == [(4, 32, 32), (8, 16, 16), (16, 8, 8), (32, 4, 4), (32, 2, 2)]


def test_imports_without_the_heavy_stack():
    """The trainer's loss module and psnr/ssim import with torch alone (GPU machines may lack the rest)."""
    heavy = ["torchvision", "scipy", "torch_fidelity", "PIL", "tqdm", "matplotlib", "pandas", "yaml"]
    probe = f"""
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {heavy!r}:
            raise ImportError('blocked for this test: ' + name)
sys.meta_path.insert(0, Block())
import alitok.tokenizer.losses, alitok.metrics.recon
print('ok')
"""
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
