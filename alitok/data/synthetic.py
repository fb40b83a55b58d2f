"""The embedded dataset: procedurally generated shapes and textures, so the pipeline runs with no download.

Classes differ only in shape and texture. Everything else (position, scale, rotation, colours, background,
texture frequency, phase and orientation) is drawn from one class-independent distribution, and either each
image's mean colour is reset to a class-independent target or every shape has the same area, so the mean colour
carries no class and a model has to look at structure, as on real images. How far pose and colour vary is a
params choice (`Variation`): a generator trained for CPU-minutes can learn a shape at a few poses and colours,
not at every one (docs/data.md).
Each image is seeded by (seed, split, class, index) alone: adding images never changes existing ones, and
the same seed gives byte-identical files.
"""

from __future__ import annotations

import io
import sys
from dataclasses import asdict, dataclass
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
# Glyphs: blocky figures on a 6x6 cell grid, every one with 12 filled cells (equal area, so mean colour carries
# no class). At 32 px with radius 0.75 a cell is one 4-px tokenizer patch: the class lives at the scale a
# tokenizer trained for CPU-minutes draws, where the drawn shapes' curved and slanted edges did not survive it
# (docs/data.md).
GLYPHS = {
    "ring": ["......", ".####.", ".#..#.", ".#..#.", ".####.", "......"],
    "plus": ["......", "..##..", ".####.", ".####.", "..##..", "......"],
    "cross": ["#....#", ".#..#.", "..##..", "..##..", ".#..#.", "#....#"],
    "rows": ["......", "######", "......", "......", "######", "......"],
    "columns": [".#..#.", ".#..#.", ".#..#.", ".#..#.", ".#..#.", ".#..#."],
    "corner": ["......", "......", "##....", "##....", "####..", "####.."],
    "tee": ["######", "..##..", "..##..", "..##..", "......", "......"],
    "steps": ["##....", "##....", "..##..", "..##..", "....##", "....##"],
    "block": ["......", ".####.", ".####.", ".####.", "......", "......"],
    "cup": [".#..#.", ".#..#.", ".#..#.", ".#..#.", ".####.", "......"],
}
GLYPH_CELLS = 6
CLASS_SETS = {
    "shapes": CLASSES,
    "glyphs": [(name, "solid") for name in GLYPHS],
}


def class_names(classes: str = "shapes") -> list[str]:
    return [shape if texture == "solid" else f"{shape}_{texture}" for shape, texture in CLASS_SETS[classes]]


CLASS_NAMES = class_names("shapes")
SPLITS = ("train", "val")

# Generation constants. Lengths are in units of half the image side (the image spans [-1, 1]).
SUPERSAMPLE = 2  # render at 2x and average-pool: anti-aliased edges
DOT_RADIUS = 0.3  # dot radius as a fraction of the dot spacing
MIN_CONTRAST = 120.0  # RGB distance between shape, texture and background colours
# A fixed colour table for `Variation.palette` (the first k entries are used): saturated, well separated.
PALETTE = np.array(
    [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (145, 30, 180), (70, 240, 240),
     (240, 50, 230), (250, 250, 250), (20, 20, 20), (245, 130, 48), (0, 0, 128), (128, 128, 0)],
    dtype=np.float64,
)  # fmt: skip
NOISE_CELLS = 3  # smooth noise: random values on a (cells+1)^2 lattice, interpolated
MEAN_RANGE = (64.0, 192.0)  # per-channel target mean colour, the same for every class


