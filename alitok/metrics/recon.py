"""Reconstruction metrics: per-image PSNR and SSIM, and the Frechet distance behind FID/rFID.

PSNR and SSIM return one value per image so callers can average over any set (or report spread) themselves.
The Frechet distance is the numpy/scipy formula of pytorch-fid/TTUR, kept here so statistics we compute (or an
ADM reference .npz) can be compared without going through torch-fidelity.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F


def perplexity(counts: torch.Tensor) -> float:
    """exp(entropy) of the distribution the counts give: how many outcomes are effectively in use."""
    p = counts.double() / counts.sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def _as_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 images become [0, 1]; float images are taken as already in [0, 1]. float64 so sums do not drift."""
    return x.double() / 255 if x.dtype == torch.uint8 else x.double()


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB, peak 1, (N, C, H, W) in [0, 1] (or uint8); inf where the images are identical."""
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(f"psnr wants two (N, C, H, W) batches of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    mse = (_as_float(x) - _as_float(y)).pow(2).mean(dim=(1, 2, 3))
    return 10 * torch.log10(1.0 / mse)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    t = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(t**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(
    x: torch.Tensor, y: torch.Tensor, window: int = 11, sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03
) -> torch.Tensor:
    """Per-image SSIM (Wang et al. 2004): Gaussian window 11, sigma 1.5, K1 .01, K2 .03, data range 1; 'valid'
    filtering as the reference MATLAB code (and skimage, which crops the border); mean over pixels, then channels."""
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(f"ssim wants two (N, C, H, W) batches of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    n, c, h, w = x.shape
    if min(h, w) < window:
        raise ValueError(f"ssim needs images of at least {window} px, got {h}x{w}")
    x, y = _as_float(x), _as_float(y)
    g = _gaussian_window(window, sigma).to(x.device)
    gh = g.view(1, 1, 1, window).repeat(c, 1, 1, 1)
    gv = g.view(1, 1, window, 1).repeat(c, 1, 1, 1)

    def blur(t):  # separable depthwise Gaussian, valid region only
        return F.conv2d(F.conv2d(t, gh, groups=c), gv, groups=c)

    c1, c2 = k1**2, k2**2
    mx, my = blur(x), blur(y)
    sxx = blur(x * x) - mx * mx
    syy = blur(y * y) - my * my
    sxy = blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return s.mean(dim=(2, 3)).mean(dim=1)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 sqrt(S1 S2)); when sqrtm of the product is not finite (singular
    covariances, e.g. fewer samples than dimensions) retry with eps on the diagonals, as pytorch-fid does."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, dtype=np.float64)), np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(
            f"mismatched statistics: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}"
        )
    diff = mu1 - mu2
    covmean = _sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = _sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            m = np.max(np.abs(covmean.imag))
            raise ValueError(
                f"sqrtm(sigma1 @ sigma2) has an imaginary component of {m:.3g}; the covariances are "
                f"too ill-conditioned (use more samples than feature dimensions)"
            )
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def _sqrtm(a: np.ndarray) -> np.ndarray:
    """scipy's sqrtm without its singular-matrix warning: pytorch-fid called it with disp=False (silent), and a
    singular product is routine here (dead ReLU features); a non-finite result triggers the eps fallback."""
    from scipy import linalg  # lazily: psnr/ssim must import on machines without scipy

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        return linalg.sqrtm(a)
