"""Token extraction: encode a split with the final tokenizer into uint16 shards (alitok/tokens/store.py).

Train images go through the released `--ten_crop` geometry (ADM centre crop to int(1.1·S), then the ten
crops in torchvision order; docs/papers/alitok-release.md §4) when `tokens.ten_crop` is on, else the ADM centre crop
alone; held-out images always get the single centre crop. Encoding is fp32 without autocast, as released.

Each finished shard is kept in a work directory outside the rule's outputs, so a killed extraction resumes
at the first unfinished shard (ImageNet takes hours); the split directory appears, whole, at the end.
Under torchrun, shard i is encoded by rank i mod world.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from alitok import atomic
from alitok.data import manifest, transforms
from alitok.tokenizer.release import load_tokenizer
from alitok.tokens.store import FORMAT, TokenStoreError, shard_names
from alitok.training import distributed

log = logging.getLogger("alitok.tokens")


class CropImages(Dataset):
    """(crops, 3, S, S) uint8 per image: the ten crops, or one ADM centre crop."""

    def __init__(self, records, root, size: int, ten_crop: bool, scale: float):
        self.records, self.root, self.size, self.ten, self.scale = records, Path(root), size, ten_crop, scale

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i):
        img = manifest.open_image(self.root, self.records[i])
        crops = (
            transforms.ten_crop(img, self.size, self.scale)
            if self.ten
            else [transforms.adm_center_crop(img, self.size)]
        )
        return torch.stack([transforms.to_uint8_chw(c) for c in crops]), self.records[i].label


@torch.no_grad()
def encode_shard(tokenizer, data: CropImages, start: int, stop: int, batch: int, workers: int, device) -> np.ndarray:
    """Codes (stop-start, crops, seq_len) uint16 for records start..stop-1."""
    subset = torch.utils.data.Subset(data, range(start, stop))
    loader = DataLoader(subset, batch_size=batch, num_workers=workers)
    out = []
    for x, _ in tqdm(loader, desc=f"encode {start}-{stop}", unit="batch", file=sys.stderr, leave=False):
        b, c = x.shape[:2]
        x = x.flatten(0, 1).to(device).float() / 255
        indices = tokenizer.encode_codes(x)  # either family: images in [0, 1], codes in sequence order
        out.append(indices.view(b, c, -1).cpu().numpy().astype(np.uint16))
    return np.concatenate(out)


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic.atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: np.save would add ".npy"
        np.save(f, array, allow_pickle=False)


def run(
    *,
    tokenizer_path,
    split_csv,
    dataset_json,
    out_dir,
    work_dir,
    ten_crop: bool,
    crop_scale: float,
    shard_images: int,
    batch: int,
    workers: int,
) -> dict:
    """Write `out_dir` (manifest + shards) for one split; returns its manifest."""
    d = distributed.setup()
    tokenizer = load_tokenizer(tokenizer_path).to(d.device)
    geometry = tokenizer.geometry
    if geometry.codebook_size > 65536:
        raise TokenStoreError(
            f"{tokenizer_path}: codebook of {geometry.codebook_size} codes does not fit uint16 token shards"
        )
    records = manifest.read_manifest(split_csv)
    info = manifest.read_dataset_info(dataset_json)
    data = CropImages(records, info["root"], geometry.image_size, ten_crop, crop_scale)
    crops = 10 if ten_crop else 1
    key = {
        "tokenizer_sha256": atomic.sha256_file(tokenizer_path),
        "split_sha256": atomic.sha256_file(split_csv),
        "ten_crop": ten_crop,
        "crop_scale": crop_scale,
        "shard_images": shard_images,
    }
    work_dir = Path(work_dir)
    bounds = [(s, min(s + shard_images, len(records))) for s in range(0, len(records), shard_images)]
    if d.is_main:
        work_dir.mkdir(parents=True, exist_ok=True)
        stamp = work_dir / "key.json"
        if stamp.exists() and json.loads(stamp.read_text()) != key:  # other tokenizer or split: start over
            for f in work_dir.glob("*.npy"):
                f.unlink()
        atomic.write_json(stamp, key)
    distributed.barrier()

    for i, (start, stop) in enumerate(bounds):
        codes_name, labels_name = shard_names(i)
        if i % d.world_size != d.rank or (work_dir / labels_name).exists():  # labels are written last
            continue
        codes = encode_shard(tokenizer, data, start, stop, batch, workers, d.device)
        _save_npy(work_dir / codes_name, codes)
        _save_npy(work_dir / labels_name, np.array([r.label for r in records[start:stop]], dtype=np.int32))
        log.info("shard %d/%d: images %d-%d", i + 1, len(bounds), start, stop - 1)
    distributed.barrier()

    summary = {
        "format": FORMAT,
        **geometry.tokens(),  # seq_len, num_prefix, grid, vocab_size: what the generators read back
        "crops": crops,
        "num_classes": len(info["classes"]),
        "images": len(records),
        **key,
        "shards": [
            {"codes": shard_names(i)[0], "labels": shard_names(i)[1], "count": stop - start}
            for i, (start, stop) in enumerate(bounds)
        ],
    }
    if d.is_main:
        with atomic.atomic_dir(out_dir) as tmp:
            for shard in summary["shards"]:
                for name in (shard["codes"], shard["labels"]):
                    (work_dir / name).replace(tmp / name)
            (tmp / "manifest.json").write_text(json.dumps(summary, indent=1) + "\n")
        for f in work_dir.glob("*"):
            f.unlink()
    distributed.teardown()
    return summary


def add_arguments(parser) -> None:
    parser.add_argument("--tokenizer", type=Path, required=True, help="final tokenizer checkpoint")
    parser.add_argument(
        "--split", choices=["train", "val"], required=True, help="train gets ten crops if tokens.ten_crop"
    )
    parser.add_argument("--manifest", type=Path, required=True, help="the split's manifest (CSV)")
    parser.add_argument("--dataset", type=Path, required=True, help="dataset.json from prepare-data")
    parser.add_argument("--work-dir", type=Path, required=True, help="finished shards so far (resume from here)")
    parser.add_argument("--out-dir", type=Path, required=True, help="manifest.json and shards")


def main(args, p: dict) -> None:
    t = p["tokens"]
    summary = run(
        tokenizer_path=args.tokenizer,
        split_csv=args.manifest,
        dataset_json=args.dataset,
        out_dir=args.out_dir,
        work_dir=args.work_dir,
        ten_crop=t["ten_crop"] and args.split == "train",
        crop_scale=t["crop_scale"],
        shard_images=t["shard_images"],
        batch=t["batch"],
        workers=t["workers"],
    )
    log.info(
        "%s tokens: %d images x %d crops x %d codes in %d shards -> %s",
        args.split, summary["images"], summary["crops"], summary["seq_len"], len(summary["shards"]), args.out_dir,
    )  # fmt: skip
