"""CTF's coarse labels: k-means over the tokenizer's codebook vectors gives a fine -> coarse map
(docs/papers/ctf.md §1.2).

The paper names k-means and the cluster counts, not the normalisation, distance, initialisation or how unused
codes are handled (docs/papers/ctf.md §1.2 "NOT FOUND"). Our choices, each a param (`ctf.clusters`, docs/ctf.md):
Euclidean k-means (the quantizer's own squared-L2 distance; scikit-learn's KMeans), k-means++ seeding from `seed`,
Lloyd iterations to convergence, an empty cluster moved to the code farthest from its centre, and every
code in the map, used or not (it must send any token to a coarse label). The centres come from every code
(`codes: all`, the paper's codebook-wide reading) or from the codes the training tokens use (`codes: used`, the
others then join their nearest centre): a young codebook's dead codes stay where they were initialised, spread
over the sphere, and would otherwise take most centres. Usage on the training tokens is reported next to the map,
so a cluster made only of dead codes shows up as such.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger("alitok.ctf")

NORMALISATIONS = ("none", "l2")
CODES = ("all", "used")  # which codes place the centres
USAGE_ROWS = 4096  # token rows counted at a time: an ImageNet shard never becomes one int64 copy


class CoarseMapError(ValueError):
    """A coarse-map file that cannot be used; the message names the file."""


def read_map(path) -> dict:
    """A coarse map written by `alitok ctf-clusters`, checked: every code maps to one of `clusters` labels."""
    path = Path(path)
    try:
        cmap = json.loads(path.read_text())
        f2c, k, v = cmap["fine_to_coarse"], cmap["clusters"], cmap["codebook_size"]
    except FileNotFoundError:
        raise CoarseMapError(f"{path} does not exist: run `alitok ctf-clusters` first") from None
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise CoarseMapError(f"{path} is not a coarse map from `alitok ctf-clusters` ({type(e).__name__}: {e})") from e
    if len(f2c) != v or min(f2c) < 0 or max(f2c) >= k:
        raise CoarseMapError(f"{path}: fine_to_coarse must give each of {v} codes a label in 0..{k - 1}")
    return cmap


def kmeans(x: torch.Tensor, k: int, *, seed: int, iters: int) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's k-means in fp64, deterministic for a seed: one k-means++ initialisation from `seed`, then
    Lloyd iterations until the assignments stop changing (`tol=0`), at most `iters`; an empty cluster is moved to
    the points farthest from their centres. Returns (assignment (N,), centres (k, D)).

    Fewer distinct points than clusters is refused: k-means would have to leave clusters empty or split identical
    codes between coarse labels."""
    from sklearn.cluster import KMeans

    n = x.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k-means needs 1 <= clusters <= points, got {k} clusters for {n} codes")
    points = x.detach().cpu().double().numpy()
    distinct = len(np.unique(points, axis=0))
    if k > distinct:
        raise ValueError(
            f"k-means needs at most as many clusters as distinct points, got {k} clusters for {distinct} distinct "
            f"vectors among {n} codes"
        )
    km = KMeans(k, init="k-means++", n_init=1, max_iter=iters, tol=0.0, algorithm="lloyd", random_state=seed)
    km.fit(points)
    return torch.from_numpy(km.labels_.astype(np.int64)), torch.from_numpy(km.cluster_centers_).float()


