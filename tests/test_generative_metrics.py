"""Generative metrics: torch-fidelity's numbers against independent numpy/scipy formulas, the ADM reference path
offline (random Inception weights in torch-fidelity's format, a synthetic reference batch), and the archive reader."""

import numpy as np
import pytest
import torch
import torch_fidelity

from alitok.evaluation import reference
from alitok.generator.archive import read_npz
from alitok.metrics import generative
from alitok.metrics.recon import frechet_distance

from fakes import random_inception_weights


def test_pinned_torch_fidelity():
    assert torch_fidelity.__version__ == "0.4.0", "generative.py relies on 0.4.0 internals: re-check them"


def test_fid_matches_scipy_formula():
    rng = np.random.default_rng(0)
    a = torch.from_numpy(rng.normal(size=(300, 16)))
    b = torch.from_numpy(rng.normal(0.3, 1.2, size=(250, 16)) @ rng.normal(size=(16, 16)) * 0.3)
    sa, sb = generative.statistics(a), generative.statistics(b)
    expected = frechet_distance(sa["mu"], sa["sigma"], sb["mu"], sb["sigma"])
    assert generative.fid(sa, sb) == pytest.approx(expected, abs=1e-3)
    assert generative.fid(sa, sa) == pytest.approx(0.0, abs=1e-3)
    assert expected > 1.0  # the two sets differ: the comparison is not between two zeros


def test_inception_score_matches_numpy_formula():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(200, 10)) * 3
    splits = 4
    x = logits[np.random.RandomState(2020).permutation(len(logits))]  # torch-fidelity shuffles with seed 2020
    p = np.exp(x - x.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    scores = []
    for c in np.array_split(np.arange(len(x)), splits):
        q = p[c].mean(0, keepdims=True)
        scores.append(np.exp((p[c] * (np.log(p[c]) - np.log(q))).sum(1).mean()))
    mean, std = generative.inception_score(torch.from_numpy(logits), splits)
    assert mean == pytest.approx(np.mean(scores), abs=1e-3) and std == pytest.approx(np.std(scores), abs=1e-3)
    assert mean > 1.5


def test_precision_recall_matches_brute_force():
    rng = np.random.default_rng(2)
    real = rng.normal(size=(120, 5))
    fake = rng.normal(0.7, 1.0, size=(100, 5))
    k = 3

    def radii(x):
        d = np.linalg.norm(x[:, None] - x[None], axis=-1)
        return np.sort(d, axis=1)[:, k]  # k-th neighbour, self excluded

    d_fr = np.linalg.norm(fake[:, None] - real[None], axis=-1)
    precision = (d_fr <= radii(real)[None]).any(1).mean()
    recall = (d_fr.T <= radii(fake)[None]).any(1).mean()
    p, r = generative.precision_recall(torch.from_numpy(fake), torch.from_numpy(real), k)
    assert p == pytest.approx(precision, abs=1e-6) and r == pytest.approx(recall, abs=1e-6)
    assert 0 < p < 1 and 0 < r < 1


def test_class_consistency():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0]])
    assert generative.class_consistency(logits, [0, 1, 1]) == pytest.approx(2 / 3)


def test_archive_is_read_memory_mapped(tmp_path):
    x = np.random.default_rng(3).integers(0, 256, (7, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "s.npz", x, np.arange(7))
    images, labels = read_npz(tmp_path / "s.npz")
    assert isinstance(images, np.memmap) and (images == x).all() and (labels == np.arange(7)).all()
    np.savez_compressed(tmp_path / "c.npz", x)
    with pytest.raises(ValueError, match="compressed"):
        read_npz(tmp_path / "c.npz")


@pytest.fixture(scope="module")
def inception_weights(tmp_path_factory):
    return random_inception_weights(tmp_path_factory.mktemp("inception"))


def test_missing_inception_weights_say_what_goes_where(tmp_path):
    with pytest.raises(generative.ExtractorError, match="weights-inception-2015-12-05.*evaluation.extractor_weights"):
        generative.extractor("inception-v3-compat", tmp_path / "nope.pth")


def test_adm_reference_batch_offline(tmp_path, inception_weights):
    """mu/sigma come from the reference file (FID as ADM computes it); P/R use its images through Inception pool
    features; the cache is keyed by the weights' hash, so other weights never reuse it."""
    rng = np.random.default_rng(4)
    images = rng.integers(0, 256, (12, 64, 64, 3), dtype=np.uint8)
    mu, sigma = rng.normal(size=2048), np.eye(2048) * 0.5
    np.savez(tmp_path / "VIRTUAL_ref.npz", arr_0=images, mu=mu, sigma=sigma)
    net = generative.extractor("inception-v3-compat", inception_weights)
    spec = {"kind": "adm_npz", "path": str(tmp_path / "VIRTUAL_ref.npz")}
    ref = reference.load(spec, net, inception_weights, tmp_path / "cache", batch=6)
    assert np.array_equal(ref["mu"], mu) and np.array_equal(ref["sigma"], sigma)
    assert ref["pool"].shape == (12, 2048)
    assert generative.weights_digest(inception_weights) in ref["name"]
    cached = list((tmp_path / "cache").glob("reference-*.npz"))
    assert len(cached) == 1 and generative.weights_digest(inception_weights) in cached[0].name

    feats = generative.features(images[:6], net, batch_size=3)
    assert feats["pool"].shape == (6, 2048) and feats["logits_unbiased"].shape == (6, 1008)
    assert torch.allclose(feats["pool"], ref["pool"][:6], atol=1e-4)  # same images, same network, same features

    other = tmp_path / "other.pth"
    state = torch.load(inception_weights)
    state["fc.bias"] = state["fc.bias"] + 1
    torch.save(state, other)
    reference.load(spec, generative.extractor("inception-v3-compat", other), other, tmp_path / "cache", batch=6)
    assert len(list((tmp_path / "cache").glob("reference-*.npz"))) == 2, "other weights, another cache entry"

    np.savez(tmp_path / "bad.npz", arr_0=images)
    with pytest.raises(ValueError, match="mu"):
        reference.load(
            {"kind": "adm_npz", "path": str(tmp_path / "bad.npz")}, net, inception_weights, tmp_path / "c2", batch=6
        )
    with pytest.raises(FileNotFoundError, match="ADM reference batch"):
        reference.load(
            {"kind": "adm_npz", "path": str(tmp_path / "missing.npz")}, net, inception_weights, tmp_path, batch=6
        )
