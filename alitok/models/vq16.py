"""LlamaGen's VQ-16 tokenizer: a CNN encoder, an L2-normalised codebook and a CNN decoder (docs/papers/llamagen.md §1).

CTF is measured on this tokenizer, so it is the project's second tokenizer family next to AliTok's. The network
follows LlamaGen's `VQ_16` (tokenizer/tokenizer_image/vq_model.py): GroupNorm (32 groups, eps 1e-6) and swish
everywhere, ResNet blocks, single-head self-attention after every ResNet block of the lowest resolution and in
the middle block, padded stride-2 down-sampling and nearest ×2 up-sampling, each followed by a 3×3 conv. Module
names are LlamaGen's, so its released state dict loads name for name (alitok/tokenizer/release.py).

The network works on images in [-1, 1]; the interface (`encode_codes`, `decode_codes`) speaks [0, 1] like every
tokenizer family here and converts inside. Codes are in raster order, no prefix. LlamaGen's `codebook_used`
buffer only tracks usage during its training, so it is not created here (nor counted: 71.88M parameters at 256 px).

`forward` is the training step's (alitok/tokenizer/train.py): LlamaGen's straight-through quantisation and its two
VQ losses on the normalised vectors, the reconstruction in [0, 1] and unclamped, so the pixel loss sees what the
decoder overshoots. The code usage it logs is the batch's own (`Quantizer.usage_stats`): no buffer, so the
released state dict still loads name for name and a resumed run logs what an uninterrupted one does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from alitok.geometry import Geometry, of_tokenizer
from alitok.metrics.recon import perplexity

GROUPS = 32  # GroupNorm's groups: every channel count must divide by it


@dataclass
class VQ16Config:
    """LlamaGen's VQ-16 at the defaults; the same `ch_mult` serves encoder and decoder, as in `VQ_16`."""

    image_size: int
    codebook_size: int = 16384
    code_dim: int = 8
    base_channels: int = 128
    ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4)  # one level per entry, a factor 2 of down-sampling between levels
    z_channels: int = 256
    num_res_blocks: int = 2  # per encoder level; the decoder has one more

    def __post_init__(self):
        self.ch_mult = tuple(self.ch_mult)  # a list when read from params or a checkpoint
        for name in ("image_size", "codebook_size", "code_dim", "base_channels", "z_channels", "num_res_blocks"):
            if getattr(self, name) < 1:
                raise ValueError(f"vq16 {name} must be a positive integer, got {getattr(self, name)}")
        if not self.ch_mult or min(self.ch_mult) < 1:
            raise ValueError(f"vq16 ch_mult must be a non-empty list of positive integers, got {list(self.ch_mult)}")
        for m in self.ch_mult:
            if self.base_channels * m % GROUPS:
                raise ValueError(
                    f"vq16 base_channels {self.base_channels} x {m} is not divisible by GroupNorm's {GROUPS} groups"
                )
        factor = 2 ** (len(self.ch_mult) - 1)
        if self.image_size % factor:
            raise ValueError(f"vq16 image_size {self.image_size} is not divisible by the down-sampling {factor}")

    @property
    def geometry(self) -> Geometry:
        return of_tokenizer(asdict(self), "vq16")


def norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(GROUPS, channels, eps=1e-6)


def conv3(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=3, padding=1)


