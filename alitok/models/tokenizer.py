"""The AliTok tokenizer: a 1-D ViT encoder, a plain VQ codebook and a ViT decoder with a per-token pixel head.

The encoder turns an image into `seq_len` = prefix + grid² codes. Stage 1 trains everything with a causal
decoder, so image code k only sees the prefix codes and image codes 0..k: the codes are forced into the
left-to-right order an AR model reads them in. The prefix codes have no image patch of their own and an
auxiliary head rebuilds the first patch row from them (the row that has no causal context otherwise).
Stage 2 freezes encoder and codebook and trains a bidirectional decoder (with extra "buffer" tokens) on the
same codes, for better reconstructions at no cost to the AR model.

Every forward detail (block layout, sequence orders, VQ distance, pixel shuffle) follows the released code as
written down in docs/papers/alitok-release.md §1, so the released `AliTok.pth` loads into the stage-2 model
(alitok/tokenizer/release.py) and reproduces its outputs. Images are float RGB in [0, 1], no normalisation.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import partial

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from alitok.geometry import PREFIXES, Geometry, of_tokenizer, prefix_count

ATTENTIONS = ("causal", "bidirectional")


@dataclass
class TokenizerConfig:
    image_size: int
    patch_size: int
    codebook_size: int
    code_dim: int
    enc_width: int
    enc_depth: int
    enc_heads: int
    dec_width: int
    dec_depth: int
    dec_heads: int
    mlp_ratio: float
    prefix: str  # "grid_plus_one" (released: 17 at 16x16) | "grid" (v2/v3 paper: 16) | "none" (ablation)
    buffer_tokens: int  # stage-2 decoder only (released 32, v2/v3 paper 64)
    # The ablation switches (docs/papers/alitok.md §3.5 row A, §1.7 probe); the defaults are the released tokenizer.
    encoder_attention: str = "bidirectional"  # "causal": the probe that motivated the causal decoder
    stage1_decoder: str = "causal"  # "bidirectional": row A, the baseline without AliTok's alignment

    def __post_init__(self):
        for name in (
            "image_size",
            "patch_size",
            "codebook_size",
            "code_dim",
            "enc_width",
            "enc_depth",
            "enc_heads",
            "dec_width",
            "dec_depth",
            "dec_heads",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"tokenizer {name} must be a positive integer, got {getattr(self, name)}")
        if self.image_size % self.patch_size:
            raise ValueError(f"tokenizer image_size {self.image_size} is not divisible by patch_size {self.patch_size}")
        for part in ("enc", "dec"):
            width, heads = getattr(self, f"{part}_width"), getattr(self, f"{part}_heads")
            if width % heads:
                raise ValueError(f"tokenizer {part}_width {width} is not divisible by {part}_heads {heads}")
            if self.mlp_ratio <= 0 or width * self.mlp_ratio != int(width * self.mlp_ratio):
                raise ValueError(
                    f"tokenizer {part}_width {width} x mlp_ratio {self.mlp_ratio} is not a whole MLP width"
                )
        if self.prefix not in PREFIXES:
            raise ValueError(f"tokenizer prefix must be one of {PREFIXES}, got {self.prefix!r}")
        for name in ("encoder_attention", "stage1_decoder"):
            if getattr(self, name) not in ATTENTIONS:
                raise ValueError(f"tokenizer {name} must be one of {ATTENTIONS}, got {getattr(self, name)!r}")
        if self.buffer_tokens < 0:
            raise ValueError(f"tokenizer buffer_tokens must be >= 0, got {self.buffer_tokens}")

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_prefix(self) -> int:
        return prefix_count(self.prefix, self.grid)

    @property
    def geometry(self) -> Geometry:
        """What the generators and token manifests take from this tokenizer (alitok.geometry)."""
        return of_tokenizer(asdict(self))

    @property
    def num_image_tokens(self) -> int:
        return self.geometry.num_image_tokens

    @property
    def seq_len(self) -> int:
        return self.geometry.seq_len


def prefix_target(images: torch.Tensor, cfg: TokenizerConfig) -> torch.Tensor:
    """The strip of patches the stage-1 auxiliary head must rebuild from the prefix codes, (B, 3, p, num_prefix·p).

    "grid_plus_one" (released): the top-left patch, then the whole first row; "grid": the first row.
    """
    p = cfg.patch_size
    row = images[:, :, :p, :]
    if cfg.prefix == "grid_plus_one":
        return torch.cat([images[:, :, :p, :p], row], dim=-1)
    if cfg.prefix == "grid":
        return row
    raise ValueError("prefix 'none' has no prefix tokens and so no auxiliary target")


# ----------------------------------------------------------------------------------------------- transformer


class Attention(nn.Module):
    """Multi-head self-attention with a packed [q | k | v] in-projection, heads contiguous inside each part.

    q, k, v go to fp32 before SDPA, as in the release: attention stays fp32 even under autocast.
    """

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.in_proj = nn.Linear(width, 3 * width)
        self.out_proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False) -> torch.Tensor:
        q, k, v = rearrange(self.in_proj(x), "b l (t h d) -> t b h l d", t=3, h=self.heads)
        a = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=attn_mask, is_causal=is_causal)
        return self.out_proj(rearrange(a, "b h l d -> b l (h d)").to(x.dtype))


class MLP(nn.Module):
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.fc = nn.Linear(width, hidden)
        self.proj = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.gelu(self.fc(x)))  # exact erf GELU


class Block(nn.Module):
    """Pre-LN residual block: x + attn(LN(x)), then x + mlp(LN(x)). LayerNorm eps 1e-5, all biases on."""

    def __init__(self, width: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = Attention(width, heads)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = MLP(width, int(width * mlp_ratio))

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), attn_mask=attn_mask, is_causal=is_causal)
        return x + self.mlp(self.ln_2(x))


def _table(rows: int, width: int) -> nn.Parameter:
    """Learned token/position table, scaled like the release's width**-0.5 · randn."""
    return nn.Parameter(torch.randn(rows, width) * width**-0.5)


