"""The class-conditional AR generator: a LLaMA-style decoder-only transformer over tokenizer codes.

One file, two architecture families that differ only in a few switches (docs/papers/alitok.md §2.1,
docs/papers/ctf.md §1):
- `alitok`: QK-norm, biases on qkv, attention out-projection and head, one embedding table shared by
  codes and classes (rows: codes, an unused row, classes, the null class), 1-D RoPE over the tokenizer's
  prefix tokens and 2-D RoPE over the image grid offset by the prefix count.
- `llamagen`: no QK-norm, no biases, a separate class table (classes + null), 2-D RoPE from 0.
Both give the class token a zero rotation (its q and k are exactly 0: an attention sink whose value carries
the class; docs/papers/alitok-release.md §2.6) and predict code t from (class, c_0..c_{t-1}).

CTF (docs/papers/ctf.md §1) reuses this file: its stage 1 is a generator whose vocabulary is the K coarse labels,
and its stage 2 is the same transformer with `causal=False` that reads the class and a whole coarse map
(`input_vocab` = K rows) and predicts every fine label in one pass.

Geometry (prefix count, grid, vocabulary) always comes from the tokenizer, never from constants here.
Every forward detail follows docs/papers/alitok-release.md §2 so released weights load (alitok/generator/release.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

ARCHS = ("alitok", "llamagen")

# (width, depth, heads) of the papers' named sizes [docs/papers/alitok.md §2.1; docs/papers/llamagen.md §2 for
# LlamaGen GPT-B/L/XL].
SIZES = {
    "alitok": {"B": (768, 24, 16), "L": (1024, 24, 16), "XL": (1280, 32, 16)},
    "llamagen": {"B": (768, 12, 12), "L": (1024, 24, 16), "XL": (1280, 36, 20)},
}


@dataclass
class GeneratorConfig:
    arch: str
    width: int
    depth: int
    heads: int
    vocab_size: int  # codes the head predicts: the tokenizer codebook (CTF stage 1: the K coarse labels)
    num_classes: int
    num_prefix: int  # tokenizer prefix tokens: 1-D RoPE positions, and the 2-D offset
    grid: int  # tokenizer grid width: image tokens are grid x grid in raster order
    dropout: float = 0.0  # after the attention projection and after the FFN
    attn_dropout: float = 0.0
    token_dropout: float = 0.0
    rope_base: float = 10000.0
    ffn_multiple: int = 256
    causal: bool = True  # False: CTF stage 2, every position sees the whole coarse map
    input_vocab: int = 0  # rows of the code input table; 0: vocab_size (CTF stage 2: K coarse labels)

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise ValueError(f"generator arch must be one of {ARCHS}, got {self.arch!r}")
        for name in ("width", "depth", "heads", "vocab_size", "num_classes", "grid"):
            if getattr(self, name) < 1:
                raise ValueError(f"generator {name} must be a positive integer, got {getattr(self, name)}")
        if self.input_vocab < 0:
            raise ValueError(f"generator input_vocab must be >= 0 (0: vocab_size), got {self.input_vocab}")
        if self.width % self.heads or self.head_dim % 4:
            raise ValueError(
                f"generator width {self.width} / heads {self.heads} must give a head dim divisible "
                "by 4 (2-D RoPE gives each axis a quarter of the rotation pairs)"
            )

    @classmethod
    def named(cls, arch: str, size: str, **geometry) -> GeneratorConfig:
        width, depth, heads = SIZES[arch][size]
        return cls(arch=arch, width=width, depth=depth, heads=heads, **geometry)

    @property
    def head_dim(self) -> int:
        return self.width // self.heads

    @property
    def ffn_hidden(self) -> int:
        """LLaMA's SwiGLU width: 2/3 of 4·width, rounded up to a multiple of `ffn_multiple`."""
        h = int(2 * 4 * self.width / 3)
        return self.ffn_multiple * math.ceil(h / self.ffn_multiple)

    @property
    def seq_len(self) -> int:
        """Codes per image (prefix + grid²); the model's input is the class token plus the first seq_len-1."""
        return self.num_prefix + self.grid**2

    @property
    def in_vocab(self) -> int:
        return self.input_vocab or self.vocab_size

    @property
    def qk_norm(self) -> bool:
        return self.arch == "alitok"

    @property
    def bias(self) -> bool:
        return self.arch == "alitok"

    @property
    def shared_table(self) -> bool:
        return self.arch == "alitok"

    def class_id(self, labels: torch.Tensor) -> torch.Tensor:
        """Row of each label in the class table (null class for label == num_classes)."""
        return labels + (self.in_vocab + 1 if self.shared_table else 0)

    @property
    def null_class(self) -> int:
        return self.num_classes


