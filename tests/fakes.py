"""A tiny fake ImageNet tree for tests: real JPEGs, real wnids, both val layouts and both label formats.

Kept generic and fast so any test (data prep, Snakemake dry-runs of the ImageNet params profiles) can build
one in a few milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

DEFAULT_CLASSES = ("n01440764", "n01443537", "n01484850")
# Varied: landscape, portrait, square, and two whose short side is >= 64 so ADM BOX-halving runs at size 32.
DEFAULT_SIZES = ((48, 36), (36, 50), (40, 40), (150, 90), (70, 160))
GROUND_TRUTH = "ILSVRC2012_validation_ground_truth.txt"
PAIRS = "val_labels.txt"
META = "meta.mat"


@dataclass(frozen=True)
class FakeImageNet:
    root: Path
    classes: tuple[str, ...]  # sorted: label order
    val_labels: Path | None  # label file for a flat val/ (None for class-folder val)
    val_meta: Path | None  # devkit meta.mat (devkit label format only)
    val_wnid: dict[str, str]  # val file name -> wnid, whatever the layout


def val_name(k: int) -> str:
    return f"ILSVRC2012_val_{k:08d}.JPEG"


def write_jpeg(path: Path, size: tuple[int, int], rng: np.random.Generator) -> None:
    """A smooth random colour field plus noise: compresses like a photo, unlike pure noise."""
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(0, 255, 3) + rng.uniform(-1, 1, 3) * xx[..., None] + rng.uniform(-1, 1, 3) * yy[..., None]
    pixels = np.clip(base + rng.normal(0, 20, (height, width, 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format="JPEG", quality=90)


def write_corrupt(path: Path, n: int = 2000, seed: int = 0) -> None:
    """Random bytes under an image name: fails even a header check."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes())


def write_truncated_jpeg(path: Path, size=(64, 48), keep: float = 0.5, seed: int = 0) -> None:
    """A JPEG cut off mid-scan: the header parses, only a full decode notices."""
    write_jpeg(path, size, np.random.default_rng(seed))
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def devkit_ids(classes) -> dict[str, int]:
    """ILSVRC2012_ID per wnid, deliberately not in sorted-wnid order (as in the real devkit)."""
    ordered = sorted(classes)
    n = len(ordered)
    return {w: (i + 1) % n + 1 for i, w in enumerate(ordered)}


def write_meta_mat(path: Path, ids: dict[str, int]) -> None:
    """A devkit-shaped meta.mat: a `synsets` struct array (IDs plus a non-leaf synset, as in the devkit)."""
    import scipy.io

    rows = sorted(ids.items(), key=lambda kv: kv[1]) + [("n00001740", len(ids) + 1)]  # 'entity', non-leaf
    synsets = np.zeros((len(rows), 1), dtype=[("ILSVRC2012_ID", "O"), ("WNID", "O"), ("words", "O")])
    for k, (wnid, ident) in enumerate(rows):
        synsets[k, 0] = (np.array([[ident]], dtype=np.uint16), wnid, f"synset {wnid}")
    scipy.io.savemat(str(path), {"synsets": synsets})


def _val_assignment(classes, val_per_class: int, rng) -> list[str]:
    """Wnid of val file k (1-based order); shuffled so labels are interleaved like the real val set."""
    wnids = [w for w in classes for _ in range(val_per_class)]
    rng.shuffle(wnids)
    return wnids


def make_fake_imagenet(
    root,
    *,
    classes=DEFAULT_CLASSES,
    train_per_class: int = 3,
    val_per_class: int = 2,
    flat_val: bool = False,
    val_label_format: str = "pairs",
    sizes=DEFAULT_SIZES,
    seed: int = 0,
) -> FakeImageNet:
    """Write <root>/train/<wnid>/*.JPEG and <root>/val (class folders, or flat plus a label file)."""
    if val_label_format not in ("pairs", "devkit"):
        raise ValueError(f"val_label_format must be 'pairs' or 'devkit', not {val_label_format!r}")
    root = Path(root)
    rng = np.random.default_rng(seed)
    classes = tuple(sorted(classes))
    k = 0
    for wnid in classes:
        for i in range(train_per_class):
            write_jpeg(root / "train" / wnid / f"{wnid}_{i + 1}.JPEG", sizes[k % len(sizes)], rng)
            k += 1

    assignment = _val_assignment(classes, val_per_class, rng)
    val_wnid = {val_name(j + 1): w for j, w in enumerate(assignment)}
    for j, (name, wnid) in enumerate(val_wnid.items()):
        folder = root / "val" if flat_val else root / "val" / wnid
        write_jpeg(folder / name, sizes[(k + j) % len(sizes)], rng)
    (root / "val").mkdir(parents=True, exist_ok=True)

    if not flat_val:
        return FakeImageNet(root, classes, None, None, val_wnid)
    if val_label_format == "pairs":
        labels = root / PAIRS
        labels.write_text("".join(f"{n} {w}\n" for n, w in val_wnid.items()))
        return FakeImageNet(root, classes, labels, None, val_wnid)
    ids = devkit_ids(classes)
    labels, meta = root / GROUND_TRUTH, root / META
    labels.write_text("".join(f"{ids[val_wnid[n]]}\n" for n in sorted(val_wnid)))
    write_meta_mat(meta, ids)
    return FakeImageNet(root, classes, labels, meta, val_wnid)


def refusal(call) -> str:
    """The one-sentence ReleaseError `call()` raises (a test then compares it with the expected message)."""
    from alitok.tokenizer.release import ReleaseError

    try:
        call()
    except ReleaseError as e:
        return str(e)
    raise AssertionError("no ReleaseError raised")


def tiny_tokenizer_config(
    image_size: int = 32, patch_size: int = 8, *, width: int = 32, depth: int = 2, heads: int = 2, **overrides
):
    """A small TokenizerConfig for CPU tests: 64 codes of dimension 8, encoder and decoder alike (`width`, `depth`,
    `heads`) unless a field is overridden by its own name (enc_width=..., dec_heads=..., prefix=..., ...)."""
    from alitok.models.tokenizer import TokenizerConfig

    alike = dict(width=width, depth=depth, heads=heads)
    sides = {f"{side}_{key}": v for side in ("enc", "dec") for key, v in alike.items()}
    fields = dict(image_size=image_size, patch_size=patch_size, codebook_size=64, code_dim=8, mlp_ratio=4)
    return TokenizerConfig(**{**fields, "prefix": "grid_plus_one", "buffer_tokens": 3, **sides, **overrides})


def random_inception_weights(folder: Path) -> Path:
    """Seeded random Inception-v3 weights saved as torch-fidelity's .pth: the real file cannot be downloaded here.
    The extractor is built with its weight loading switched off, so no file is needed to make the file."""
    import torch
    import torch_fidelity.feature_extractor_inceptionv3 as fe

    torch.save({}, folder / "empty.pth")
    load = fe.FeatureExtractorInceptionV3.load_state_dict
    fe.FeatureExtractorInceptionV3.load_state_dict = lambda self, state: None
    try:
        torch.manual_seed(0)
        net = fe.FeatureExtractorInceptionV3(
            "inception-v3-compat", ["2048"], feature_extractor_weights_path=folder / "empty.pth"
        )
    finally:
        fe.FeatureExtractorInceptionV3.load_state_dict = load
    torch.save(net.state_dict(), folder / "inception.pth")
    return folder / "inception.pth"
