"""Reconstruction metrics of a tokenizer checkpoint on the held-out split: PSNR, SSIM, rFID, code usage.

rFID compares held-out originals with their reconstructions through the domain classifier's features
(torch-fidelity with the classifier registered as its extractor), so it means something offline.

Either tokenizer family (alitok/tokenizer/release.py `load_tokenizer`): sizes from `geometry`, a reconstruction
the decoding of the image's codes (`encode_codes`, `decode_codes`); AliTok's keeps its forward (`encode_decode`).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import torch
from einops import rearrange
from PIL import Image
from tqdm import tqdm

from alitok import atomic, cliargs, plots
from alitok.data import manifest, transforms
from alitok.metrics import recon as recon_metrics
from alitok.models.tokenizer import Tokenizer
from alitok.models.vq16 import VQ16
from alitok.tokenizer.release import load_tokenizer

log = logging.getLogger("alitok.tokenizer")

GRID_IMAGES = 16  # originals shown in the reconstruction grid (spread over the classes)


def held_out_images(val_csv, dataset_json, size: int) -> tuple[torch.Tensor, list[manifest.Record]]:
    """Held-out images through the evaluation (ADM) centre crop, uint8 (N, 3, S, S)."""
    records = manifest.read_manifest(val_csv)
    root = manifest.read_dataset_info(dataset_json)["root"]
    images = [
        transforms.to_uint8_chw(transforms.adm_center_crop(manifest.open_image(root, r), size))
        for r in tqdm(records, desc="load held-out", unit="img", file=sys.stderr)
    ]
    return torch.stack(images), records


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """The released sampler's conversion: truncation of 255·x, not rounding (docs/papers/alitok-release.md §3)."""
    return (x.clamp(0, 1) * 255).to(torch.uint8)