# ----------------------------------------------------------------------------------------------- RoPE


def rope_table(cfg: GeneratorConfig) -> torch.Tensor:
    """(1 + seq_len, head_dim/2, 2) fp32 (cos, sin) per sequence index and rotation pair, built in fp32 as the
    release does: row 0 (class token) is all zeros; prefix positions 0..P-1 rotate over the full head dim;
    image token (r, k) rotates rows in the first half of the pairs and columns in the second, at P + r, P + k.
    """
    hd, P, G = cfg.head_dim, cfg.num_prefix, cfg.grid
    base = cfg.rope_base
    inv_1d = 1.0 / (base ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))  # hd/2 frequencies
    inv_2d = 1.0 / (base ** (torch.arange(0, hd // 2, 2, dtype=torch.float32) / (hd // 2)))  # hd/4 per axis
    angles_1d = torch.outer(torch.arange(P, dtype=torch.float32), inv_1d)
    rows = torch.outer(torch.arange(P, P + G, dtype=torch.float32), inv_2d)  # (G, hd/4)
    angles_2d = torch.cat([rows[:, None, :].expand(G, G, -1), rows[None, :, :].expand(G, G, -1)], dim=-1)
    angles = torch.cat([angles_1d, rearrange(angles_2d, "r k f -> (r k) f")])
    table = torch.stack([torch.cos(angles), torch.sin(angles)], dim=-1)
    return torch.cat([torch.zeros(1, hd // 2, 2), table])


def apply_rope(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """x: (B, H, L, hd); table: (L, hd/2, 2). Interleaved pairs (2i, 2i+1), in fp32, cast back. Views, not einops:
    this runs twice per layer at every decoding step, where einops' parsing costs more than the arithmetic."""
    xp = x.float().unflatten(-1, (-1, 2))
    cos, sin = table[..., 0], table[..., 1]
    out = torch.stack([xp[..., 0] * cos - xp[..., 1] * sin, xp[..., 1] * cos + xp[..., 0] * sin], dim=-1)
    return out.flatten(-2).to(x.dtype)


# ----------------------------------------------------------------------------------------------- blocks


class RMSNorm(nn.Module):
    """Normalise in fp32, cast back, then scale: the release's order (docs/papers/alitok-release.md §2.4)."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * self.weight


class KVCache:
    """Preallocated keys (post-norm, post-RoPE) and values per layer, for incremental decoding; `mask`: which cached
    positions the new tokens see, built once per step for every layer (None for one new token: it sees them all)."""

    def __init__(self, cfg: GeneratorConfig, batch: int, length: int, device, dtype):
        shape = (batch, cfg.heads, length, cfg.head_dim)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.depth)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.depth)]
        self.length = 0  # positions filled
        self.mask: torch.Tensor | None = None


class Attention(nn.Module):
    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.cfg = cfg
        self.qkv = nn.Linear(cfg.width, 3 * cfg.width, bias=cfg.bias)
        self.q_norm = RMSNorm(cfg.head_dim) if cfg.qk_norm else None
        self.k_norm = RMSNorm(cfg.head_dim) if cfg.qk_norm else None
        self.proj = nn.Linear(cfg.width, cfg.width, bias=cfg.bias)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, rope, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        q, k, v = self.qkv(x).unflatten(-1, (3, self.cfg.heads, -1)).permute(2, 0, 3, 1, 4)  # (b, h, l, d) each
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = apply_rope(q, rope), apply_rope(k, rope)
        p = self.cfg.attn_dropout if self.training else 0.0
        if cache is None:
            a = F.scaled_dot_product_attention(q, k, v, is_causal=self.cfg.causal, dropout_p=p)
        else:  # new tokens sit at [start, end) and see every cached one before them
            start, end = cache.length, cache.length + x.shape[1]
            cache.k[layer][:, :, start:end], cache.v[layer][:, :, start:end] = k, v
            k, v = cache.k[layer][:, :, :end], cache.v[layer][:, :, :end]
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=cache.mask, dropout_p=p)
        return self.drop(self.proj(a.transpose(1, 2).flatten(2)))


class SwiGLU(nn.Module):
    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.w1 = nn.Linear(cfg.width, cfg.ffn_hidden, bias=False)  # gate
        self.w3 = nn.Linear(cfg.width, cfg.ffn_hidden, bias=False)  # up
        self.w2 = nn.Linear(cfg.ffn_hidden, cfg.width, bias=False)  # down
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.w2(F.silu(self.w1(x)) * self.w3(x)))


class Block(nn.Module):
    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.norm1 = RMSNorm(cfg.width)
        self.attn = Attention(cfg)
        self.norm2 = RMSNorm(cfg.width)
        self.mlp = SwiGLU(cfg)

    def forward(self, x, rope, cache=None, layer=0):
        x = x + self.attn(self.norm1(x), rope, cache, layer)
        return x + self.mlp(self.norm2(x))


# ----------------------------------------------------------------------------------------------- model


class Generator(nn.Module):
    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.config = cfg
        rows = cfg.in_vocab + 1 + cfg.num_classes + 1 if cfg.shared_table else cfg.in_vocab
        self.embeddings = nn.Embedding(rows, cfg.width)
        self.class_embeddings = None if cfg.shared_table else nn.Embedding(cfg.num_classes + 1, cfg.width)
        self.token_drop = nn.Dropout(cfg.token_dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.norm = RMSNorm(cfg.width)
        self.output = nn.Linear(cfg.width, cfg.vocab_size, bias=cfg.bias)
        self.register_buffer("rope", rope_table(cfg), persistent=False)  # not in the state dict, as released
        self.apply(self._init)
        nn.init.zeros_(self.output.weight)  # released: zero-initialised head

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)

    def embed_class(self, labels: torch.Tensor) -> torch.Tensor:
        """labels: (B,) in [0, num_classes], num_classes being the null class. Returns (B, 1, width)."""
        ids = self.config.class_id(labels)[:, None]
        return self.embeddings(ids) if self.class_embeddings is None else self.class_embeddings(ids)

    def forward(self, labels: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Teacher forcing. labels: (B,), the null class where dropped for guidance (the data loader decides,
        per sample, so the choice is reproducible); codes: (B, T) with T <= seq_len.
        Returns logits (B, T, vocab): position t predicts codes[:, t] from the class and codes[:, :t].
        Non-causal (CTF stage 2): `codes` is the coarse map, and position t predicts fine label t from all of it."""
        if not self.config.causal:
            x = torch.cat([self.embed_class(labels), self.embeddings(codes)], dim=1)
            return self._run(self.token_drop(x), 0)[:, 1:]
        x = torch.cat([self.embed_class(labels), self.embeddings(codes[:, :-1])], dim=1)
        return self._run(self.token_drop(x), 0)

    def _run(self, x: torch.Tensor, start: int, cache: KVCache | None = None) -> torch.Tensor:
        rope = self.rope[start : start + x.shape[1]]
        if cache is not None:  # new tokens sit at [start, end) and see every cached one before them
            end = start + x.shape[1]
            many = x.shape[1] > 1  # one new token sees all of the cache: no mask to build or apply
            cache.mask = torch.ones(end - start, end, dtype=torch.bool, device=x.device).tril(start) if many else None
        for i, block in enumerate(self.blocks):
            x = block(x, rope, cache, i)
        if cache is not None:
            cache.length += x.shape[1]
        return self.output(self.norm(x))

    def step(self, x_ids: torch.Tensor | None, labels: torch.Tensor | None, cache: KVCache) -> torch.Tensor:
        """Incremental decoding: feed the class (first call, `labels`) or the newest codes (`x_ids`, (B, n)).
        Returns the logits of the last position, (B, vocab)."""
        x = self.embed_class(labels) if labels is not None else self.embeddings(x_ids)
        return self._run(x, cache.length, cache)[:, -1]

    def num_params(self, embeddings: bool = True) -> int:
        """Parameter count; without the code and class tables for nanoGPT's FLOP convention."""
        n = sum(p.numel() for p in self.parameters())
        if not embeddings:
            n -= self.embeddings.weight.numel()
            if self.class_embeddings is not None:
                n -= self.class_embeddings.weight.numel()
        return n
