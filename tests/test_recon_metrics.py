"""Reconstruction metrics against independent computations, and rFID through torch-fidelity with the domain
classifier registered as its feature extractor (pins the torch-fidelity 0.4.0 interfaces we rely on)."""

from dataclasses import asdict

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import signal

from alitok.metrics import fidelity
from alitok.metrics.recon import frechet_distance, psnr, ssim
from alitok.models.classifier import Classifier, ClassifierConfig

# ---- PSNR / SSIM -------------------------------------------------------------------------------------------------


def test_psnr():
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    assert torch.isinf(psnr(x, x)).all()
    # a constant offset d on every pixel gives mse = d^2 exactly (away from the [0, 1] edges)
    x = 0.25 + 0.5 * x
    d = torch.tensor([0.01, 0.05, 0.2]).view(3, 1, 1, 1)
    got = psnr(x, x + d)
    assert got.shape == (3,)
    assert torch.allclose(got, 10 * torch.log10(1 / d.flatten().double() ** 2), atol=1e-4)
    u = (x * 255).round().to(torch.uint8)
    assert torch.allclose(psnr(u, u.clone()), psnr(u.float() / 255, u.float() / 255))


def _ssim_reference(x: np.ndarray, y: np.ndarray) -> float:
    """One (C, H, W) image pair with a 2-D window and scipy's 'valid' correlation: independent of the separable
    torch implementation."""
    t = np.arange(11) - 5
    g = np.exp(-(t**2) / (2 * 1.5**2))
    w = np.outer(g, g)
    w /= w.sum()
    c1, c2 = 0.01**2, 0.03**2
    out = []
    for a, b in zip(x, y):
        f = lambda z: signal.correlate2d(z, w, mode="valid")  # noqa: E731
        ma, mb = f(a), f(b)
        va, vb, cov = f(a * a) - ma**2, f(b * b) - mb**2, f(a * b) - ma * mb
        out.append((((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2))).mean())
    return float(np.mean(out))


def test_ssim():
    g = torch.Generator().manual_seed(0)
    x = F.interpolate(torch.rand(2, 3, 8, 8, generator=g), size=32, mode="bilinear", align_corners=False)
    assert torch.allclose(ssim(x, x), torch.ones(2, dtype=torch.float64), atol=1e-12)
    scores = [ssim(x, (x + s * torch.randn(x.shape, generator=g)).clamp(0, 1)) for s in (0.02, 0.1, 0.3)]
    assert all((a > b).all() for a, b in zip(scores, scores[1:]))
    y = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    got = ssim(x, y)
    for i in range(2):
        assert got[i].item() == pytest.approx(_ssim_reference(x[i].double().numpy(), y[i].double().numpy()), rel=1e-10)
    with pytest.raises(ValueError, match="at least 11 px"):
        ssim(x[..., :8, :8], x[..., :8, :8])


# ---- Frechet distance --------------------------------------------------------------------------------------------


def _random_stats(rng, d, n):
    f = rng.normal(size=(n, d)) @ rng.normal(size=(d, d))
    return f.mean(0) + rng.normal(size=d), np.atleast_2d(np.cov(f, rowvar=False))


def _frechet_reference(mu1, s1, mu2, s2):
    """tr sqrt(S1 S2) = tr sqrt(S1^1/2 S2 S1^1/2), the latter symmetric PSD: eigh only, no sqrtm."""
    w, v = np.linalg.eigh(s1)
    r = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = np.linalg.eigvalsh(r @ s2 @ r)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.clip(inner, 0, None)).sum())


def test_frechet_distance():
    rng = np.random.default_rng(0)
    for d in (1, 5, 32):
        mu1, s1 = _random_stats(rng, d, 200)
        mu2, s2 = _random_stats(rng, d, 200)
        assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(_frechet_reference(mu1, s1, mu2, s2), rel=1e-6)
        assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-6 * np.trace(s1))
    # rank-deficient covariances (fewer samples than dimensions) still give a finite number
    mu1, s1 = _random_stats(rng, 16, 6)
    mu2, s2 = _random_stats(rng, 16, 6)
    assert np.isfinite(frechet_distance(mu1, s1, mu2, s2))
    with pytest.raises(ValueError, match="mismatched"):
        frechet_distance(mu1, s1, mu2[:3], s2[:3, :3])


# ---- torch-fidelity with the domain classifier ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def classifier_path(tmp_path_factory):
    torch.manual_seed(0)
    config = ClassifierConfig(num_classes=4, width=4)  # 32-d pooled features
    model = Classifier(config)
    for m in model.modules():  # keep activations O(1) through five stages, so FID is not vanishingly small
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    path = tmp_path_factory.mktemp("clf") / "model.pt"
    torch.save(
        {
            "config": asdict(config),
            "state_dict": model.state_dict(),
            "classes": list("abcd"),
            "image_size": 32,
            "val_accuracy": 0.25,
        },
        path,
    )
    return path


def _images(seed, n=60, size=32, noise=0.0):
    """Smooth random images (low-res noise upsampled), optionally with pixel noise: 'random-ish' but structured."""
    g = torch.Generator().manual_seed(seed)
    x = F.interpolate(torch.rand(n, 3, 4, 4, generator=g), size=size, mode="bicubic", align_corners=False)
    x = x + noise * torch.randn(x.shape, generator=g)
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def _own_fid(real, fake, path):
    from alitok.classifier.train import load_classifier

    model, _ = load_classifier(path)
    with torch.no_grad():
        fr = model.features(real.float() / 255)[0].double().numpy()
        ff = model.features(fake.float() / 255)[0].double().numpy()
    return frechet_distance(fr.mean(0), np.cov(fr, rowvar=False), ff.mean(0), np.cov(ff, rowvar=False))


def test_extractor_features(classifier_path):
    fidelity.register()
    fidelity.register()  # idempotent
    ext = fidelity.DomainClassifierExtractor(
        fidelity.EXTRACTOR_NAME,
        ["logits_unbiased", "pool", "logits"],
        feature_extractor_weights_path=str(classifier_path),
    ).eval()
    x = _images(0, n=5, size=48)  # native size, no resize
    unbiased, pool, logits = ext(x)
    assert pool.shape == (5, 32) and logits.shape == unbiased.shape == (5, 4)
    assert torch.allclose(logits, unbiased + ext.model.head.bias, atol=1e-5)
    with pytest.raises(FileNotFoundError, match="model.pt"):
        fidelity.DomainClassifierExtractor(fidelity.EXTRACTOR_NAME, ["pool"])
    with pytest.raises(ValueError, match="uint8"):
        ext(x.float())


def test_rfid_matches_own_frechet(classifier_path, tmp_path):
    real = _images(1)
    fake = _images(2, noise=0.2)
    got = fidelity.rfid(real, fake, classifier_path)
    expected = _own_fid(real, fake, classifier_path)
    assert expected > 0.01
    assert got == pytest.approx(expected, rel=1e-3, abs=1e-6)
    assert abs(fidelity.rfid(real, real, classifier_path)) < 1e-3 * expected
    # cached reference features give the same number, and the cache is keyed by the classifier's hash
    cached = fidelity.rfid(real, fake, classifier_path, cache_root=tmp_path / "cache", real_cache_name="val32")
    assert cached == pytest.approx(got, rel=1e-6)
    assert any(fidelity.file_digest(classifier_path) in p.name for p in (tmp_path / "cache").rglob("*"))
