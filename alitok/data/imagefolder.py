"""Scan an ImageFolder tree (ImageNet layout) into manifest records.

Layout: ``<root>/train/<wnid>/*`` and ``<root>/val/`` either sorted into class folders ``val/<wnid>/*`` or
flat (``val/*.JPEG``) with a label file. The class index is the position of the wnid in the *sorted* train
class-folder order, because that is what torchvision's ImageFolder gives and what the released ImageNet
weights were trained with.

Every image is opened (and by default fully decoded) in a process pool, so a truncated or corrupt file is
found here once, listed in the report and left out of the manifest, instead of crashing a training run
hours later. Structural problems of the tree itself (missing split, empty class, label file that does not
match) are a `DataError`: those are mistakes to fix, not images to skip.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from alitok.data.manifest import Record

log = logging.getLogger("alitok.data")

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
CHECKS = ("decode", "header")
DEVKIT_LABELS = "devkit"  # one integer ILSVRC2012_ID per line, in sorted val filename order
PAIR_LABELS = "pairs"  # "<filename> <wnid>" per line


class DataError(ValueError):
    """The dataset tree or its label files are not usable as given; the message names the path."""


@dataclass(frozen=True)
class BadImage:
    split: str
    path: str  # relative to the root, posix separators
    error: str


@dataclass
class ScanResult:
    classes: list[str]  # wnids in label order
    train: list[Record]
    val: list[Record]
    bad: list[BadImage] = field(default_factory=list)
    val_layout: str = "folders"  # "folders" | "flat"
    scanned: dict[str, int] = field(default_factory=dict)  # images found per split, before checks


# --------------------------------------------------------------------------------------------- listing


def _visible_entries(folder: Path) -> list[os.DirEntry]:
    """Hidden files (.DS_Store, ._foo.JPEG from macOS copies) are never data."""
    with os.scandir(folder) as it:
        return sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)


def _is_image(entry: os.DirEntry) -> bool:
    return os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS and entry.is_file()


def list_images(folder: Path) -> list[str]:
    """Image file names directly in `folder`, sorted (the order the devkit label file assumes)."""
    return [e.name for e in _visible_entries(folder) if _is_image(e)]


def list_class_dirs(folder: Path) -> list[str]:
    return [e.name for e in _visible_entries(folder) if e.is_dir()]


def _split_dir(root: Path, split: str) -> Path:
    d = root / split
    if not d.is_dir():
        raise DataError(f"dataset root {root} has no {split}/ directory (expected {d})")
    return d


def _check_root(root: Path) -> None:
    if not root.exists():
        raise DataError(f"dataset root {root} does not exist; set data.root to an ImageFolder tree")
    if not root.is_dir():
        raise DataError(f"dataset root {root} is not a directory; set data.root to an ImageFolder tree")


def _class_folder_files(split_dir: Path, wnids: list[str]) -> dict[str, list[str]]:
    """Image names per class folder; an empty class is an error because its label would silently vanish."""
    files = {}
    for wnid in tqdm(wnids, desc=f"list {split_dir.name}", unit="class", leave=False, disable=len(wnids) < 50):
        names = list_images(split_dir / wnid)
        if not names:
            raise DataError(
                f"class folder {split_dir / wnid} contains no images (extensions {sorted(IMAGE_EXTENSIONS)})"
            )
        files[wnid] = names
    return files


def scan_classes(root: Path) -> list[str]:
    """Sorted train class folders: the label order of the released ImageNet weights."""
    train_dir = _split_dir(root, "train")
    classes = list_class_dirs(train_dir)
    if not classes:
        raise DataError(f"train split {train_dir} has no class folders (expected train/<wnid>/*.JPEG)")
    if len(classes) == 1:
        raise DataError(
            f"train split {train_dir} has one class folder ({classes[0]}); a class-conditional model and its "
            "class-consistency need two or more (train/<class>/* per class)"
        )
    return classes


# ------------------------------------------------------------------------------------------ val labels


def load_devkit_synsets(meta_path: Path) -> dict[int, str]:
    """ILSVRC2012_ID -> wnid from the devkit meta.mat; the IDs are NOT in sorted-wnid order."""
    import numpy as np
    import scipy.io

    if not meta_path.is_file():
        raise DataError(f"devkit meta file {meta_path} does not exist (data.val_meta)")
    try:
        mat = scipy.io.loadmat(str(meta_path), squeeze_me=True)
    except Exception as e:  # scipy raises several types for non-MAT files
        raise DataError(f"devkit meta file {meta_path} is not a readable MAT file: {e}") from e
    synsets = mat.get("synsets")
    names = getattr(getattr(synsets, "dtype", None), "names", None) or ()
    if "ILSVRC2012_ID" not in names or "WNID" not in names:
        raise DataError(f"devkit meta file {meta_path} has no 'synsets' struct with fields ILSVRC2012_ID and WNID")
    ids = np.atleast_1d(synsets["ILSVRC2012_ID"])
    wnids = np.atleast_1d(synsets["WNID"])
    return {int(np.asarray(i).item()): str(np.asarray(w).item()) for i, w in zip(ids.ravel(), wnids.ravel())}


def _read_label_lines(label_path: Path) -> list[list[str]]:
    if not label_path.is_file():
        raise DataError(f"val label file {label_path} does not exist (data.val_labels)")
    lines = label_path.read_text().splitlines()
    return [line.split() for line in lines if line.strip()]


def detect_label_format(label_path: Path, rows: list[list[str]]) -> str:
    """Devkit files hold bare integers; pair files hold a filename and a wnid."""
    if rows and all(len(r) == 1 and r[0].isdigit() for r in rows):
        return DEVKIT_LABELS
    if rows and all(len(r) == 2 for r in rows):
        return PAIR_LABELS
    raise DataError(
        f"val label file {label_path} is neither one integer ILSVRC2012_ID per line (devkit) "
        "nor '<filename> <wnid>' per line"
    )


def _devkit_labels(label_path, rows, filenames, meta_path) -> dict[str, str]:
    if meta_path is None:
        raise DataError(
            f"val label file {label_path} holds integer ILSVRC2012_IDs; set data.val_meta to the devkit meta.mat "
            "that maps them to wnids"
        )
    if len(rows) != len(filenames):
        raise DataError(
            f"val label file {label_path} has {len(rows)} labels but val/ has {len(filenames)} images; "
            "line i must label the i-th val image in sorted filename order"
        )
    id_to_wnid = load_devkit_synsets(Path(meta_path))
    labels = {}
    for lineno, (name, (ident,)) in enumerate(zip(filenames, rows), start=1):
        if int(ident) not in id_to_wnid:
            raise DataError(f"val label file {label_path} line {lineno}: ILSVRC2012_ID {ident} is not in {meta_path}")
        labels[name] = id_to_wnid[int(ident)]
    return labels


def _pair_labels(label_path, rows, filenames) -> dict[str, str]:
    labels = {}
    for lineno, (name, wnid) in enumerate(rows, start=1):
        name = PurePosixPath(name.replace("\\", "/")).name  # accept "val/x.JPEG" as well as "x.JPEG"
        if name in labels:
            raise DataError(f"val label file {label_path} line {lineno}: {name} is labelled twice")
        labels[name] = wnid
    missing = [n for n in filenames if n not in labels]
    if missing:
        raise DataError(f"val image {missing[0]} (and {len(missing) - 1} more) is missing from label file {label_path}")
    if len(labels) != len(filenames):
        present = set(filenames)
        extra = next(n for n in labels if n not in present)
        raise DataError(
            f"val label file {label_path} has {len(labels)} entries but val/ has {len(filenames)} images "
            f"({extra} is not in val/)"
        )
    return labels


def read_val_labels(label_path, filenames: list[str], classes: list[str], meta_path=None) -> dict[str, str]:
    """Map each flat val file name to its wnid, checking the file covers val/ exactly."""
    label_path = Path(label_path)
    rows = _read_label_lines(label_path)
    fmt = detect_label_format(label_path, rows)
    if fmt == DEVKIT_LABELS:
        labels = _devkit_labels(label_path, rows, filenames, meta_path)
    else:
        labels = _pair_labels(label_path, rows, filenames)
    known = set(classes)
    for name, wnid in labels.items():
        if wnid not in known:
            raise DataError(f"val label file {label_path} labels {name} as {wnid}, which is not a train class folder")
    log.info("val labels: %s format, %d images (%s)", fmt, len(labels), label_path)
    return labels


# ----------------------------------------------------------------------------------------- val layout


def _val_entries(root: Path, classes: list[str], val_labels, val_meta) -> tuple[str, list[tuple[str, str]]]:
    """(layout, [(relative path, wnid)]) for val/, either class folders or flat with a label file."""
    val_dir = _split_dir(root, "val")
    folders = list_class_dirs(val_dir)
    loose = list_images(val_dir)
    if folders and loose:
        raise DataError(f"val split {val_dir} mixes class folders and loose images ({loose[0]}); use one layout")
    if folders:
        unknown = [w for w in folders if w not in set(classes)]
        if unknown:
            raise DataError(f"val class folder {val_dir / unknown[0]} is not a class folder of {root / 'train'}")
        if val_labels is not None:
            log.warning("val/ is sorted into class folders; data.val_labels (%s) is not used", val_labels)
        if len(folders) < len(classes):
            log.warning("val/ has class folders for only %d of %d train classes", len(folders), len(classes))
        files = _class_folder_files(val_dir, folders)
        return "folders", [(f"val/{w}/{n}", w) for w in folders for n in files[w]]
    if not loose:
        raise DataError(f"val split {val_dir} has no images and no class folders")
    if val_labels is None:
        raise DataError(
            f"val split {val_dir} is flat (no class folders); set data.val_labels to its label file "
            "(devkit ILSVRC2012_validation_ground_truth.txt or '<filename> <wnid>' lines)"
        )
    labels = read_val_labels(val_labels, loose, classes, val_meta)
    return "flat", [(f"val/{n}", labels[n]) for n in loose]


# --------------------------------------------------------------------------------------- image checks


def check_image(path: str, check: str = "decode") -> tuple[int, int, str]:
    """(width, height, sha256 of the file bytes); raises on an unreadable or corrupt image.

    `decode` decodes every pixel, which is what catches truncated JPEG/PNG files; `header` only parses the
    header and runs PIL's verify(), which is fast but lets a truncated JPEG through.
    """
    from PIL import Image

    data = Path(path).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. "Corrupt EXIF data": harmless, and noisy across workers
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
            if check == "decode":
                im.load()
            else:
                im.verify()
    return width, height, digest


def _check_job(job: tuple[str, str]) -> tuple[int, int, str] | str:
    """Pool worker: never raises, so one bad file cannot take down the scan; returns the error text."""
    from PIL import UnidentifiedImageError

    path, check = job
    try:
        return check_image(path, check)
    except UnidentifiedImageError:  # its message names an in-memory buffer address: not reproducible
        return "UnidentifiedImageError: not a readable image in any format PIL knows"
    except Exception as e:  # noqa: BLE001 - any failure to read an image makes it a bad image
        return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


def _chunksize(n: int, workers: int) -> int:
    return max(1, min(256, n // (workers * 8)))


def check_images(paths: list[str], check: str, workers: int, desc: str = "check images") -> list:
    """Results of _check_job in input order, in a pool of `workers` processes (inline for 1)."""
    jobs = [(p, check) for p in paths]
    bar = dict(total=len(jobs), desc=desc, unit="img", leave=False)
    if workers <= 1 or len(jobs) < 2:
        return [_check_job(j) for j in tqdm(jobs, **bar)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(tqdm(pool.map(_check_job, jobs, chunksize=_chunksize(len(jobs), workers)), **bar))


def _to_records(split, root, entries, label_of, check, workers) -> tuple[list[Record], list[BadImage]]:
    results = check_images([str(root / rel) for rel, _ in entries], check, workers, desc=f"check {split}")
    records, bad = [], []
    for (rel, wnid), res in zip(entries, results):
        if isinstance(res, str):
            bad.append(BadImage(split, rel, res))
        else:
            width, height, digest = res
            records.append(Record(rel, label_of[wnid], wnid, width, height, digest))
    return sorted(records, key=lambda r: r.path), bad


def _log_bad(bad: list[BadImage], total: int) -> None:
    if not bad:
        log.info("all %d images readable", total)
        return
    log.warning(
        "%d of %d images are unreadable or corrupt; excluded from the manifest and listed in the report",
        len(bad),
        total,
    )
    for b in bad[:20]:
        log.warning("bad image %s: %s", b.path, b.error)
    if len(bad) > 20:
        log.warning("... and %d more bad images (see the report)", len(bad) - 20)


# ------------------------------------------------------------------------------------------------ scan


def scan(root, *, val_labels=None, val_meta=None, check: str = "decode", workers: int = 1) -> ScanResult:
    """Scan `root` (train/ and val/) into manifest records, checking every image."""
    root = Path(root)
    if check not in CHECKS:
        raise DataError(f"data.check is {check!r}; it must be one of {list(CHECKS)}")
    _check_root(root)
    classes = scan_classes(root)
    label_of = {w: i for i, w in enumerate(classes)}
    train_files = _class_folder_files(root / "train", classes)
    train_entries = [(f"train/{w}/{n}", w) for w in classes for n in train_files[w]]
    layout, val_entries = _val_entries(root, classes, val_labels, val_meta)
    log.info(
        "%s: %d classes, %d train and %d val images (val %s)",
        root,
        len(classes),
        len(train_entries),
        len(val_entries),
        layout,
    )

    train, bad_train = _to_records("train", root, train_entries, label_of, check, workers)
    val, bad_val = _to_records("val", root, val_entries, label_of, check, workers)
    bad = bad_train + bad_val
    _log_bad(bad, len(train_entries) + len(val_entries))
    left = {r.wnid for r in train}
    for wnid in (w for w in classes if w not in left):
        log.warning("class %s keeps no train images after the checks (all its images are bad)", wnid)
    scanned = {"train": len(train_entries), "val": len(val_entries)}
    return ScanResult(classes, train, val, bad, layout, scanned)
