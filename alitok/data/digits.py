"""A real labelled image set that no one here made, for trying the folder path offline: scikit-learn's bundled
handwritten digits (1,797 greyscale 8 × 8 scans of 10 digits, from the UCI optical-recognition set; the images
ship inside the package, nothing is downloaded).

`alitok export-digits --out DIR` writes them as an ImageFolder tree, `train/<digit>/*.png` and `val/<digit>/*.png`,
a seeded per-class split. The images stay as scanned: greyscale, 8 × 8, 17 grey levels stretched to 0..255; the
data stage's crops convert and resize them like any folder's (docs/data.md).
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
from PIL import Image

from alitok import atomic

log = logging.getLogger("alitok.data")


def export(out, val_share: float = 0.2, seed: int = 0) -> dict:
    """Write the digits under `out` (train/ and val/, one folder per digit); returns the counts per split."""
    from sklearn.datasets import load_digits

    if not 0 < val_share < 1:
        raise ValueError(f"--val-share must be between 0 and 1, got {val_share}")
    digits = load_digits()
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)  # 0..16 -> 0..255
    rng = np.random.default_rng(seed)
    out, counts = Path(out), {"train": 0, "val": 0}
    for label in range(10):
        idx = rng.permutation(np.flatnonzero(digits.target == label))
        n_val = max(1, round(len(idx) * val_share))
        for split, part in (("val", idx[:n_val]), ("train", idx[n_val:])):
            folder = out / split / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            for i in part:
                atomic.write_bytes(folder / f"{i:04d}.png", _png(images[i]))
            counts[split] += len(part)
    log.info("digits: %d train, %d val images in %s", counts["train"], counts["val"], out)
    return counts


def _png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buf, format="PNG")
    return buf.getvalue()


def add_arguments(parser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="folder to write train/<digit>/ and val/<digit>/ into")
    parser.add_argument("--val-share", type=float, default=0.2, help="share of each digit held out (val/)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the per-class split")


def main(args, p: dict) -> None:
    counts = export(args.out, args.val_share, args.seed)
    print(f"digits written to {args.out}: {counts}")
