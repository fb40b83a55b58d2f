"""CTF's redundancy finding made measurable (docs/papers/ctf.md §1.1, Fig. 1b, where only a qualitative figure exists).

Encode held-out images, replace *every* token by a random member of its own cluster, decode, and compare with
the plain reconstruction; do the same with a random code from the whole codebook. If the clusters capture what
the decoder cares about, the first swap costs far less PSNR and rFID than the second.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from alitok import atomic, cliargs
from alitok.ctf.clusters import read_map
from alitok.metrics import recon as recon_metrics
from alitok.tokenizer.evaluate import held_out_images, reconstruct, to_uint8
from alitok.tokenizer.release import load_tokenizer

log = logging.getLogger("alitok.ctf")


def swap_within_cluster(codes: torch.Tensor, fine_to_coarse: torch.Tensor, seed: int) -> torch.Tensor:
    """Each code replaced by a uniformly drawn member of its cluster (itself included), seeded."""
    g = torch.Generator().manual_seed(seed)
    order = torch.argsort(fine_to_coarse, stable=True)  # codes grouped by cluster
    sizes = torch.bincount(fine_to_coarse, minlength=int(fine_to_coarse.max()) + 1)
    starts = torch.cumsum(sizes, 0) - sizes
    cluster = fine_to_coarse[codes]
    pick = (torch.rand(codes.shape, generator=g) * sizes[cluster]).long()
    return order[starts[cluster] + pick]


def swap_anywhere(codes: torch.Tensor, codebook_size: int, seed: int) -> torch.Tensor:
    """Each code replaced by a uniformly drawn code of the whole codebook: the baseline swap."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(codebook_size, codes.shape, generator=g)


@torch.no_grad()
def decode(tokenizer, codes: torch.Tensor, batch: int = 64) -> torch.Tensor:
    return torch.cat(
        [to_uint8(tokenizer.decode_codes(codes[i : i + batch]).float()) for i in range(0, len(codes), batch)]
    )


def run(*, tokenizer_path, coarse_map, val_csv, dataset_json, classifier_path, seed: int, out) -> dict:
    """PSNR against the originals and rFID (domain-classifier features) of the plain reconstruction and the
    two swaps, plus PSNR of each swap against the plain reconstruction (what the swap alone changes)."""
    from alitok.metrics import fidelity

    tokenizer = load_tokenizer(tokenizer_path).eval()
    cmap = read_map(coarse_map)
    f2c = torch.tensor(cmap["fine_to_coarse"])
    originals, _ = held_out_images(val_csv, dataset_json, tokenizer.geometry.image_size)
    recons, codes = reconstruct(tokenizer, originals)
    swapped = {
        "reconstruction": recons,
        "within_cluster": decode(tokenizer, swap_within_cluster(codes, f2c, seed)),
        "whole_codebook": decode(tokenizer, swap_anywhere(codes, tokenizer.geometry.codebook_size, seed)),
    }
    x, r = originals.float() / 255, recons.float() / 255
    result = {
        "clusters": cmap["clusters"],
        "codebook_size": cmap["codebook_size"],
        "seed": seed,
        "num_images": len(originals),
    }
    for name, images in swapped.items():
        y = images.float() / 255
        result[name] = {
            "psnr": float(recon_metrics.psnr(x, y).mean()),
            "rfid": float(fidelity.rfid(originals, images, classifier_path)),
        }
        if name != "reconstruction":
            result[name]["psnr_vs_reconstruction"] = float(recon_metrics.psnr(r, y).clamp(max=100).mean())
    atomic.write_json(out, result)
    log.info(
        "redundancy (K=%d): PSNR %.2f / %.2f / %.2f dB (reconstruction / within cluster / whole codebook)",
        cmap["clusters"],
        *(result[k]["psnr"] for k in swapped),
    )
    return result


def add_arguments(parser) -> None:
    parser.add_argument("--tokenizer", type=Path, required=True, help="tokenizer checkpoint")
    parser.add_argument("--coarse-map", type=Path, required=True, help="the fine -> coarse map (ctf-clusters)")
    cliargs.manifests(parser, "val")
    parser.add_argument("--classifier", type=Path, required=True, help="domain classifier (rFID features)")
    parser.add_argument("--out", type=Path, required=True, help="metrics JSON")


def main(args, p: dict) -> None:
    given = cliargs.passed(args, "coarse_map", "out", tokenizer_path="tokenizer", classifier_path="classifier")
    run(**given, val_csv=args.val, dataset_json=args.dataset, seed=p["ctf"]["redundancy_seed"])
