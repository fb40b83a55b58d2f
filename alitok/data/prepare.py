"""The data-prep stage: scan an ImageFolder tree once and write the manifests every later stage reads.

Outputs (all atomic, so an interrupted run never leaves a file that looks finished):
  train.csv, val.csv   manifest rows (alitok.data.manifest), paths relative to the root, sorted
  report.json          images that could not be read, with the error, and per-split counts
  preview.png          a few val images per class through the ADM centre crop, to eyeball labels and crops
  dataset.json         root, classes, counts, source, check; written last, as the stage's completion mark
"""

from __future__ import annotations

import logging
from pathlib import Path

from PIL import Image

from alitok import atomic
from alitok.data import imagefolder, manifest, transforms

log = logging.getLogger("alitok.data")

PREVIEW_CLASSES = 20
PREVIEW_PER_CLASS = 4
PREVIEW_TILE = 128  # tiles larger than this are shrunk so a 512 px profile gives a viewable file
PREVIEW_GAP = 2


def _preview_classes(n_classes: int) -> list[int]:
    """Evenly spread labels, so a 1000-class preview still samples the whole label range."""
    if n_classes <= PREVIEW_CLASSES:
        return list(range(n_classes))
    return sorted({round(i * (n_classes - 1) / (PREVIEW_CLASSES - 1)) for i in range(PREVIEW_CLASSES)})


def render_preview(root: Path, records: list[manifest.Record], n_classes: int, image_size: int) -> Image.Image:
    """A grid, one row per shown class, of the first val images through the ADM centre crop."""
    labels = _preview_classes(n_classes)
    tile = min(image_size, PREVIEW_TILE)
    step = tile + PREVIEW_GAP
    grid = Image.new(
        "RGB",
        (max(1, PREVIEW_PER_CLASS * step - PREVIEW_GAP), max(1, len(labels) * step - PREVIEW_GAP)),
        (128, 128, 128),
    )
    by_label: dict[int, list[manifest.Record]] = {}
    for r in records:
        by_label.setdefault(r.label, []).append(r)
    for row, label in enumerate(labels):
        for col, rec in enumerate(by_label.get(label, [])[:PREVIEW_PER_CLASS]):
            img = transforms.adm_center_crop(manifest.open_image(root, rec), image_size)
            if tile != image_size:
                img = img.resize((tile, tile), resample=Image.BOX)
            grid.paste(img, (col * step, row * step))
    return grid


def _write_png(path: Path, img: Image.Image) -> None:
    with atomic.atomic_path(path) as tmp:
        img.save(tmp, format="PNG")


def _counts(result: imagefolder.ScanResult) -> dict:
    bad = {s: sum(b.split == s for b in result.bad) for s in ("train", "val")}
    kept = {"train": len(result.train), "val": len(result.val)}
    return {s: {"scanned": result.scanned.get(s, kept[s] + bad[s]), "kept": kept[s], "bad": bad[s]} for s in kept}


def run(data_cfg: dict, root, out_dir) -> dict:
    """Scan `root` per the resolved `data` params section and write the stage outputs into `out_dir`."""
    cfg = data_cfg  # validated against the params schema by alitok.config.load
    out_dir = Path(out_dir)
    result = imagefolder.scan(
        root, val_labels=cfg["val_labels"], val_meta=cfg["val_meta"], check=cfg["check"], workers=cfg["workers"]
    )
    counts = {"train": len(result.train), "val": len(result.val)}

    manifest.write_manifest(out_dir / "train.csv", result.train)
    manifest.write_manifest(out_dir / "val.csv", result.val)
    atomic.write_json(
        out_dir / "report.json",
        {
            "bad_images": [{"split": b.split, "path": b.path, "error": b.error} for b in result.bad],
            "counts": _counts(result),
        },
    )
    _write_png(out_dir / "preview.png", render_preview(Path(root), result.val, len(result.classes), cfg["image_size"]))
    atomic.write_json(
        out_dir / "dataset.json",
        {
            "root": str(root),
            "classes": result.classes,
            "counts": counts,
            "bad": len(result.bad),
            "source": cfg.get("source", "imagefolder"),
            "check": cfg["check"],
        },
    )
    log.info(
        "data prep: %d classes, %d train, %d val, %d bad images -> %s",
        len(result.classes),
        counts["train"],
        counts["val"],
        len(result.bad),
        out_dir,
    )
    return {
        "classes": len(result.classes),
        "train": counts["train"],
        "val": counts["val"],
        "bad": len(result.bad),
        "val_layout": result.val_layout,
        "out_dir": str(out_dir),
    }


def add_arguments(parser) -> None:
    parser.add_argument("--root", type=Path, required=True, help="dataset root holding train/ and val/")
    parser.add_argument("--out-dir", type=Path, required=True, help="where the manifests, dataset.json, report go")


def main(args, p: dict) -> None:
    run(p["data"], args.root, args.out_dir)
