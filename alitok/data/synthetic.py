"""The embedded dataset: procedurally generated shapes and textures, so the pipeline runs with no download.

Classes differ only in shape and texture. Everything else (position, scale, rotation, colours, background,
texture frequency, phase and orientation) is drawn from one class-independent distribution, and each image's
mean colour is reset to a class-independent target, so a model has to look at structure, as on real images.
Each image is seeded by (seed, split, class, index) alone: adding images never changes existing ones, and
the same seed gives byte-identical files.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from alitok import atomic

# (shape, texture): the class is the pair; the first num_classes are used, so the order mixes both factors.
CLASSES = [
    ("disk", "solid"),
    ("square", "solid"),
    ("triangle", "solid"),
    ("ring", "solid"),
    ("cross", "solid"),
    ("star", "solid"),
    ("disk", "stripes"),
    ("square", "checker"),
    ("triangle", "dots"),
    ("disk", "checker"),
    ("square", "stripes"),
    ("disk", "dots"),
]
CLASS_NAMES = [shape if texture == "solid" else f"{shape}_{texture}" for shape, texture in CLASSES]
SPLITS = ("train", "val")

# Generation constants. Lengths are in units of half the image side (the image spans [-1, 1]).
SUPERSAMPLE = 2  # render at 2x and average-pool: anti-aliased edges
# Shapes and textures are coarse on purpose: at 32 px a texture period spans 2-3 of the tokenizer's 4-px
# patches, so a tokenizer trained for CPU-minutes can still draw what tells the classes apart (docs/data.md).
RADIUS = (0.55, 0.85)  # shape circumradius
TEXTURE_CYCLES = (1.2, 2.0)  # texture periods per unit length
DOT_RADIUS = 0.3  # dot radius as a fraction of the dot spacing
MIN_CONTRAST = 120.0  # RGB distance between shape, texture and background colours
BACKGROUND_AMPLITUDE = 30.0  # per-channel swing of gradient and noise backgrounds
NOISE_CELLS = 3  # smooth noise: random values on a (cells+1)^2 lattice, interpolated
MEAN_RANGE = (64.0, 192.0)  # per-channel target mean colour, the same for every class


def folder_name(label: int) -> str:
    """Class folder; the cNN_ prefix makes sorted folder order equal label order."""
    return f"c{label:02d}_{CLASS_NAMES[label]}"


# --- shapes: boolean masks in shape-local coordinates (circumradius about 1) ---

def _disk(u, v):
    return u * u + v * v <= 1.0


def _square(u, v):
    return np.maximum(np.abs(u), np.abs(v)) <= 0.8


def _triangle(u, v):
    # equilateral, circumradius 1: inside all three edges (inradius 0.5)
    return np.all([u * np.cos(a) + v * np.sin(a) <= 0.5 for a in np.deg2rad([30, 150, 270])], axis=0)


def _ring(u, v):
    r2 = u * u + v * v
    return (r2 <= 1.0) & (r2 >= 0.55**2)


def _cross(u, v):
    au, av = np.abs(u), np.abs(v)
    return ((au <= 0.3) & (av <= 0.95)) | ((av <= 0.3) & (au <= 0.95))


def _star(u, v, points=5, inner=0.45):
    # radius interpolated between tip (1) and notch (inner) by angle
    phase = (np.arctan2(v, u) / (2 * np.pi / points)) % 1.0
    tip = np.abs(phase - 0.5) * 2
    return np.hypot(u, v) <= inner + (1 - inner) * tip


SHAPES = {"disk": _disk, "square": _square, "triangle": _triangle, "ring": _ring, "cross": _cross, "star": _star}


# --- textures: boolean patterns in rotated image coordinates (p, q), f cycles per unit ---

def _stripes(p, q, f, rng):
    return np.sin(2 * np.pi * (f * p + rng.uniform())) > 0


def _checker(p, q, f, rng):
    return np.sin(2 * np.pi * (f * p + rng.uniform())) * np.sin(2 * np.pi * (f * q + rng.uniform())) > 0


def _dots(p, q, f, rng):
    dp = (f * p + rng.uniform()) % 1.0 - 0.5
    dq = (f * q + rng.uniform()) % 1.0 - 0.5
    return dp * dp + dq * dq <= DOT_RADIUS**2


TEXTURES = {"stripes": _stripes, "checker": _checker, "dots": _dots}


def _colour_away_from(rng, *others):
    """A uniform RGB colour at least MIN_CONTRAST from every colour in `others` (rejection sampling)."""
    while True:
        c = rng.uniform(0, 255, 3)
        if all(np.linalg.norm(c - o) >= MIN_CONTRAST for o in others):
            return c


def _smooth_noise(rng, n):
    """Low-frequency noise in [-1, 1]^3: a random lattice, smoothstep-interpolated to n x n."""
    lattice = rng.uniform(-1, 1, (NOISE_CELLS + 1, NOISE_CELLS + 1, 3))
    pos = (np.arange(n) + 0.5) / n * NOISE_CELLS
    i = np.minimum(pos.astype(int), NOISE_CELLS - 1)
    t = pos - i
    t = t * t * (3 - 2 * t)
    w = np.zeros((n, NOISE_CELLS + 1))
    w[np.arange(n), i] = 1 - t
    w[np.arange(n), i + 1] = t
    return np.einsum("ia,abc,jb->ijc", w, lattice, w)


def _background(rng, colour, x, y):
    n = x.shape[1]
    kind = rng.integers(3)  # plain | linear gradient | smooth noise
    if kind == 0:
        bg = np.broadcast_to(colour, (n, n, 3))
    elif kind == 1:
        a = rng.uniform(0, 2 * np.pi)
        ramp = (x * np.cos(a) + y * np.sin(a)) / np.sqrt(2)  # in [-1, 1]
        bg = colour + ramp[..., None] * rng.uniform(-1, 1, 3) * BACKGROUND_AMPLITUDE
    else:
        bg = colour + _smooth_noise(rng, n) * BACKGROUND_AMPLITUDE
    return np.clip(bg, 0, 255)


def render(seed: int, split: str, label: int, index: int, size: int) -> np.ndarray:
    """One image, uint8 (size, size, 3), a pure function of its arguments."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, SPLITS.index(split), label, index]))
    shape, texture = CLASSES[label]
    n = size * SUPERSAMPLE
    coords = (np.arange(n) + 0.5) / n * 2 - 1
    y, x = coords[:, None], coords[None, :]

    background = rng.uniform(0, 255, 3)
    foreground = _colour_away_from(rng, background)
    second = _colour_away_from(rng, background, foreground)
    img = _background(rng, background, x, y)

    r = rng.uniform(*RADIUS)
    cx, cy = rng.uniform(-(1 - 0.8 * r), 1 - 0.8 * r, 2)
    theta = rng.uniform(0, 2 * np.pi)
    u = ((x - cx) * np.cos(theta) + (y - cy) * np.sin(theta)) / r
    v = (-(x - cx) * np.sin(theta) + (y - cy) * np.cos(theta)) / r
    mask = SHAPES[shape](u, v)

    if texture == "solid":
        fill = foreground
    else:
        a = rng.uniform(0, np.pi)
        p = x * np.cos(a) + y * np.sin(a)
        q = -x * np.sin(a) + y * np.cos(a)
        pattern = TEXTURES[texture](p, q, rng.uniform(*TEXTURE_CYCLES), rng)
        fill = np.where(pattern[..., None], foreground, second)
    img = np.where(mask[..., None], fill, img)
    img = img.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE, 3).mean(axis=(1, 3))

    # Reset the mean colour to a class-independent target; shrink contrast (s <= 1) only as far as needed
    # so nothing clips, keeping colour relations intact.
    target = rng.uniform(*MEAN_RANGE, 3)
    dev = img - img.mean(axis=(0, 1))
    eps = 1e-6
    s = min(1.0, *((255 - target) / np.maximum(dev.max(axis=(0, 1)), eps)),
            *(target / np.maximum(-dev.min(axis=(0, 1)), eps)))
    return np.clip(np.rint(target + s * dev), 0, 255).astype(np.uint8)