def encode_decode(model: Tokenizer | VQ16, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Images in [0, 1] -> (reconstructions in about [0, 1], codes). AliTok's through its forward, as before the
    interface existed: its straight-through z_q is z + (e − z), one rounding away from the code e that
    decode_codes reads (up to 6e-8 in the output), and its metrics stay those of earlier runs."""
    if isinstance(model, Tokenizer):
        out = model(x)
        return out["image"], out["indices"]
    codes = model.encode_codes(x)
    return model.decode_codes(codes), codes


@torch.no_grad()
def reconstruct(model: Tokenizer | VQ16, images: torch.Tensor, batch_size: int = 64) -> tuple[torch.Tensor, ...]:
    """Reconstructions (uint8) and codes of uint8 images."""
    outs, codes = [], []
    for i in tqdm(range(0, len(images), batch_size), desc="reconstruct", unit="batch", file=sys.stderr):
        image, code = encode_decode(model, images[i : i + batch_size].float() / 255)
        outs.append(to_uint8(image))
        codes.append(code)
    return torch.cat(outs), torch.cat(codes)


def grid(
    originals: torch.Tensor, recons: torch.Tensor, records: list[manifest.Record], header: str = ""
) -> Image.Image:
    """Two rows, labelled "original" and "reconstruction": originals above their reconstructions, one column per
    class where possible; `header` above."""
    by_class: dict[int, int] = {}
    for i, r in enumerate(records):
        by_class.setdefault(r.label, i)
    picks = list(by_class.values())[:GRID_IMAGES]
    picks += [i for i in range(len(records)) if i not in picks][: GRID_IMAGES - len(picks)]
    pair = torch.stack([originals[picks], recons[picks]])  # (2, n, 3, H, W)
    strip = rearrange(pair, "r n c h w -> (r h) (n w) c").numpy()
    return plots.label_rows(strip, ["original", "reconstruction"], header)


def predicted_labels(images: torch.Tensor, classifier_ckpt) -> torch.Tensor:
    from alitok.classifier.train import load_classifier, predict

    model, _ = load_classifier(classifier_ckpt)
    return predict(model, images, 100)


def recon_intervals(originals, recons, hits, classifier_ckpt, x, y, value: dict, draws: int, seed: int) -> dict:
    """95 % intervals over the held-out images, one set of resample rows for every metric, each row scored as the
    whole set is: the mean PSNR and SSIM, rFID between the resampled originals and their reconstructions (the same
    images on both sides), and the classifier's accuracy (Wilson's). The draws are kept: two tokenizers evaluated on
    the same images pair image by image (`intervals.paired`)."""
    from dataclasses import replace

    from alitok.metrics import generative, intervals

    n = len(originals)
    rows, pairing = intervals.resamples(n, draws, seed), {"n": n, "seed": seed}
    method = f"bootstrap over {n} images, {draws} resamples"
    per_image = {"psnr": recon_metrics.psnr(x, y).double().numpy(), "ssim": recon_metrics.ssim(x, y).double().numpy()}
    net = generative.extractor("domain_classifier", classifier_ckpt)
    hwc = (t.permute(0, 2, 3, 1).contiguous().numpy() for t in (originals, recons))
    real, fake = (generative.features(images, net)["pool"].numpy() for images in hwc)

    def rfid(r):
        a, b = real[r], fake[r]
        return recon_metrics.frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))

    out = {k: intervals.from_values(value[k], v[rows].mean(1), method, pairing=pairing) for k, v in per_image.items()}
    out["rfid"] = intervals.from_values(value["rfid"], [rfid(r) for r in rows], method, pairing=pairing)
    hits = hits.double().numpy()
    wilson = intervals.wilson(int(hits.sum()), n)
    out["recon_class_accuracy"] = replace(wilson, draws=tuple(hits[rows].mean(1)), pairing=pairing)
    return {k: iv.as_dict() for k, iv in out.items()}


def run(tokenizer_ckpt, val_csv, dataset_json, classifier_ckpt, out_metrics, out_grid, interval_params=None) -> dict:
    """`interval_params` (params evaluation.intervals: draws, seed) adds the metrics' 95 % intervals."""
    from alitok.metrics import fidelity

    model = load_tokenizer(tokenizer_ckpt)
    geometry = model.geometry
    originals, records = held_out_images(val_csv, dataset_json, geometry.image_size)
    recons, codes = reconstruct(model, originals)
    x, y = originals.float() / 255, recons.float() / 255
    counts = torch.bincount(codes.flatten(), minlength=geometry.codebook_size).double()
    hits = predicted_labels(recons, classifier_ckpt) == torch.tensor([r.label for r in records])
    metrics = {
        "psnr": float(recon_metrics.psnr(x, y).mean()),
        "ssim": float(recon_metrics.ssim(x, y).mean()),
        "rfid": float(fidelity.rfid(originals, recons, classifier_ckpt)),
        # the ceiling of the generator's class-consistency: what the evaluator still recognises after the tokenizer
        "recon_class_accuracy": float(hits.float().mean()),
        "codebook_used_fraction": float((counts > 0).double().mean()),
        "codebook_perplexity": recon_metrics.perplexity(counts),
        "num_images": len(records),
        "family": "alitok" if isinstance(model, Tokenizer) else "vq16",
        "stage": model.stage if isinstance(model, Tokenizer) else 1,  # VQ-16 is trained in one stage
        "checkpoint": str(tokenizer_ckpt),
        "uint8_conversion": "truncate",
        "crop": "adm_center",
    }
    if interval_params is not None:
        metrics["intervals"] = recon_intervals(
            originals, recons, hits, classifier_ckpt, x, y, metrics, interval_params["draws"], interval_params["seed"]
        )
    atomic.write_json(out_metrics, metrics)
    with atomic.atomic_path(out_grid) as tmp:
        header = f"{Path(tokenizer_ckpt).stem}: held-out images, one per class where possible"
        grid(originals, recons, records, header).save(tmp, format="PNG")
    log.info(
        "tokenizer %s: PSNR %.2f dB, SSIM %.4f, rFID %.3f, class accuracy %.3f, codes used %.1f%%",
        tokenizer_ckpt,
        metrics["psnr"],
        metrics["ssim"],
        metrics["rfid"],
        metrics["recon_class_accuracy"],
        100 * metrics["codebook_used_fraction"],
    )
    return metrics


def add_arguments(parser) -> None:
    parser.add_argument("--tokenizer", type=Path, required=True, help="tokenizer checkpoint")
    cliargs.manifests(parser, "val")
    parser.add_argument("--classifier", type=Path, required=True, help="domain classifier (rFID features)")
    parser.add_argument("--out-metrics", type=Path, required=True)
    parser.add_argument("--out-grid", type=Path, required=True)


def main(args, p: dict) -> None:
    intervals = p["evaluation"]["intervals"]
    run(args.tokenizer, args.val, args.dataset, args.classifier, args.out_metrics, args.out_grid, intervals)
