"""Sample and score ablation units that share trained models: one job per generator (or CTF stage-1/stage-2
pair) samples every unit that differs only in sampling settings, with the pipeline's own sampler and evaluator.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alitok import atomic, config
from alitok.ablations.units import SCALE
from alitok.evaluation import samples as evaluate
from alitok.generator import sample

log = logging.getLogger(__name__)


def run(
    params,
    profile: str,
    seed: int,
    units: list[str],
    *,
    generator,
    tokenizer,
    extractor_weights,
    dataset_json,
    reference_manifest,
    cache_dir,
    work_dir,
    out,
    grid_dir,
    ctf_stage2=None,
    coarse_map=None,
) -> dict:
    """Scores of `units` at `seed` -> `out` (JSON, unit -> evaluation metrics); a sample grid per unit in `grid_dir`."""
    work_dir, grid_dir = Path(work_dir), Path(grid_dir)
    grid_dir.mkdir(parents=True, exist_ok=True)
    scores = {}
    for i, unit in enumerate(units, 1):
        p = config.load(params, f"{profile}/{unit}/seed{seed}")
        archive = work_dir / f"{unit}.npz"  # beside, not inside, the sampler's work folder, which it empties
        sample.run(
            p,
            scale=SCALE,
            generator_path=generator,
            tokenizer_path=tokenizer,
            work_dir=work_dir / unit,
            out_archive=archive,
            out_grid=grid_dir / f"{unit}.png",
            ctf_stage2=ctf_stage2,
            coarse_map=coarse_map,
        )
        scores[unit] = evaluate.run(
            p,
            out=work_dir / f"{unit}.json",
            extractor_weights=extractor_weights,
            cache_dir=cache_dir,
            samples=archive,
            dataset_json=dataset_json,
            reference_manifest=reference_manifest,
            scale=SCALE,
            ctf_stage2=ctf_stage2,
            coarse_map=coarse_map,
        )  # no generator: not timed
        log.info(
            "unit %d/%d %s (seed %d): gFID %.2f, class-consistency %.3f",
            i,
            len(units),
            unit,
            seed,
            scores[unit]["fid"],
            scores[unit].get("class_consistency", float("nan")),
        )
    atomic.write_json(out, scores)
    for unit in units:  # the scores are written: a rerun samples again rather than trust a stale archive
        (work_dir / f"{unit}.npz").unlink(missing_ok=True)
    return scores
