"""CTF sampling: stage 1 draws the coarse map autoregressively with guidance, then one stage-2 pass draws every
fine label at once (docs/papers/ctf.md §1.5).

The same counter-based noise as the plain generator keeps each sample a pure function of (seed, sample index):
stage 1 uses steps 0..T-1 of a sample's stream and stage 2 steps T..2T-1. Stage 2 is conditioned on the class,
without guidance (whether the paper guides stage 2 is not known; docs/papers/ctf.md §1.5). Imports only torch
and the model.
"""

from __future__ import annotations

import math

import torch

from alitok.generator.sampling import Noise, filter_logits, generate, pick
from alitok.models.generator import Generator


@torch.no_grad()
def generate_ctf(
    stage1: Generator,
    stage2: Generator,
    fine_to_coarse: torch.Tensor,
    labels: torch.Tensor,
    sample_ids: torch.Tensor,
    *,
    seed: int,
    guidance: float,
    power: float | None,
    tau1: float,
    tau2: float,
    top_k: int,
    restrict: bool,
    kv_cache: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(coarse, fine) codes, both (B, seq_len). `restrict` keeps stage 2's draw inside the sampled cluster."""
    coarse = generate(
        stage1, labels, sample_ids, seed=seed, guidance=guidance, power=power, temperature=tau1, kv_cache=kv_cache
    )
    stage2.eval()
    logits = stage2(labels, coarse).float()  # (B, T, V)
    if restrict:
        outside = fine_to_coarse.to(coarse.device)[None, None, :] != coarse[..., None]
        logits = logits.masked_fill(outside, -math.inf)
    logits = filter_logits(logits, top_k)
    T, noise = coarse.shape[1], Noise(seed, sample_ids, logits.shape[-1])
    fine = torch.stack([pick(logits[:, t], noise.gumbel(T + t), tau2) for t in range(T)], dim=1)
    return coarse, fine