# ----------------------------------------------------------------------------------------------- encoder


class Encoder(nn.Module):
    """ViT over [patches ; latent tokens]; only the latent rows come out, projected to the code dim."""

    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        w = cfg.enc_width
        self.patch_embed = nn.Conv2d(3, w, kernel_size=cfg.patch_size, stride=cfg.patch_size)
        self.patch_pos = _table(cfg.num_image_tokens, w)
        self.latent_pos = _table(cfg.seq_len, w)
        self.ln_pre = nn.LayerNorm(w)
        self.blocks = nn.ModuleList(Block(w, cfg.enc_heads, cfg.mlp_ratio) for _ in range(cfg.enc_depth))
        self.ln_post = nn.LayerNorm(w)
        self.to_code = nn.Linear(w, cfg.code_dim)  # the release's 1x1 conv `conv_out`: a per-token linear
        # The probe's causal mask runs over [patches ; latents]: every latent still sees the whole image, but
        # latent k only the latents before it, which is what makes the codes predictable left to right.
        self.causal = cfg.encoder_attention == "causal"

    def forward(self, x: torch.Tensor, latent_tokens: torch.Tensor) -> torch.Tensor:
        """x: (B, 3, H, W) in [0, 1]; latent_tokens: (seq_len, width). Returns z: (B, seq_len, code_dim)."""
        patches = rearrange(self.patch_embed(x), "b d gh gw -> b (gh gw) d") + self.patch_pos
        latents = (latent_tokens + self.latent_pos).expand(x.shape[0], -1, -1)
        h = self.ln_pre(torch.cat([patches, latents], dim=1))
        for block in self.blocks:
            h = block(h, is_causal=self.causal)
        h = self.ln_post(h[:, patches.shape[1] :])
        return self.to_code(h)


# ----------------------------------------------------------------------------------------------- quantizer


