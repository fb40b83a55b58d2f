"""Generative metrics from features computed once: FID, IS, precision/recall, class-consistency.

torch-fidelity is used as a library, the way MAR uses it: its extractor produces every feature a metric needs
in one pass per image set, and its own metric functions turn features into numbers. That lets FID use a
reference's precomputed `mu`/`sigma` (the ADM reference batch), which `calculate_metrics` cannot, and lets
precision/recall use Inception pool features (k = 3) as the ADM evaluator does, not torch-fidelity's VGG default.
The torch-fidelity 0.4.0 internals used here (`fid_features_to_statistics`, `fid_statistics_to_metric`,
`isc_features_to_metric`, `calculate_precision_recall_part`, `get_featuresdict_from_dataset`,
`create_feature_extractor`) are pinned in requirements and covered by tests/test_generative_metrics.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD, isc_features_to_metric
from torch_fidelity.metric_prc import calculate_precision_recall_part
from torch_fidelity.utils import create_feature_extractor, get_featuresdict_from_dataset

from alitok.atomic import sha256_file

INCEPTION = "inception-v3-compat"
# (pool layer: FID and precision/recall; logits without bias: IS; logits: class predictions)
LAYERS = {
    INCEPTION: ("2048", "logits_unbiased", "logits"),
    "alitok-domain-classifier": ("pool", "logits_unbiased", "logits"),
}


class ExtractorError(FileNotFoundError):
    """A feature extractor's weights are missing; the message says which file goes where."""


class HWCImages(Dataset):
    """uint8 (N, H, W, 3) images (a memory-mapped archive, read lazily) as torch-fidelity's CHW uint8 items."""

    def __init__(self, images):
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
            raise ValueError(f"expected uint8 (N, H, W, 3) images, got {images.dtype} {images.shape}")
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(np.array(self.images[i])).permute(2, 0, 1)  # a writable copy of one image


def extractor(name: str, weights, cuda: bool = False):
    """The evaluation network. Inception weights come from a local file (torch-fidelity's .pth format): nothing
    is downloaded, and a missing file is an error naming the params key."""
    if weights is None or not Path(weights).is_file():
        what = (
            "the Inception-v3 weights torch-fidelity uses (weights-inception-2015-12-05-6726825d.pth, from "
            "github.com/toshas/torch-fidelity/releases)"
            if name == INCEPTION
            else "the domain classifier's model.pt"
        )
        raise ExtractorError(
            f"evaluation extractor {name}: weights file {weights} not found; put {what} there and "
            "set params evaluation.extractor_weights to its path"
        )
    if name != INCEPTION:
        from alitok.metrics import fidelity

        name = fidelity.register()  # params say domain_classifier; torch-fidelity knows it by its registry name
    return create_feature_extractor(name, list(LAYERS[name]), cuda=cuda, feature_extractor_weights_path=str(weights))


def features(images, net, batch_size: int = 64, cuda: bool = False) -> dict[str, torch.Tensor]:
    """One pass over uint8 (N, H, W, 3) images: {"pool", "logits_unbiased", "logits"} (float64 for the statistics)."""
    pool, unbiased, logits = LAYERS[net.name]
    out = get_featuresdict_from_dataset(
        HWCImages(images), net, batch_size, cuda, save_cpu_ram=True, verbose=sys.stderr.isatty()
    )
    return {"pool": out[pool].double(), "logits_unbiased": out[unbiased].double(), "logits": out[logits].double()}


def weights_digest(path, length: int = 16) -> str:
    """Cache keys carry the extractor weights' hash: statistics of another network are never reused."""
    return sha256_file(path)[:length]


def statistics(pool: torch.Tensor) -> dict[str, np.ndarray]:
    """mu and sigma of pool features, in the dtypes torch-fidelity's FID check asserts (float64 both here)."""
    s = fid_features_to_statistics(pool.double())
    return {"mu": s["mu"].astype(np.float64), "sigma": s["sigma"].astype(np.float64)}


def fid(stats_1: dict, stats_2: dict) -> float:
    a = {k: np.asarray(v, dtype=np.float64) for k, v in stats_1.items() if k in ("mu", "sigma")}
    b = {k: np.asarray(v, dtype=np.float64) for k, v in stats_2.items() if k in ("mu", "sigma")}
    return float(fid_statistics_to_metric(a, b, verbose=False)[KEY_METRIC_FID])


