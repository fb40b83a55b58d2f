"""Class-conditional sampling: KV cache, classifier-free guidance schedules, temperature / top-k / top-p.

Reproducible whatever the hardware split: sample i's randomness is a counter-based hash of
(seed, i, step, code), turned into Gumbel noise, and the token is argmax(logits/τ + noise) (Gumbel-max is
exact multinomial sampling). No RNG state is shared between samples, so the tokens do not depend on the batch
size, on how samples are spread over GPUs, or on the order batches run in. Imports only torch and the model.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from alitok.models.generator import Generator, KVCache

_MASK32 = 0xFFFFFFFF


def guidance_scale(step: int, total: int, scale: float, power: float | None) -> float:
    """w(step): constant `scale` when power is None; else the release's cosine-power ramp from 1 to ≈scale,
    w = 1 + (scale − 1)·(1 − cos(π·(step/total)^power))/2, computed in fp32 (docs/papers/alitok-release.md §2.7)."""
    if power is None:
        return float(scale)
    t = torch.tensor(step / total, dtype=torch.float32)
    return float((scale - 1) * 0.5 * (1 - torch.cos(math.pi * t**power)) + 1)


def _mix32_(x: torch.Tensor, shifted: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer mixer, in place on an int64 tensor below 2^32 (`shifted`: scratch of its shape);
    multipliers < 2^31 keep every product below 2^63."""
    for shift, multiplier in ((16, 0x7FEB352D), (15, 0x46CA68B5)):
        x.bitwise_xor_(torch.bitwise_right_shift(x, shift, out=shifted)).mul_(multiplier).bitwise_and_(_MASK32)
    return x.bitwise_xor_(torch.bitwise_right_shift(x, 16, out=shifted))


def _hash32(x: torch.Tensor) -> torch.Tensor:
    """`_mix32_` of x's low 32 bits, on a copy."""
    x = x & _MASK32
    return _mix32_(x, torch.empty_like(x))


def sample_uniform(seed: int, sample_ids: torch.Tensor, step: int, n: int) -> torch.Tensor:
    """(B, n) uniforms in (0, 1), a pure function of (seed, sample id, step, column): identical on any device."""
    return Noise(seed, sample_ids, n).uniform(step)


class Noise:
    """`sample_uniform` step after step: what does not change between steps (the samples' part of the hash, the
    columns) computed once, and the (B, n) part computed in place in buffers allocated once. The same numbers;
    on the CPU a fresh (B, n) tensor per operation costs more in page faults than the arithmetic."""

    def __init__(self, seed: int, sample_ids: torch.Tensor, n: int):
        device = sample_ids.device
        self.col = torch.arange(n, device=device, dtype=torch.int64)[None, :]
        h = _hash32(torch.tensor(seed, dtype=torch.int64, device=device) + 0x9E3779B9)
        self.samples = _hash32(h ^ sample_ids.to(torch.int64)[:, None])
        self._bits = torch.empty(len(sample_ids), n, dtype=torch.int64, device=device)
        self._shifted = torch.empty_like(self._bits)
        self._gumbel = torch.empty(len(sample_ids), n, dtype=torch.float64, device=device)

    def _uniform(self, step: int, out: torch.Tensor) -> torch.Tensor:
        x = torch.bitwise_xor(_hash32(self.samples + step * 0x85EBCA6B), self.col, out=self._bits)  # < 2^32
        _mix32_(x, self._shifted)
        return out.copy_(x).add_(0.5).mul_(2.0**-32)  # (h + 0.5) / 2^32: a power of two, so the same bits

    def uniform(self, step: int) -> torch.Tensor:
        return self._uniform(step, torch.empty_like(self._gumbel))

    def gumbel(self, step: int) -> torch.Tensor:
        """−log(−log u) of `uniform(step)`, in a buffer that the next call overwrites (and `pick` adds into)."""
        return self._uniform(step, self._gumbel).log_().neg_().log_().neg_()


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Keep the top_k largest (0: all) and the smallest set whose probability reaches top_p (1.0: all)."""
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, -math.inf)
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        drop = cum - sorted_logits.softmax(-1) >= top_p  # keep each token whose preceding mass is < top_p
        logits = logits.masked_fill(drop.scatter(-1, order, drop), -math.inf)
    return logits


def pick(logits: torch.Tensor, gumbel: torch.Tensor, temperature: float) -> torch.Tensor:
    """Gumbel-max draw from softmax(logits/τ), adding the logits into the step's float64 Gumbel noise
    (`Noise.gumbel`) in place: argmax(g + logits/τ), the same bits as logits/τ − log(−log u). τ = 0 is greedy."""
    if temperature == 0:
        return logits.argmax(-1)
    scaled = logits if temperature == 1 else logits.double().div_(temperature)  # x / 1 is x: no bit changes
    return gumbel.add_(scaled).argmax(-1)


@torch.no_grad()
def generate(
    model: Generator,
    labels: torch.Tensor,
    sample_ids: torch.Tensor,
    *,
    seed: int,
    guidance: float = 1.0,
    power: float | None = None,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    kv_cache: bool = True,
) -> torch.Tensor:
    """Codes (B, seq_len) for class `labels` (B,); `sample_ids` (B,) are the samples' global indices.

    Guidance runs [cond ; uncond] as one batch and mixes logits u + w·(c − u) when the scale is not 1 at
    some step; without the cache every step recomputes the whole prefix (the reference the cache is tested
    against, and the baseline of the sampling benchmark).
    """
    cfg = model.config
    model.eval()
    B, T = labels.shape[0], cfg.seq_len
    guided = guidance != 1.0
    lab = torch.cat([labels, torch.full_like(labels, cfg.null_class)]) if guided else labels
    param = next(model.parameters())
    cache = KVCache(cfg, lab.shape[0], T, param.device, param.dtype) if kv_cache else None
    codes = torch.empty(B, T, dtype=torch.long, device=labels.device)  # filled in place: no growing copies
    noise = Noise(seed, sample_ids, cfg.vocab_size)
    scales = [guidance_scale(t, T, guidance, power) for t in range(T)] if guided else None
    for t in range(T):
        if cache is not None:
            last = codes[:, t - 1 : t].repeat(2 if guided else 1, 1) if t else None
            logits = model.step(last, None if t else lab, cache)
        else:
            ids = codes[:, :t].repeat(2 if guided else 1, 1)
            logits = model(lab, F.pad(ids, (0, 1)))[:, -1]  # the padded last code is never read
        logits = logits.float()
        if guided:  # u + w·(c − u), in place on the step's own logits
            cond, uncond = logits.chunk(2)
            logits = cond.sub_(uncond).mul_(scales[t]).add_(uncond)
        logits = filter_logits(logits, top_k, top_p)
        codes[:, t] = pick(logits, noise.gumbel(t), temperature)
    return codes
