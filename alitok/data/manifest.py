"""The manifest: one CSV row per original image, the contract between data prep and every consumer.

Crops are not baked in: each consumer (tokenizer training, ten-crop token extraction, evaluation) opens
the original through the manifest and applies its own load-time transform (alitok.data.transforms).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import astuple, dataclass, fields
from pathlib import Path

from alitok import atomic


@dataclass(frozen=True)
class Record:
    path: str  # relative to the dataset root (posix separators)
    label: int  # class index = position of wnid in sorted class-folder order
    wnid: str  # class folder name (an ImageNet synset id, or cNN_name for the embedded set)
    width: int
    height: int
    sha256: str


COLUMNS = [f.name for f in fields(Record)]


def write_manifest(path: str | Path, records: list[Record]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in records:
        w.writerow(astuple(r))
    atomic.write_text(path, buf.getvalue())


def read_manifest(path: str | Path) -> list[Record]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest {path} does not exist: run the data stage (alitok prepare-data) first")
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header != COLUMNS:
            raise ValueError(f"manifest {path}: header {header} is not {COLUMNS}")
        return [Record(p, int(lbl), wnid, int(w), int(h), sha) for p, lbl, wnid, w, h, sha in reader]


def read_dataset_info(path: str | Path) -> dict:
    """dataset.json: root, classes (wnids in label order), per-split counts, source."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"dataset description {path} does not exist: run alitok prepare-data first")
    return json.loads(path.read_text())


def open_image(root: str | Path, record: Record):
    """The original image as PIL RGB (consumers apply their own crop)."""
    from PIL import Image

    with Image.open(Path(root) / record.path) as im:
        return im.convert("RGB")
