"""Load-time crops on PIL images, with the exact geometry of the released code.

The manifest stores originals; each consumer picks its crop here. Pixel-exact agreement with the released
code matters because the ten-crop token cache and the FID reference statistics are compared against
numbers produced by that code (docs/papers/alitok-release.md §3-4). Only PIL and numpy are needed; torchvision's
TenCrop/Resize/RandomCrop are reimplemented with explicit PIL calls so the geometry is visible and fixed.
"""

from __future__ import annotations

from PIL import Image


def adm_center_crop(img: Image.Image, size: int) -> Image.Image:
    """ADM's center_crop_arr: BOX-halve while the short side is >= 2*size, BICUBIC to `size`, centre crop.

    The halving steps come first because a single large BICUBIC downscale would alias; keeping them makes
    our crops identical to the reference FID/ten-crop pipelines.
    """
    while min(img.size) >= 2 * size:
        img = img.resize(tuple(x // 2 for x in img.size), resample=Image.BOX)
    scale = size / min(img.size)  # computed as in ADM (scale first, then x * scale) so rounding agrees
    img = img.resize(tuple(round(x * scale) for x in img.size), resample=Image.BICUBIC)
    width, height = img.size
    top, left = (height - size) // 2, (width - size) // 2
    return img.crop((left, top, left + size, top + size))


def five_crop(img: Image.Image, size: int) -> list[Image.Image]:
    """torchvision five_crop order: top-left, top-right, bottom-left, bottom-right, centre."""
    width, height = img.size
    if size > width or size > height:
        raise ValueError(f"crop size {size} is larger than the image ({width}x{height})")
    right, bottom = width - size, height - size
    top_c, left_c = int(round(bottom / 2.0)), int(round(right / 2.0))  # Python round: 12.5 -> 12
    corners = [(0, 0), (0, right), (bottom, 0), (bottom, right), (top_c, left_c)]
    return [img.crop((left, top, left + size, top + size)) for top, left in corners]


def ten_crop(img: Image.Image, size: int, scale: float = 1.1) -> list[Image.Image]:
    """The released --ten_crop pre-tokenisation: ADM centre crop to int(scale*size), then TenCrop(size).

    Crops 0-4 are five_crop of the centre crop A, 5-9 five_crop of A flipped left-right; because the
    centre offset rounds half to even, crop 9 is the mirror of A shifted by one pixel, not of crop 4.
    """
    big = int(scale * size)
    if big < size:
        raise ValueError(f"ten-crop scale {scale} gives {big} px, smaller than the crop size {size}")
    a = adm_center_crop(img, big)
    return five_crop(a, size) + five_crop(a.transpose(Image.FLIP_LEFT_RIGHT), size)


def resize_shorter(img: Image.Image, size: int, resample=Image.BILINEAR) -> Image.Image:
    """torchvision Resize(int) on PIL: shorter side to `size`, longer side truncated (int), not rounded."""
    width, height = img.size
    short, long = min(width, height), max(width, height)
    new_long = int(size * long / short)
    new_size = (size, new_long) if width <= height else (new_long, size)
    if new_size == img.size:
        return img
    return img.resize(new_size, resample=resample)


def resize_random_crop_flip(img: Image.Image, size: int, rng) -> Image.Image:
    """Tokenizer-training augmentation (Resize, RandomCrop, RandomHorizontalFlip of the released code).

    `rng` is a numpy Generator; it is drawn in a fixed order (top, left, flip) so a seed reproduces a crop.
    """
    img = resize_shorter(img, size)
    width, height = img.size
    top = int(rng.integers(0, height - size + 1))
    left = int(rng.integers(0, width - size + 1))
    img = img.crop((left, top, left + size, top + size))
    if rng.random() < 0.5:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    return img


def to_uint8_chw(img: Image.Image):
    """RGB uint8 tensor (3, H, W): the layout the models take before their own /255."""
    import numpy as np
    import torch

    arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()
