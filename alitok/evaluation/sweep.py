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

import pandas as pd
import torch
from tqdm import tqdm

from alitok import atomic
from alitok.classifier.train import load_classifier, predict
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
            images = torch.from_numpy(to_uint8(tokenizer.decode_tokens(codes).float(), s["uint8"])).permute(0, 3, 1, 2)
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
