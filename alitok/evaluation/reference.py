"""The reference a sample set is compared with, as pool-feature statistics (FID) and pool features (P/R).

Two kinds (params `evaluation.reference`): `split`, the real images of a split of this dataset (the embedded
profiles), and `adm_npz`, an ADM reference batch (`VIRTUAL_imagenet256_labeled.npz`: `arr_0` images, `mu`,
`sigma`), whose `mu`/`sigma` are used for FID as the ADM evaluator does and whose images give the features for
precision/recall. Results are cached under a key naming the reference's content hash and the extractor weights'
hash, so a changed classifier or another Inception file never reuses stale statistics.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from alitok import atomic
from alitok.generator.archive import read_npz
from alitok.metrics import generative

log = logging.getLogger("alitok.evaluation")


def split_images(manifest_csv, dataset_json, size: int) -> np.ndarray:
    """Real images of a split through the evaluation (ADM) centre crop, uint8 (N, H, W, 3)."""
    from alitok.tokenizer.evaluate import held_out_images

    images, _ = held_out_images(manifest_csv, dataset_json, size)
    return images.permute(0, 2, 3, 1).numpy()


def of_params(p: dict, net, weights, cache_dir, manifest_csv=None, dataset_json=None) -> dict:
    """The profile's reference (`evaluation.reference`, its batch and image size): what the evaluate stage and
    `sampling-sweep` both score against."""
    e = p["evaluation"]
    return load(
        e["reference"],
        net,
        weights,
        cache_dir,
        batch=e["batch"],
        manifest_csv=manifest_csv,
        dataset_json=dataset_json,
        image_size=p["data"]["image_size"],
    )


def load(
    spec: dict,
    net,
    weights,
    cache_dir,
    *,
    batch: int,
    manifest_csv=None,
    dataset_json=None,
    image_size: int | None = None,
) -> dict:
    """{"mu", "sigma", "pool", "name"} of the reference described by params `evaluation.reference`."""
    if spec["kind"] == "adm_npz":
        source = Path(spec["path"])
        if not source.is_file():
            raise FileNotFoundError(
                f"ADM reference batch {source} not found: put the ADM evaluator's reference "
                f"(e.g. VIRTUAL_imagenet256_labeled.npz from openai/guided-diffusion "
                "evaluations) there, or set params evaluation.reference.path"
            )
    else:
        if manifest_csv is None:
            raise ValueError("a split reference needs the split's manifest")
        source = Path(manifest_csv)
    name = f"{source.stem}-{atomic.sha256_file(source)[:16]}-{generative.weights_digest(weights)}"
    cached = Path(cache_dir) / f"reference-{name}.npz"
    if cached.is_file():
        with np.load(cached) as z:
            log.info("reference statistics from cache %s", cached)
            return {"mu": z["mu"], "sigma": z["sigma"], "pool": torch.from_numpy(z["pool"]), "name": name}

    if spec["kind"] == "adm_npz":
        images, _ = read_npz(source)
        with np.load(source) as z:
            if "mu" not in z or "sigma" not in z:
                raise ValueError(f"{source}: an ADM reference batch has arr_0, mu and sigma; found {list(z.keys())}")
            stats = {"mu": z["mu"].astype(np.float64), "sigma": z["sigma"].astype(np.float64)}
        pool = generative.features(images, net, batch)["pool"]
        if stats["mu"].shape[0] != pool.shape[1]:
            raise ValueError(
                f"{source}: mu has {stats['mu'].shape[0]} dimensions, the extractor's pool features "
                f"{pool.shape[1]}: this reference batch was made with another network"
            )
    else:
        images = split_images(manifest_csv, dataset_json, image_size)
        pool = generative.features(images, net, batch)["pool"]
        stats = generative.statistics(pool)
    with atomic.atomic_path(cached) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, mu=stats["mu"], sigma=stats["sigma"], pool=pool.numpy())
    return {**stats, "pool": pool, "name": name}
