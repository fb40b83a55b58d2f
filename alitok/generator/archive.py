"""Sample archives in the ADM layout (`arr_0`: uint8 (N, H, W, 3) images, `arr_1`: int64 labels), streamed.

50,000 images at 256 px are ~10 GB, so nothing holds them in memory: each process fills its own memory-mapped
block in a work directory (resumable), and the archive is then written by streaming those blocks, in sample
order, into an uncompressed zip entry, the way `np.savez` lays it out. The file appears by rename when done.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from alitok import atomic
from alitok.config import ParamsError

CHUNK = 256  # images copied per write while streaming


def released_labels(n: int, num_classes: int, world: int, batch: int) -> np.ndarray:
    """Label of each file index k as the released sampler lays them out (docs/papers/alitok-release.md §3): rank r takes
    the contiguous slice r·S..(r+1)·S of [0..C−1]*, S = n/world, in batches; sample i of iteration `it` on rank r
    is file k = it·batch·world + i·world + r."""
    if n % (batch * world):
        raise ParamsError(
            f"generator.sampling: the released label layout needs num_samples ({n}) divisible by "
            f"batch x world ({batch} x {world}, generator.sampling.labels)"
        )
    k = np.arange(n)
    r, i, it = k % world, (k // world) % batch, k // (batch * world)
    return (r * (n // world) + it * batch + i) % num_classes


def sample_labels(n: int, num_classes: int, layout: dict) -> np.ndarray:
    if layout["layout"] == "released":
        return released_labels(n, num_classes, layout["world"], layout["batch"])
    return np.arange(n) % num_classes  # cyclic


def to_uint8(x, mode: str):
    """(B, 3, H, W) float in [0, 1] -> (B, H, W, 3) uint8. `truncate` is the released sampler's cast."""
    import torch

    x = x.clamp(0, 1) * 255
    if mode == "round":
        x = x.round()
    return x.to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def write_npz(out, blocks: list[Path], labels: np.ndarray) -> None:
    """Stream the .npy blocks (in order) into `out` as arr_0, then the labels as arr_1."""
    arrays = [np.load(b, mmap_mode="r") for b in blocks]
    n = sum(len(a) for a in arrays)
    if n != len(labels):
        raise ValueError(f"{n} images but {len(labels)} labels")
    shape = (n,) + arrays[0].shape[1:]
    with atomic.atomic_path(out) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        with zf.open("arr_0.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False, "shape": shape})
            with tqdm(total=n, desc=f"write {Path(out).name}", unit="img", file=sys.stderr) as bar:
                for a in arrays:
                    for s in range(0, len(a), CHUNK):
                        f.write(np.ascontiguousarray(a[s : s + CHUNK]).tobytes())
                        bar.update(len(a[s : s + CHUNK]))
        with zf.open("arr_1.npy", "w") as f:
            np.lib.format.write_array(f, labels.astype(np.int64), allow_pickle=False)


def read_npz(path) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) of an ADM-layout archive; images memory-mapped, so a 10 GB archive is read in batches.
    Works for uncompressed archives (ours, `np.savez`, the ADM reference batches); a compressed one is refused."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sample archive {path} does not exist")
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        if "arr_0.npy" not in names:
            raise ValueError(f"{path}: no arr_0 (ADM layout: arr_0 uint8 NHWC images, arr_1 labels); has {names}")
        info = zf.getinfo("arr_0.npy")
        if info.compress_type != zipfile.ZIP_STORED:
            raise ValueError(
                f"{path}: arr_0 is compressed (np.savez_compressed); re-save it with np.savez to "
                "evaluate it memory-mapped"
            )
        labels = np.load(zf.open("arr_1.npy")) if "arr_1.npy" in names else None
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)  # zip local file header: name and extra-field lengths at bytes 26..29
        start = (
            info.header_offset + 30 + int.from_bytes(local[26:28], "little") + int.from_bytes(local[28:30], "little")
        )
        f.seek(start)
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(f)
        offset = f.tell()
    if dtype != np.uint8 or len(shape) != 4 or shape[3] != 3 or fortran:
        raise ValueError(f"{path}: arr_0 must be uint8 (N, H, W, 3), got {dtype} {shape}")
    return np.memmap(path, dtype=np.uint8, mode="r", offset=offset, shape=shape), labels