class VectorQuantizer(nn.Module):
    """Nearest-neighbour VQ (squared L2, no normalisation), straight-through, always in fp32.

    `usage` is an EMA of how often each code is picked; `revive()` (CVQ-style online clustering, called by the
    training loop after each step) pulls rarely used codes onto encoder features so none stays dead.
    """

    def __init__(self, codebook_size: int, code_dim: int, decay: float = 0.99, init_std: float = 0.02):
        super().__init__()
        self.decay = decay
        self.codebook = nn.Parameter(
            nn.init.trunc_normal_(torch.empty(codebook_size, code_dim), std=init_std, a=-2 * init_std, b=2 * init_std)
        )
        self.register_buffer("usage", torch.zeros(codebook_size))  # persistent: a resume must not revive all

    def distances(self, z_flat: torch.Tensor) -> torch.Tensor:
        """(N, K) squared distances in the release's expanded form: |z|² + |e|² − 2 z·e (cdist can flip near-ties)."""
        e = self.codebook.float()
        return (z_flat.pow(2).sum(1, keepdim=True) + e.pow(2).sum(1)) - 2 * torch.einsum("nd,dk->nk", z_flat, e.t())

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """z: (B, L, D). Returns the straight-through z_q (fp32), indices (B, L) and the two unweighted losses
        (the caller weighs them: commitment 0.25, codebook 1.0 in the release)."""
        with torch.autocast(z.device.type, enabled=False):
            z = z.float()
            indices = self.distances(rearrange(z, "b l d -> (b l) d")).argmin(1).view(z.shape[:2])  # first on ties
            e = self.lookup(indices)
            losses = {"commitment": F.mse_loss(z, e.detach()), "codebook": F.mse_loss(z.detach(), e)}
            z_q = z + (e - z).detach()
        return z_q, indices, losses

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Exact codebook rows, (..., D) fp32."""
        return F.embedding(indices, self.codebook.float())

    @torch.no_grad()
    def revive(self, z: torch.Tensor, chunk: int = 8192) -> None:
        """One CVQ step on this batch's encoder features z (..., D): update the usage EMA, then move each code
        toward its closest feature with weight exp(−10·K·usage/(1−decay) − 1e-3), ≈1 for dead codes, ≈0 for used.

        Under torch.distributed the features of all ranks are gathered (every rank must pass the same number
        of rows), so the counts are global and every rank applies the identical update to its codebook copy.
        """
        z = z.detach().float().reshape(-1, self.codebook.shape[1])
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            parts = [torch.empty_like(z) for _ in range(dist.get_world_size())]
            dist.all_gather(parts, z.contiguous())
            z = torch.cat(parts)
        K = self.codebook.shape[0]
        counts = torch.zeros(K, device=z.device)
        best = torch.full((K,), math.inf, device=z.device)
        closest = torch.zeros(K, dtype=torch.long, device=z.device)
        for start in range(0, z.shape[0], chunk):  # (N, K) at full scale is gigabytes: go by chunks of features
            d = self.distances(z[start : start + chunk])
            counts += torch.bincount(d.argmin(1), minlength=K).float()
            d_min, d_arg = d.min(0)
            better = d_min < best  # strict: the earlier feature wins a tie
            best = torch.where(better, d_min, best)
            closest = torch.where(better, d_arg + start, closest)
        self.usage.mul_(self.decay).add_(counts / z.shape[0], alpha=1 - self.decay)
        alpha = torch.exp(-10 * K * self.usage / (1 - self.decay) - 1e-3).unsqueeze(1)
        self.codebook.data.copy_(self.codebook.data * (1 - alpha) + z[closest].to(self.codebook.dtype) * alpha)

    def usage_stats(self, threshold: float = 1e-3) -> dict[str, float]:
        """Fraction of codes whose EMA share is at least `threshold` of a uniform share (at 1e-3 and decay 0.99
        that is where the revival weight drops below 1/e), and the perplexity of the EMA distribution."""
        K = self.usage.numel()
        total = float(self.usage.sum())
        p = self.usage / total if total > 0 else self.usage
        entropy = -(p * torch.log(p.clamp_min(1e-12))).sum()
        return {
            "codebook_used": float((self.usage * K >= threshold).float().mean()),
            "codebook_perplexity": float(torch.exp(entropy)) if total > 0 else float("nan"),
        }


# ----------------------------------------------------------------------------------------------- decoder


class PixelHead(nn.Module):
    """Tokens → RGB patches: per-token linear to p·p·3 (channel fastest), pixel shuffle, 1x1 colour mix, sigmoid."""

    def __init__(self, width: int, patch: int):
        super().__init__()
        self.patch = patch
        self.proj = nn.Linear(width, patch * patch * 3)  # the release's 1x1 conv `ffn.0`
        self.colour = nn.Conv2d(3, 3, kernel_size=1)

    def forward(self, tokens: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
        """tokens: (B, rows·cols, width), raster order. Returns (B, 3, rows·p, cols·p) in (0, 1)."""
        pre = rearrange(
            self.proj(tokens),
            "b (gh gw) (p1 p2 c) -> b c (gh p1) (gw p2)",
            gh=rows,
            gw=cols,
            p1=self.patch,
            p2=self.patch,
            c=3,
        )
        return torch.sigmoid(self.colour(pre))


class Decoder(nn.Module):
    """ViT over [lead tokens ; codes]. The last grid² outputs are the image patches in raster order.

    Stage 1: one learned start token, causal attention (bidirectional in the ablation's row A), and an
    auxiliary head on the prefix outputs.
    Stage 2: `buffer_tokens` learned tokens, bidirectional attention, no auxiliary head. The lead tokens and
    the position table share their names across stages, so a stage-1 checkpoint fills stage 2 wherever
    shapes agree, as in the release.
    """

    def __init__(self, cfg: TokenizerConfig, stage: int):
        super().__init__()
        w = cfg.dec_width
        self.config = cfg
        self.causal = stage == 1 and cfg.stage1_decoder == "causal"
        self.code_embed = nn.Linear(cfg.code_dim, w)
        self.lead_tokens = _table(1 if stage == 1 else cfg.buffer_tokens, w)
        self.pos = _table(self.lead_tokens.shape[0] + cfg.seq_len, w)
        self.ln_pre = nn.LayerNorm(w)
        self.blocks = nn.ModuleList(Block(w, cfg.dec_heads, cfg.mlp_ratio) for _ in range(cfg.dec_depth))
        self.ln_post = nn.LayerNorm(w)
        self.pixel_head = PixelHead(w, cfg.patch_size)
        self.aux_head = PixelHead(w, cfg.patch_size) if stage == 1 and cfg.num_prefix else None

    def forward(self, z_q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """z_q: (B, seq_len, code_dim). Returns the image (B, 3, H, W) and, in stage 1, the prefix strip."""
        cfg, n_lead = self.config, self.lead_tokens.shape[0]
        codes = self.code_embed(z_q)
        h = torch.cat([self.lead_tokens.expand(codes.shape[0], -1, -1).to(codes.dtype), codes], dim=1) + self.pos
        h = self.ln_pre(h)
        for block in self.blocks:
            h = block(h, is_causal=self.causal)
        h = self.ln_post(h)
        image = self.pixel_head(h[:, -cfg.num_image_tokens :], cfg.grid, cfg.grid)
        aux = None
        if self.aux_head is not None:
            aux = self.aux_head(h[:, n_lead : n_lead + cfg.num_prefix], 1, cfg.num_prefix)
        return image, aux


# ----------------------------------------------------------------------------------------------- tokenizer


class Tokenizer(nn.Module):
    """Encoder + VQ + decoder of one training stage (1: causal decoder, 2: bidirectional decoder)."""

    def __init__(
        self,
        cfg: TokenizerConfig,
        stage: int,
        usage_decay: float = 0.99,
        codebook_init_std: float = 0.02,
        init_std: float = 0.02,
    ):
        super().__init__()
        if stage not in (1, 2):
            raise ValueError(f"tokenizer stage must be 1 or 2, got {stage}")
        self.config, self.stage = cfg, stage
        self.latent_tokens = _table(cfg.seq_len, cfg.enc_width)
        self.encoder = Encoder(cfg)
        self.quantizer = VectorQuantizer(cfg.codebook_size, cfg.code_dim, decay=usage_decay, init_std=codebook_init_std)
        self.decoder = Decoder(cfg, stage)
        self.apply(partial(_init_layer, std=init_std))
        for head in (self.decoder.pixel_head, self.decoder.aux_head):
            if head is not None:  # identity colour mix: a 0.02-std 3x3 mix would mute the whole output at start
                nn.init.eye_(head.colour.weight.view(3, 3))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """x: (B, 3, H, W) in [0, 1]. Returns straight-through z_q (B, seq_len, D), indices (B, seq_len), VQ losses."""
        return self.quantizer(self.encoder(x, self.latent_tokens))

    def decode(self, z_q: torch.Tensor) -> torch.Tensor:
        return self.decoder(z_q)[0]

    def decode_tokens(self, indices: torch.Tensor) -> torch.Tensor:
        """indices: (B, seq_len), prefix included. Decodes exact codebook rows."""
        return self.decode(self.quantizer.lookup(indices))

    # The interface every tokenizer family offers the pipeline (alitok.tokenizer.family): images in [0, 1].
    @property
    def geometry(self) -> Geometry:
        return self.config.geometry

    def encode_codes(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) images in [0, 1] -> (B, seq_len) codes, prefix first."""
        return self.encode(images)[1]

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, seq_len) codes -> (B, 3, H, W) images, [0, 1] up to the decoder's overshoot."""
        return self.decode_tokens(codes)

    def codebook_vectors(self) -> torch.Tensor:
        """(codebook_size, code_dim): the vectors codes stand for, as the quantizer compares them."""
        return self.quantizer.codebook.detach()

    def forward(self, x: torch.Tensor) -> dict:
        """Everything a training step needs: image, aux strip (stage 1, else None), indices, the unweighted
        commitment and codebook losses, and the pre-quantisation features z (for `quantizer.revive`)."""
        z = self.encoder(x, self.latent_tokens)
        z_q, indices, losses = self.quantizer(z)
        image, aux = self.decoder(z_q)
        return {"image": image, "aux": aux, "indices": indices, "z": z, **losses}

    @torch.no_grad()
    def init_stage2_from(
        self, stage1_state: dict[str, torch.Tensor], code_positions: str = "fresh"
    ) -> dict[str, list[str]]:
        """Copy every stage-1 tensor whose name and shape match; the rest stays fresh (buffer tokens, the longer
        position table), as the release's shape-filtering loader does. `code_positions="from_stage1"` also
        copies the position rows of the codes (the table's last seq_len rows) into the longer table; buffer
        rows stay fresh. Then freeze encoder, codebook and latents.
        Returns the names copied, kept fresh (partly, for the table), and left unused from the stage-1 state."""
        if self.stage != 2:
            raise ValueError("init_stage2_from needs a stage-2 tokenizer")
        if code_positions not in ("fresh", "from_stage1"):
            raise ValueError(f"code_positions must be 'fresh' or 'from_stage1', got {code_positions!r}")
        own = self.state_dict()
        copied = [k for k, v in own.items() if k in stage1_state and stage1_state[k].shape == v.shape]
        for k in copied:
            own[k].copy_(stage1_state[k])
        if code_positions == "from_stage1" and "decoder.pos" not in copied:
            n = self.config.seq_len
            own["decoder.pos"][-n:].copy_(stage1_state["decoder.pos"][-n:])
        for module in (self.encoder, self.quantizer):
            module.requires_grad_(False)
        self.latent_tokens.requires_grad_(False)
        return {
            "copied": copied,
            "fresh": [k for k in own if k not in copied],
            "unused": [k for k in stage1_state if k not in set(copied)],
        }

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]


def _init_layer(m: nn.Module, std: float) -> None:
    """Release init: linear/conv weights truncated normal (std 0.02 there) with zero bias; LayerNorm 1/0.

    At width 128 the release's 0.02 leaves q·k near 0, so attention starts uniform and every latent reads the
    image's mean colour until the projections grow: the flat-colour plateau (docs/tokenizer.md, "Init std").
    """
    if isinstance(m, (nn.Linear, nn.Conv2d)):
        nn.init.trunc_normal_(m.weight, std=std)
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