def inception_score(logits_unbiased: torch.Tensor, splits: int = 10, seed: int = 2020) -> tuple[float, float]:
    """IS as torch-fidelity computes it (samples shuffled with `seed`, then `splits` chunks): mean and std."""
    out = isc_features_to_metric(logits_unbiased, splits=splits, shuffle=True, rng_seed=seed)
    return float(out[KEY_METRIC_ISC_MEAN]), float(out[KEY_METRIC_ISC_STD])


def precision_recall(fake_pool: torch.Tensor, real_pool: torch.Tensor, k: int = 3) -> tuple[float, float]:
    """Improved precision/recall (Kynkäänniemi et al.) on pool features, k-th neighbour radii, as ADM does."""
    p, r = calculate_precision_recall_part(fake_pool.float(), real_pool.float(), neighborhood=k, batch_size=10000)
    return float(p), float(r)


def fid_resampled(pool: torch.Tensor, ref: dict, rows) -> np.ndarray:
    """FID of the samples at each row of resample indices against the reference statistics: the Frechet distance
    |mu1 - mu2|^2 + tr S1 + tr S2 - 2 tr sqrt(S2^1/2 S1 S2^1/2), with S2^1/2 computed once and the last trace from
    the eigenvalues of an n x n matrix when n < d (rank S1 < n). The same number as `fid` (to about 1e-9 relative),
    at a fraction of a matrix square root per resample: 2048-dim Inception features cost seconds per scipy sqrtm."""
    x = pool.double().numpy()
    mu2, sigma2 = np.asarray(ref["mu"], np.float64), np.asarray(ref["sigma"], np.float64)
    w, v = np.linalg.eigh(sigma2)
    root2 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    out = []
    for r in rows:
        s = x[np.asarray(r)]
        n, d = s.shape
        c = s - s.mean(0)
        projected = c @ root2 / np.sqrt(n - 1)  # (n, d): S2^1/2 S1 S2^1/2 = projected.T @ projected
        small = projected @ projected.T if n < d else projected.T @ projected
        cross = np.sqrt(np.clip(np.linalg.eigvalsh(small), 0, None)).sum()
        mean_term = float(((s.mean(0) - mu2) ** 2).sum())
        out.append(mean_term + (c**2).sum() / (n - 1) + np.trace(sigma2) - 2 * cross)
    return np.array(out)


PRC_RESAMPLE_MAX = 50_000_000  # distances held for resampled precision/recall (200 MB of float32) [ours]


def precision_recall_resampled(fake_pool: torch.Tensor, real_pool: torch.Tensor, k: int, rows) -> np.ndarray | None:
    """(precision, recall) of the fake samples at each row of resample indices, as `precision_recall` scores a set:
    the real k-NN balls are the reference's and stay fixed, the fake balls are the resample's own (a repeated sample
    is its own neighbour at distance 0, as it would be for torch-fidelity). The distances are computed once. None
    when they would not fit in PRC_RESAMPLE_MAX (paper scale: 50,000 samples against 10,000 reference images)."""
    n, m = len(fake_pool), len(real_pool)
    if max(n * m, m * m, n * n) > PRC_RESAMPLE_MAX:
        return None
    fake, real = fake_pool.float(), real_pool.float()
    d_fake_real = torch.cdist(fake, real)
    real_radii = torch.cdist(real, real).kthvalue(k + 1, dim=1).values
    in_real = (d_fake_real <= real_radii).any(dim=1).double()  # precision, sample by sample
    d_fake_fake = torch.cdist(fake, fake)
    out = []
    for r in rows:
        r = torch.as_tensor(r)
        radii = d_fake_fake[r][:, r].kthvalue(k + 1, dim=1).values
        recall = (d_fake_real[r].T <= radii).any(dim=1).double().mean()
        out.append((float(in_real[r].mean()), float(recall)))
    return np.array(out)


def class_consistency(logits: torch.Tensor, labels) -> float:
    """Share of samples the evaluation classifier assigns to their conditioning class."""
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    return float((logits.argmax(1) == labels).double().mean())
