"""Sample and score ablation units that share trained models: one job per generator (or CTF stage-1/stage-2
pair) samples every unit that differs only in sampling settings, with the pipeline's own sampler and evaluator.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alitok import atomic, cliargs
from alitok.ablations import units as ablation_units
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
    scores, ctf = {}, {"ctf_stage2": ctf_stage2, "coarse_map": coarse_map}
    against = {"extractor_weights": extractor_weights, "cache_dir": cache_dir, "dataset_json": dataset_json}
    against["reference_manifest"] = reference_manifest
    for i, unit in enumerate(units, 1):
        p = ablation_units.load(params, f"{profile}/{unit}/seed{seed}")
        archive = work_dir / f"{unit}.npz"  # beside, not inside, the sampler's work folder, which it empties
        where = {"work_dir": work_dir / unit, "out_archive": archive, "out_grid": grid_dir / f"{unit}.png"}
        sample.run(p, scale=SCALE, generator_path=generator, tokenizer_path=tokenizer, **where, **ctf)
        metrics = work_dir / f"{unit}.json"  # no generator given: not timed
        scores[unit] = evaluate.run(p, out=metrics, samples=archive, scale=SCALE, **against, **ctf)
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


def add_arguments(parser) -> None:
    parser.add_argument("--seed", type=int, required=True, help="a seed of ablations.seeds")
    parser.add_argument("--units", nargs="+", required=True, help="ablation units (rows or CTF points) to sample")
    parser.add_argument("--generator", type=Path, required=True, help="generator (CTF: stage-1) checkpoint")
    parser.add_argument("--tokenizer", type=Path, required=True, help="tokenizer checkpoint that decodes the codes")
    cliargs.ctf_pair(parser, "CTF: stage-2 checkpoint")
    cliargs.reference(parser, required=True)
    parser.add_argument("--work-dir", type=Path, required=True, help="samples in progress (resume from here)")
    parser.add_argument("--out", type=Path, required=True, help="scores JSON: unit -> evaluation metrics")
    parser.add_argument("--out-grids", type=Path, required=True, help="folder of one sample grid per unit")


def main(args, p: dict) -> None:
    cliargs.together(args, "ctf_stage2", "coarse_map")
    names = ("generator", "tokenizer", "extractor_weights", "reference_manifest", "cache_dir", "work_dir", "out")
    given = cliargs.passed(args, *names, "ctf_stage2", "coarse_map", dataset_json="dataset", grid_dir="out_grids")
    run(args.params, p["name"], args.seed, args.units, **given)
