"""Class-consistency of one generator over a grid of sampling settings (guidance, its power, temperature).

How a profile's sampling temperature and guidance get chosen (the smoke profile's were: docs/evaluation.md).
It is a tool, not a pipeline stage: its result is a params choice a person makes and labels as such. Samples
are drawn by the sampling stage's own function with the run's seed, label layout and uint8 conversion, so a
setting's class-consistency here equals the pipeline's for the same number of samples.
"""

from __future__ import annotations

import copy
import itertools
import sys
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

from alitok import atomic
from alitok.classifier.train import load_classifier, predict
from alitok.config import ParamsError
from alitok.generator.archive import sample_labels, to_uint8
from alitok.generator.release import load_generator
from alitok.generator.sample import drawer
from alitok.tokenizer.release import ReleaseError, load_tokenizer


@torch.no_grad()
def run(
    p: dict,
    *,
    scale: str,
    generator_path,
    tokenizer_path,
    classifier_path,
    num_samples: int,
    guidance: list[float],
    powers: list[float | None],
    temperatures: list[float],
    out,
) -> pd.DataFrame:
    """One row per (guidance, power, temperature): class-consistency of `num_samples` samples, written as CSV."""
    model = load_generator(generator_path).eval()
    tokenizer = load_tokenizer(tokenizer_path).eval()
    classifier, meta = load_classifier(classifier_path)
    if len(meta["classes"]) != model.config.num_classes:
        raise ReleaseError(
            f"classifier {classifier_path} knows {len(meta['classes'])} classes, generator "
            f"{generator_path} {model.config.num_classes}"
        )
    s = p["generator"]["sampling"]
    labels = torch.as_tensor(sample_labels(num_samples, model.config.num_classes, s["labels"]))
    rows = []
    settings = list(itertools.product(guidance, powers, temperatures))
    for g, w, t in tqdm(settings, desc="sampling sweep", unit="setting", file=sys.stderr):
        q = copy.deepcopy(p)
        q["generator"]["scales"][scale].update(guidance=g, guidance_power=w)
        q["generator"]["sampling"]["temperature"] = t
        draw = drawer(q, scale, model, None)
        hits = 0
        for start in range(0, num_samples, s["batch"]):
            batch = labels[start : start + s["batch"]]
            codes = draw(batch, torch.arange(start, start + len(batch)))
            images = torch.from_numpy(to_uint8(tokenizer.decode_codes(codes).float(), s["uint8"])).permute(0, 3, 1, 2)
            hits += int((predict(classifier, images, len(images)) == batch).sum())
        rows.append(
            {
                "guidance": g,
                "guidance_power": w,
                "temperature": t,
                "num_samples": num_samples,
                "class_consistency": hits / num_samples,
            }
        )
    table = pd.DataFrame(rows)
    with atomic.atomic_path(out) as tmp:
        table.to_csv(tmp, index=False)
    return table


def _power(text: str) -> float | None:
    return None if text.lower() in ("none", "null", "constant") else float(text)


def add_arguments(parser) -> None:
    parser.add_argument("--scale", required=True, help="a key of generator.scales (its seed; defaults of the grid)")
    parser.add_argument("--generator", type=Path, required=True, help="generator checkpoint")
    parser.add_argument("--tokenizer", type=Path, required=True, help="tokenizer checkpoint that decodes its codes")
    parser.add_argument("--classifier", type=Path, required=True, help="the domain classifier's model.pt")
    parser.add_argument("--num-samples", type=int, help="per setting (default: generator.sampling.num_samples)")
    parser.add_argument("--guidance", type=float, nargs="+", help="guidance scales (default: the scale's)")
    parser.add_argument("--power", type=_power, nargs="+", help="guidance powers, 'none' for constant")
    parser.add_argument("--temperature", type=float, nargs="+", help="temperatures (default: generator.sampling's)")
    parser.add_argument("--out", type=Path, required=True, help="one row per setting (CSV)")


def main(args, p: dict) -> None:
    if args.scale not in p["generator"]["scales"]:
        raise ParamsError(
            f"--scale {args.scale}: not a key of generator.scales ({', '.join(p['generator']['scales'])})"
        )
    sc, s = p["generator"]["scales"][args.scale], p["generator"]["sampling"]
    table = run(
        p,
        scale=args.scale,
        generator_path=args.generator,
        tokenizer_path=args.tokenizer,
        classifier_path=args.classifier,
        num_samples=args.num_samples or s["num_samples"],
        guidance=args.guidance or [sc["guidance"]],
        powers=args.power or [sc["guidance_power"]],
        temperatures=args.temperature or [s["temperature"]],
        out=args.out,
    )
    print(table.to_string(index=False))
