"""The tokenizer's GAN phase: two discriminators, the hinge losses, and who updates at which iteration.

Two recipes (`tokenizer.discriminator.recipe`), each as its source trains it:
- `release`: the released AliTok trainer (ali-vilab/alitok train_tokenizer/loss/discriminator.py, MaskBit's
  NLayerDiscriminator, fed [0, 1] images) with its alternating schedule (train_tokenizer.py): once the GAN is on,
  each iteration draws one batch and updates either the tokenizer or the discriminator, tokenizer first, so a
  100K-iteration GAN phase makes 50K tokenizer updates; the learning-rate schedule advances on tokenizer updates.
- `llamagen`: a taming-style PatchGAN (4x4 convolutions, LeakyReLU 0.2, input centred to [-1, 1]) updated together
  with the tokenizer at every iteration, close to LlamaGen's VQ recipe (FoundationVision/LlamaGen
  tokenizer/tokenizer_image/vq_loss.py). The smoke profiles and the VQ-16 family use it.
Both use GroupNorm, never BatchNorm: a sample's logits do not depend on the rest of its batch, so DDP on N
processes gives the one-process result. Imports torch alone (GPU machines may lack the rest of the stack).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

RECIPES = ("release", "llamagen")
BLUR = (1.0, 3.0, 3.0, 1.0)  # the release's default blur_kernel_size 4


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's "same" padding (before, after) along one axis: the output has ceil(size / stride) positions."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _pad_same(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    top, bottom = same_padding(x.shape[-2], kernel, stride)
    left, right = same_padding(x.shape[-1], kernel, stride)
    return F.pad(x, [left, right, top, bottom]) if top or bottom or left or right else x


class Conv2dSame(nn.Conv2d):
    """A stride-1 convolution padded so the output keeps the input's size (odd kernels pad evenly)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(_pad_same(x, self.kernel_size[0], self.stride[0]))


class BlurBlock(nn.Module):
    """Anti-aliased 2x down-sampling: a depthwise [1, 3, 3, 1] x [1, 3, 3, 1] / 64 filter at stride 2, padded as a
    4-tap "same" convolution. The kernel is a persistent buffer, as released, so release state dicts load."""

    def __init__(self):
        super().__init__()
        k = torch.tensor(BLUR)
        self.register_buffer("kernel", (torch.outer(k, k) / k.sum() ** 2)[None, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _pad_same(x, len(BLUR), 2)
        return F.conv2d(x, self.kernel.expand(x.shape[1], -1, -1, -1), stride=2, groups=x.shape[1])


class MaskBitDiscriminator(nn.Module):
    """The released discriminator: a 5x5 stem, `stages` blocks (3x3 conv, blur down-sampling, GroupNorm, LeakyReLU
    0.1) doubling the width from the second block on, adaptive max pooling to `pool` x `pool`, then 1x1 and 5x5
    convolutions to one logit per cell. Module names follow the release's, so its `discriminator.*` tensors load.
    At the release's configuration (128 channels, 3 stages, GroupNorm 32, pool 16) it has 1,909,889 parameters.
    PyTorch's default initialisation, as released. Takes [0, 1] images, as released."""

    def __init__(self, channels: int = 128, stages: int = 3, groups: int = 32, pool: int = 16, in_channels: int = 3):
        super().__init__()
        widths = [channels] + [channels * 2**i for i in range(stages)]
        self.block_in = nn.Sequential(Conv2dSame(in_channels, channels, 5), nn.LeakyReLU(0.1))
        self.blocks = nn.ModuleList(
            nn.Sequential(Conv2dSame(a, b, 3), BlurBlock(), nn.GroupNorm(groups, b), nn.LeakyReLU(0.1))
            for a, b in zip(widths[:-1], widths[1:])
        )
        self.pool = nn.AdaptiveMaxPool2d((pool, pool))
        self.to_logits = nn.Sequential(
            Conv2dSame(widths[-1], widths[-1], 1), nn.LeakyReLU(0.1), Conv2dSame(widths[-1], 1, 5)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> logits (N, 1, pool, pool)."""
        h = self.block_in(x)
        for block in self.blocks:
            h = block(h)
        return self.to_logits(self.pool(h))


class PatchGAN(nn.Module):
    """taming/pix2pix layout: 4x4 convolutions at stride 2 (the last at stride 1), LeakyReLU 0.2, one logit per
    patch, DCGAN initialisation. GroupNorm with gcd(groups, width) groups instead of the original BatchNorm.
    Takes [0, 1] images and centres them to [-1, 1] so the first layer sees zero-mean inputs."""

    def __init__(self, channels: int = 64, layers: int = 3, groups: int = 32, in_channels: int = 3, max_mult: int = 8):
        super().__init__()
        seq = [nn.Conv2d(in_channels, channels, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True)]
        mult = 1
        for n in range(1, layers + 1):
            prev, mult = mult, min(2**n, max_mult)
            c = channels * mult
            seq += [
                nn.Conv2d(channels * prev, c, 4, stride=2 if n < layers else 1, padding=1, bias=False),
                nn.GroupNorm(math.gcd(groups, c), c),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        seq.append(nn.Conv2d(channels * mult, 1, 4, stride=1, padding=1))
        self.main = nn.Sequential(*seq)
        self.apply(_dcgan_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> patch logits (N, 1, H', W')."""
        return self.main(2 * x - 1)


def _dcgan_init(m: nn.Module) -> None:
    """taming's weights_init."""
    if isinstance(m, nn.Conv2d):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.GroupNorm):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def discriminator(cfg: dict) -> nn.Module:
    """The `tokenizer.discriminator` section's network, freshly initialised from the current torch RNG state."""
    if cfg["recipe"] == "release":
        return MaskBitDiscriminator(cfg["channels"], cfg["layers"], cfg["groups"], cfg["pool"])
    return PatchGAN(cfg["channels"], cfg["layers"], cfg["groups"])


def hinge_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """0.5 * (mean relu(1 - D(x)) + mean relu(1 + D(x_hat))), as taming's and the release's hinge_d_loss."""
    return 0.5 * (F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean())


def generator_adv_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """-mean D(x_hat); the released effective weight is 0.1 x 0.05 = 0.005 [docs/papers/alitok.md §1.5]."""
    return -fake_logits.mean()


@dataclass(frozen=True)
class Turn:
    """What iteration k of a phase does: update the tokenizer (`generator`) or the discriminator, and where the
    tokenizer's learning-rate schedule stands (`lr_step` of `lr_steps`)."""

    generator: bool
    train_disc: bool  # this iteration updates the discriminator (alone under `release`, with G under `llamagen`)
    lr_step: int
    lr_steps: int

    @property
    def label(self) -> str:
        """What the log's `update` field says."""
        if self.generator and self.train_disc:
            return "both"
        return "generator" if self.generator else "discriminator"


def turn(recipe: str, phase: dict, k: int) -> Turn:
    """A pure function of (recipe, phase, iteration), so a resumed run takes the same turns as an unbroken one."""
    steps = phase["steps"]
    if phase["gan_weight"] <= 0:
        return Turn(generator=True, train_disc=False, lr_step=k, lr_steps=steps)
    if recipe == "llamagen":
        return Turn(generator=True, train_disc=True, lr_step=k, lr_steps=steps)
    generator = k % 2 == 0  # the release's optimizer_idx starts at 0 and toggles after every update
    return Turn(generator=generator, train_disc=not generator, lr_step=k // 2, lr_steps=(steps + 1) // 2)