def encode_png(img: np.ndarray) -> bytes:
    """Deterministic PNG bytes: fixed compression level, no metadata chunks."""
    buf = io.BytesIO()
    Image.fromarray(img, "RGB").save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def write_dataset(out_dir, *, seed: int, num_classes: int, image_size: int, train_per_class: int,
                  val_per_class: int) -> dict:
    """Write an ImageFolder tree out_dir/{train,val}/cNN_name/NNNNN.png, atomically as a whole."""
    if not 2 <= num_classes <= len(CLASSES):
        raise ValueError(f"num_classes must be in 2..{len(CLASSES)}, got {num_classes}")
    counts = {"train": train_per_class, "val": val_per_class}
    total = num_classes * sum(counts.values())
    with atomic.atomic_dir(out_dir) as tmp, tqdm(total=total, desc="generate", unit="img") as bar:
        for split, per_class in counts.items():
            for label in range(num_classes):
                folder = Path(tmp) / split / folder_name(label)
                folder.mkdir(parents=True)
                for index in range(per_class):
                    img = render(seed, split, label, index, image_size)
                    (folder / f"{index:05d}.png").write_bytes(encode_png(img))
                    bar.update()
    return {
        "seed": seed,
        "image_size": image_size,
        "classes": [folder_name(label) for label in range(num_classes)],
        "counts": {split: per_class * num_classes for split, per_class in counts.items()},
    }