@dataclass(frozen=True)
class Variation:
    """Within-class pose and texture ranges (params `data.embedded.variation`). Lengths are in half-sides.
    Shapes and textures are coarse on purpose: at 32 px a texture period should span 2-3 of the tokenizer's
    4-px patches, so a tokenizer trained for CPU-minutes can still draw what tells the classes apart."""

    radius: tuple[float, float]  # shape circumradius
    max_offset: float  # shape centre, per axis, from the image centre (also kept inside the image)
    max_rotation_deg: float  # shape orientation, either side of upright (180: any)
    max_texture_angle_deg: float  # texture orientation, either side of vertical stripes (90: any)
    texture_cycles: tuple[float, float]  # texture periods per unit length
    palette: int  # 0: any RGB colour; k: colours from the first k entries of PALETTE
    background_amplitude: float  # per-channel swing of gradient and noise backgrounds
    mean_reset: bool  # shift each image to a random class-independent mean colour
    equal_area: bool  # scale each shape to the smallest shape's area at the same radius draw

    def __post_init__(self):
        for name in ("radius", "texture_cycles"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ValueError(
                    f"data.embedded.variation.{name} must be [low, high] with 0 < low <= high, got {[low, high]}"
                )
        if not 0 <= self.palette <= len(PALETTE) or self.palette in (1, 2):
            raise ValueError(
                f"data.embedded.variation.palette must be 0 (any colour) or 3..{len(PALETTE)} "
                f"(background, shape and texture colours differ), got {self.palette}"
            )
        if self.radius[1] > 1:
            raise ValueError(
                f"data.embedded.variation.radius: a circumradius over 1 half-side leaves the image, "
                f"got {self.radius[1]}"
            )

    @classmethod
    def from_params(cls, v: dict) -> Variation:
        return cls(**{**v, "radius": tuple(v["radius"]), "texture_cycles": tuple(v["texture_cycles"])})


def folder_name(label: int, classes: str = "shapes") -> str:
    """Class folder; the cNN_ prefix makes sorted folder order equal label order."""
    return f"c{label:02d}_{class_names(classes)[label]}"


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


_GLYPH_BITMAPS = {name: np.array([[c == "#" for c in row] for row in rows]) for name, rows in GLYPHS.items()}


def _glyph(u, v, bitmap):
    """Cell (row, col) of the 6x6 grid spanning [-1, 1]^2, filled where the bitmap is set."""
    col = np.floor((u + 1) / 2 * GLYPH_CELLS).astype(int)
    row = np.floor((v + 1) / 2 * GLYPH_CELLS).astype(int)
    inside = (col >= 0) & (col < GLYPH_CELLS) & (row >= 0) & (row < GLYPH_CELLS)
    return inside & bitmap[np.clip(row, 0, GLYPH_CELLS - 1), np.clip(col, 0, GLYPH_CELLS - 1)]


def _area(shape, n=601) -> float:
    """Area of a shape at circumradius 1, on an n x n grid over [-1.2, 1.2]^2."""
    c = np.linspace(-1.2, 1.2, n)
    u, v = np.meshgrid(c, c)
    return float(SHAPES[shape](u, v).mean() * 2.4**2)


# Radius factor that gives every shape the smallest shape's area (`Variation.equal_area`): without a palette
# mean reset, a larger shape would shift the mean colour toward the foreground, a class cue.
_AREAS = {k: _area(k) for k in SHAPES}
AREA_SCALE = {k: float(np.sqrt(min(_AREAS.values()) / a)) for k, a in _AREAS.items()}


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


def _contrasts(c, others) -> bool:
    return all(np.linalg.norm(c - o) >= MIN_CONTRAST for o in others)


def _colour_away_from(rng, palette: int, *others):
    """A colour at least MIN_CONTRAST from every colour in `others`: uniform over the allowed palette entries
    (every table prefix of 3+ entries always leaves one), or over RGB (rejection sampling) when palette is 0."""
    if palette:
        allowed = [c for c in PALETTE[:palette] if _contrasts(c, others)]
        return allowed[rng.integers(len(allowed))]
    while True:
        c = rng.uniform(0, 255, 3)
        if _contrasts(c, others):
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


def _background(rng, colour, x, y, amplitude):
    n = x.shape[1]
    kind = rng.integers(3)  # plain | linear gradient | smooth noise
    if kind == 0:
        bg = np.broadcast_to(colour, (n, n, 3))
    elif kind == 1:
        a = rng.uniform(0, 2 * np.pi)
        ramp = (x * np.cos(a) + y * np.sin(a)) / np.sqrt(2)  # in [-1, 1]
        bg = colour + ramp[..., None] * rng.uniform(-1, 1, 3) * amplitude
    else:
        bg = colour + _smooth_noise(rng, n) * amplitude
    return np.clip(bg, 0, 255)


def render(
    seed: int, split: str, label: int, index: int, size: int, variation: Variation, classes: str = "shapes"
) -> np.ndarray:
    """One image, uint8 (size, size, 3), a pure function of its arguments."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, SPLITS.index(split), label, index]))
    shape, texture = CLASS_SETS[classes][label]
    n = size * SUPERSAMPLE
    coords = (np.arange(n) + 0.5) / n * 2 - 1
    y, x = coords[:, None], coords[None, :]

    background = _colour_away_from(rng, variation.palette)
    foreground = _colour_away_from(rng, variation.palette, background)
    second = _colour_away_from(rng, variation.palette, background, foreground)
    img = _background(rng, background, x, y, variation.background_amplitude)

    glyph = classes == "glyphs"  # glyphs have equal areas by construction
    r = rng.uniform(*variation.radius) * (AREA_SCALE[shape] if variation.equal_area and not glyph else 1.0)
    reach = min(variation.max_offset, 1 - 0.8 * r)
    cx, cy = rng.uniform(-reach, reach, 2)
    theta = np.deg2rad(rng.uniform(-variation.max_rotation_deg, variation.max_rotation_deg))
    u = ((x - cx) * np.cos(theta) + (y - cy) * np.sin(theta)) / r
    v = (-(x - cx) * np.sin(theta) + (y - cy) * np.cos(theta)) / r
    mask = _glyph(u, v, _GLYPH_BITMAPS[shape]) if glyph else SHAPES[shape](u, v)

    if texture == "solid":
        fill = foreground
    else:
        a = np.deg2rad(rng.uniform(-variation.max_texture_angle_deg, variation.max_texture_angle_deg))
        p = x * np.cos(a) + y * np.sin(a)
        q = -x * np.sin(a) + y * np.cos(a)
        pattern = TEXTURES[texture](p, q, rng.uniform(*variation.texture_cycles), rng)
        fill = np.where(pattern[..., None], foreground, second)
    img = np.where(mask[..., None], fill, img)
    img = img.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE, 3).mean(axis=(1, 3))

    if not variation.mean_reset:
        return np.clip(np.rint(img), 0, 255).astype(np.uint8)
    # Reset the mean colour to a class-independent target; shrink contrast (s <= 1) only as far as needed
    # so nothing clips, keeping colour relations intact.
    target = rng.uniform(*MEAN_RANGE, 3)
    dev = img - img.mean(axis=(0, 1))
    eps = 1e-6
    s = min(
        1.0,
        *((255 - target) / np.maximum(dev.max(axis=(0, 1)), eps)),
        *(target / np.maximum(-dev.min(axis=(0, 1)), eps)),
    )
    return np.clip(np.rint(target + s * dev), 0, 255).astype(np.uint8)


def encode_png(img: np.ndarray) -> bytes:
    """Deterministic PNG bytes: fixed compression level, no metadata chunks."""
    buf = io.BytesIO()
    Image.fromarray(img, "RGB").save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def write_dataset(
    out_dir,
    *,
    seed: int,
    num_classes: int,
    image_size: int,
    train_per_class: int,
    val_per_class: int,
    variation: Variation,
    classes: str = "shapes",
) -> dict:
    """Write an ImageFolder tree out_dir/{train,val}/cNN_name/NNNNN.png, atomically as a whole."""
    if classes not in CLASS_SETS:
        raise ValueError(f"data.embedded.classes must be one of {sorted(CLASS_SETS)}, got {classes!r}")
    if not 2 <= num_classes <= len(CLASS_SETS[classes]):
        raise ValueError(f"num_classes must be in 2..{len(CLASS_SETS[classes])} for {classes}, got {num_classes}")
    counts = {"train": train_per_class, "val": val_per_class}
    total = num_classes * sum(counts.values())
    with atomic.atomic_dir(out_dir) as tmp, tqdm(total=total, desc="generate", unit="img") as bar:
        for split, per_class in counts.items():
            for label in range(num_classes):
                folder = Path(tmp) / split / folder_name(label, classes)
                folder.mkdir(parents=True)
                for index in range(per_class):
                    img = render(seed, split, label, index, image_size, variation, classes)
                    (folder / f"{index:05d}.png").write_bytes(encode_png(img))
                    bar.update()
    return {
        "seed": seed,
        "image_size": image_size,
        "classes": [folder_name(label, classes) for label in range(num_classes)],
        "class_set": classes,
        "counts": {split: per_class * num_classes for split, per_class in counts.items()},
        "variation": asdict(variation),
    }


def add_arguments(parser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="output directory (train/, val/)")


def main(args, p: dict) -> None:
    """`alitok make-dataset`: the profile's `data.embedded` section, generated."""
    data = p["data"]
    if data["source"] != "embedded":
        raise SystemExit(
            f"alitok make-dataset: params profile {p['name']!r} has data.source = {data['source']!r}; "
            "only the embedded source is generated"
        )
    emb = data["embedded"]
    summary = write_dataset(
        args.out,
        seed=emb["seed"],
        num_classes=emb["num_classes"],
        image_size=data["image_size"],
        train_per_class=emb["train_per_class"],
        val_per_class=emb["val_per_class"],
        variation=Variation.from_params(emb["variation"]),
        classes=emb["classes"],
    )
    print(f"embedded dataset written to {args.out}: {summary}", file=sys.stderr)