def coarse_map(
    codebook: torch.Tensor,
    clusters: int,
    *,
    normalisation: str,
    seed: int,
    iters: int,
    usage: np.ndarray | None = None,
    codes: str = "all",
) -> dict:
    """The fine -> coarse map of a codebook (V, D) and what a user checks it by: cluster sizes, and with
    `usage` (V,) token counts, the used codes per cluster and the clusters holding no used code. `codes`: which
    codes place the centres (`used` needs `usage`); every code then joins its nearest centre."""
    if normalisation not in NORMALISATIONS:
        raise ValueError(f"ctf.clusters.normalisation must be one of {NORMALISATIONS}, got {normalisation!r}")
    if codes not in CODES:
        raise ValueError(f"ctf.clusters.codes must be one of {CODES}, got {codes!r}")
    x = codebook.detach().float().cpu()
    if normalisation == "l2":
        x = torch.nn.functional.normalize(x, dim=1)
    if codes == "all":
        assign, _ = kmeans(x, clusters, seed=seed, iters=iters)
    else:
        if usage is None:
            raise ValueError("ctf.clusters.codes 'used' needs the codes' usage on the training tokens")
        used = torch.from_numpy(np.asarray(usage) > 0)
        if clusters > int(used.sum()):
            raise ValueError(
                f"ctf.clusters.count {clusters} exceeds the {int(used.sum())} codes the training tokens use "
                "(ctf.clusters.codes: used); lower the count or cluster all codes"
            )
        _, centres = kmeans(x[used], clusters, seed=seed, iters=iters)
        assign = torch.cdist(x.double(), centres.double()).argmin(1)
    fine_to_coarse = assign.numpy().astype(np.int64)
    sizes = np.bincount(fine_to_coarse, minlength=clusters)
    out = {
        "clusters": clusters,
        "codebook_size": int(x.shape[0]),
        "normalisation": normalisation,
        "codes": codes,
        "seed": seed,
        "fine_to_coarse": fine_to_coarse.tolist(),
        "sizes": sizes.tolist(),
    }
    if usage is not None:
        used = np.asarray(usage) > 0
        used_per_cluster = np.bincount(fine_to_coarse[used], minlength=clusters)
        out |= {
            "used_codes": int(used.sum()),
            "unused_codes": np.flatnonzero(~used).tolist(),
            "used_per_cluster": used_per_cluster.tolist(),
            "clusters_without_used_code": int((used_per_cluster == 0).sum()),
        }
    return out


def token_usage(codes: np.ndarray, codebook_size: int) -> np.ndarray:
    """How often each code occurs in a (rows, …) token array (memory-mapped shards are read in blocks)."""
    counts = np.zeros(codebook_size, dtype=np.int64)
    for i in range(0, len(codes), USAGE_ROWS):
        counts += np.bincount(np.asarray(codes[i : i + USAGE_ROWS], dtype=np.int64).ravel(), minlength=codebook_size)
    return counts


def run(*, tokenizer_path, train_tokens, clusters: dict, out) -> dict:
    """The `ctf_clusters` stage: k-means over the tokenizer's codebook, with usage from the training tokens."""
    import sys

    from tqdm import tqdm

    from alitok import atomic
    from alitok.config import ParamsError
    from alitok.tokenizer.release import load_tokenizer
    from alitok.tokens.store import TokenShards

    tokenizer = load_tokenizer(tokenizer_path)
    codebook_size = tokenizer.geometry.codebook_size
    if clusters["count"] > codebook_size:
        raise ParamsError(
            f"ctf.clusters.count {clusters['count']} exceeds the {codebook_size} codes of {tokenizer_path}"
        )
    shards = TokenShards(train_tokens)
    usage = sum(
        token_usage(c, codebook_size) for c in tqdm(shards.codes, desc="code usage", unit="shard", file=sys.stderr)
    )
    result = coarse_map(
        tokenizer.codebook_vectors(),  # as the quantizer compares them (L2-normalised for VQ-16)
        clusters["count"],
        normalisation=clusters["normalisation"],
        seed=clusters["seed"],
        iters=clusters["iters"],
        usage=np.asarray(usage),
        codes=clusters["codes"],
    )
    atomic.write_json(out, result)
    log.info(
        "coarse map: %d codes -> %d clusters (sizes %d..%d), %d codes used, %d clusters without a used code",
        result["codebook_size"],
        result["clusters"],
        min(result["sizes"]),
        max(result["sizes"]),
        result["used_codes"],
        result["clusters_without_used_code"],
    )
    return result


def add_arguments(parser) -> None:
    parser.add_argument(
        "--tokenizer", type=Path, required=True, help="tokenizer checkpoint whose codebook is clustered"
    )
    parser.add_argument("--train-tokens", type=Path, required=True, help="train tokens (code usage per cluster)")
    parser.add_argument("--out", type=Path, required=True, help="coarse map JSON: fine_to_coarse, sizes, usage")


def main(args, p: dict) -> None:
    run(tokenizer_path=args.tokenizer, train_tokens=args.train_tokens, clusters=p["ctf"]["clusters"], out=args.out)
