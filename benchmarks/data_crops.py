"""Cost of load-time crops relative to decoding, measured side by side in one run.

Why: the data stage stores originals and each consumer crops at load time (docs/data.md). That is only
sensible if cropping is cheap next to decoding the JPEG. This prints images/s for decode alone and for
decode + each consumer's crop, and the ratios. Needs only numpy and PIL (runs anywhere).

    python benchmarks/data_crops.py [--n 200] [--size 256]
"""

from __future__ import annotations

import argparse
import io
import platform
import time

import numpy as np
from PIL import Image

from alitok.data.transforms import adm_center_crop, resize_random_crop_flip, ten_crop


def make_jpegs(n: int, seed: int = 0) -> list[bytes]:
    """ImageNet-like JPEGs: typical 500x375 / 375x500 sizes, smooth content plus noise, quality 90."""
    rng = np.random.default_rng(seed)
    blobs = []
    for i in range(n):
        w, h = (500, 375) if i % 3 else (375, 500)
        base = rng.integers(0, 256, (h // 25 + 1, w // 25 + 1, 3), dtype=np.uint8)
        img = Image.fromarray(base).resize((w, h), Image.BICUBIC)
        arr = np.clip(np.asarray(img, np.int16) + rng.integers(-20, 21, (h, w, 3)), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="JPEG", quality=90)
        blobs.append(buf.getvalue())
    return blobs


def rate(blobs: list[bytes], crop) -> float:
    start = time.perf_counter()
    for b in blobs:
        with Image.open(io.BytesIO(b)) as im:
            out = crop(im.convert("RGB"))
            for o in out if isinstance(out, list) else [out]:
                o.load()
    return len(blobs) / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--size", type=int, default=256)
    args = ap.parse_args()
    blobs = make_jpegs(args.n)
    rng = np.random.default_rng(0)
    s = args.size
    cases = {
        "decode only": lambda im: im,
        "decode + random crop/flip (tokenizer training)": lambda im: resize_random_crop_flip(im, s, rng),
        "decode + ADM center crop (evaluation)": lambda im: adm_center_crop(im, s),
        "decode + ten-crop (token extraction)": lambda im: ten_crop(im, s, 1.1),
    }
    rate(blobs[:20], cases["decode only"])  # warm-up
    rates = {name: rate(blobs, fn) for name, fn in cases.items()}
    base = rates["decode only"]
    print(
        f"# load-time crops vs decode, {args.n} JPEGs (500x375), crop {s}px, one process, "
        f"{platform.processor() or platform.machine()}"
    )
    print("| case | images/s | time relative to decode only |")
    print("|---|---|---|")
    for name, r in rates.items():
        print(f"| {name} | {r:.1f} | {base / r:.2f}x |")


if __name__ == "__main__":
    main()