class ResBlock(nn.Module):
    """x + conv(swish(norm(conv(swish(norm(x)))))), the skip through a 1x1 conv when the channels change."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.norm1 = norm(c_in)
        self.conv1 = conv3(c_in, c_out)
        self.norm2 = norm(c_out)
        self.conv2 = conv3(c_out, c_out)
        self.nin_shortcut = nn.Conv2d(c_in, c_out, kernel_size=1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.nin_shortcut(x) + h


class AttnBlock(nn.Module):
    """Single-head self-attention over the h·w positions, 1x1 convs for q, k, v and the output, residual."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = norm(channels)
        self.q = nn.Conv2d(channels, channels, kernel_size=1)
        self.k = nn.Conv2d(channels, channels, kernel_size=1)
        self.v = nn.Conv2d(channels, channels, kernel_size=1)
        self.proj_out = nn.Conv2d(channels, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        q, k, v = (rearrange(proj(h), "b c h w -> b (h w) c") for proj in (self.q, self.k, self.v))
        a = F.scaled_dot_product_attention(q, k, v)  # softmax(q·k / √c)·v
        return x + self.proj_out(rearrange(a, "b (h w) c -> b c h w", h=x.shape[2]))


class Downsample(nn.Module):
    """Stride-2 3x3 conv after padding one zero row and column at the bottom and right (not symmetric)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Nearest-neighbour ×2, then a 3x3 conv."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = conv3(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Level(nn.Module):
    """One resolution: ResNet blocks, each followed by attention where `attention` (the lowest resolution), then
    `resample`: "down" (the encoder's stride-2 conv), "up" (the decoder's nearest x2 and conv) or "" (none),
    under LlamaGen's names `downsample` / `upsample`."""

    def __init__(self, c_in: int, c_out: int, blocks: int, attention: bool, resample: str = ""):
        super().__init__()
        self.res = nn.ModuleList(ResBlock(c_in if i == 0 else c_out, c_out) for i in range(blocks))
        self.attn = nn.ModuleList(AttnBlock(c_out) for _ in range(blocks if attention else 0))
        self.resample = f"{resample}sample" if resample else ""
        if resample:
            self.add_module(self.resample, {"down": Downsample, "up": Upsample}[resample](c_out))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for i, res in enumerate(self.res):
            h = res(h)
            if self.attn:
                h = self.attn[i](h)
        return getattr(self, self.resample)(h) if self.resample else h


def middle(channels: int) -> nn.Sequential:
    """ResNet, attention, ResNet at the lowest resolution (LlamaGen's `mid`)."""
    return nn.Sequential(ResBlock(channels, channels), AttnBlock(channels), ResBlock(channels, channels))


class Encoder(nn.Module):
    """(B, 3, H, W) in [-1, 1] -> (B, z_channels, H/f, W/f), f = 2**(levels - 1)."""

    def __init__(self, cfg: VQ16Config):
        super().__init__()
        widths = [cfg.base_channels * m for m in cfg.ch_mult]
        inputs = [cfg.base_channels, *widths[:-1]]
        last = len(widths) - 1
        self.conv_in = conv3(3, cfg.base_channels)
        self.conv_blocks = nn.ModuleList(
            Level(inputs[i], widths[i], cfg.num_res_blocks, attention=i == last, resample="down" if i != last else "")
            for i in range(len(widths))
        )
        self.mid = middle(widths[-1])
        self.norm_out = norm(widths[-1])
        self.conv_out = conv3(widths[-1], cfg.z_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for level in self.conv_blocks:
            h = level(h)
        h = self.mid(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    """(B, z_channels, h, w) -> (B, 3, h·f, w·f) in about [-1, 1]: the encoder's levels in reverse order."""

    def __init__(self, cfg: VQ16Config):
        super().__init__()
        widths = [cfg.base_channels * m for m in cfg.ch_mult][::-1]  # lowest resolution first
        last = len(widths) - 1
        self.conv_in = conv3(cfg.z_channels, widths[0])
        self.mid = middle(widths[0])
        self.conv_blocks = nn.ModuleList(
            Level(
                widths[max(i - 1, 0)],
                widths[i],
                cfg.num_res_blocks + 1,
                attention=i == 0,
                resample="up" if i != last else "",
            )
            for i in range(len(widths))
        )
        self.norm_out = norm(widths[-1])
        self.conv_out = conv3(widths[-1], 3)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.conv_in(z))
        for level in self.conv_blocks:
            h = level(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Quantizer(nn.Module):
    """Nearest code between L2-normalised features and L2-normalised codes (`codebook_l2_norm`, always on)."""

    def __init__(self, codebook_size: int, code_dim: int):
        super().__init__()
        self.embedding = nn.Embedding(codebook_size, code_dim)
        with torch.no_grad():  # LlamaGen's start: uniform in ±1/K, then normalised
            self.embedding.weight.uniform_(-1 / codebook_size, 1 / codebook_size)
            self.embedding.weight.copy_(F.normalize(self.embedding.weight, dim=-1))

    def codebook(self) -> torch.Tensor:
        """(K, D): the vectors codes stand for, normalised for the lookup and the decoder alike."""
        return F.normalize(self.embedding.weight, dim=-1)

    @staticmethod
    def nearest(z: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """Normalised z (B, L, D) and codebook e (K, D) -> indices (B, L), by LlamaGen's expanded distance
        |z|² + |e|² − 2 z·e (the first index on ties)."""
        d = z.pow(2).sum(-1, keepdim=True) + e.pow(2).sum(-1) - 2 * torch.einsum("bld,kd->blk", z, e)
        return d.argmin(-1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z: (B, L, D) -> indices (B, L)."""
        return self.nearest(F.normalize(z, dim=-1), self.codebook())

    def straight_through(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """z: (B, L, D) -> the straight-through z_q (B, L, D), indices (B, L) and the unweighted losses, LlamaGen's
        on the normalised vectors: "codebook" mean((e − sg z)²) moves the codes, "commitment" mean((sg e − z)²) the
        encoder (LlamaGen weighs them 1 and 0.25). In fp32 under autocast too, so fp16 cannot flip a nearest code."""
        with torch.autocast(z.device.type, enabled=False):
            z, e = F.normalize(z.float(), dim=-1), self.codebook().float()
            indices = self.nearest(z, e)
            e = F.embedding(indices, e)
            losses = {"commitment": F.mse_loss(z, e.detach()), "codebook": F.mse_loss(z.detach(), e)}
            z_q = z + (e - z).detach()  # the value of the code, the gradient of the normalised feature
        return z_q, indices, losses

    def usage_stats(self, codes: torch.Tensor) -> dict[str, float]:
        """The log keys of AliTok's quantizer (`VectorQuantizer.usage_stats`), of these codes (a training batch's):
        the fraction of the codebook among them and the perplexity of their distribution. A batch of fewer codes
        than the codebook bounds the fraction; AliTok's is an EMA over many batches."""
        counts = torch.bincount(codes.flatten(), minlength=self.embedding.num_embeddings)
        return {"codebook_used": float((counts > 0).float().mean()), "codebook_perplexity": perplexity(counts)}


class VQ16(nn.Module):
    """Encoder, 1x1 conv to the code dimension, normalised VQ, 1x1 conv back, decoder."""

    def __init__(self, cfg: VQ16Config):
        super().__init__()
        self.config = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.quantize = Quantizer(cfg.codebook_size, cfg.code_dim)
        self.quant_conv = nn.Conv2d(cfg.z_channels, cfg.code_dim, kernel_size=1)
        self.post_quant_conv = nn.Conv2d(cfg.code_dim, cfg.z_channels, kernel_size=1)

    # The interface every tokenizer family offers the pipeline: images in [0, 1].
    @property
    def geometry(self) -> Geometry:
        return self.config.geometry

    def encode_codes(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) images in [0, 1] -> (B, grid²) codes in raster order."""
        return self.quantize(self.features(images))

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, grid²) codes -> (B, 3, H, W) images in [0, 1], clamped as LlamaGen's sampler clamps its [-1, 1]."""
        return self.decode(F.embedding(codes, self.quantize.codebook())).clamp(0, 1)

    def codebook_vectors(self) -> torch.Tensor:
        """(codebook_size, code_dim), L2-normalised: the vectors the quantizer compares and the decoder reads."""
        return self.quantize.codebook().detach()

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) images in [0, 1] -> the encoder's (B, grid², code_dim) features before quantisation."""
        return rearrange(self.quant_conv(self.encoder(images * 2 - 1)), "b d h w -> b (h w) d")

    def decode(self, z_q: torch.Tensor) -> torch.Tensor:
        """(B, grid², code_dim) quantised features -> (B, 3, H, W) images in [0, 1], not clamped."""
        x = self.decoder(self.post_quant_conv(rearrange(z_q, "b (h w) d -> b d h w", h=self.geometry.grid)))
        return (x + 1) / 2

    def forward(self, images: torch.Tensor) -> dict:
        """A training step's outputs for images in [0, 1]: "image", the reconstruction in [0, 1] unclamped; "codes"
        (B, grid²); "z", the features before quantisation; the unweighted "commitment" and "codebook" losses."""
        z = self.features(images)
        z_q, codes, losses = self.quantize.straight_through(z)
        return {"image": self.decode(z_q), "codes": codes, "z": z, **losses}
