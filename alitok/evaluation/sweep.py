"""gFID, IS and class-consistency of one generator over a grid of sampling settings (guidance, its power, temperature).

How a profile's guidance and temperature get chosen: by gFID at paper scale, as the papers chose theirs, and by
class-consistency on the embedded data (docs/evaluation.md). It is a tool, not a pipeline stage: its result is a
params choice a person makes and labels as such. Samples are drawn by the sampling stage's own function with the
run's seed, label layout and uint8 conversion, and scored by the evaluation stage's own functions with the
profile's extractor (`evaluation.extractor`) and reference (`evaluation.reference`, through the same statistics
cache), so a setting's gFID, IS and class-consistency here equal the pipeline's for the same samples.
"""

from __future__ import annotations

import copy
import itertools
import logging
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from alitok import atomic
from alitok.config import ParamsError
from alitok.evaluation import reference
from alitok.evaluation.samples import sample_intervals
from alitok.generator.archive import sample_labels, to_uint8
from alitok.generator.release import load_generator
from alitok.generator.sample import drawer
from alitok.metrics import generative, intervals
from alitok.tokenizer.release import ReleaseError, load_tokenizer

log = logging.getLogger("alitok.evaluation")

DOMAIN = "domain_classifier"  # params evaluation.extractor of the embedded profiles


def extractor_weights(p: dict, classifier_path, inception_weights):
    """The evaluation network's weights as the evaluate rule passes them (workflow/rules/common.smk): the domain
    classifier's model.pt, or the Inception .pth (default: params evaluation.extractor_weights)."""
    e = p["evaluation"]
    if e["extractor"] == DOMAIN:
        if classifier_path is None:
            raise ParamsError(
                "evaluation.extractor is domain_classifier: --classifier (the pipeline's classifier/model.pt) "
                "is the extractor of gFID and IS, and gives class-consistency"
            )
        if inception_weights is not None:
            raise ParamsError("--inception-weights: this profile's evaluation.extractor is domain_classifier")
        return Path(classifier_path)
    weights = inception_weights or e["extractor_weights"]
    if weights is None:
        raise ParamsError(f"evaluation.extractor is {e['extractor']}: give --inception-weights or set it in params")
    return Path(weights)


@torch.no_grad()
def run(
    p: dict,
    *,
    scale: str,
    generator_path,
    tokenizer_path,
    cache_dir,
    num_samples: int,
    guidance: list[float],
    powers: list[float | None],
    temperatures: list[float],
    out,
    classifier_path=None,
    inception_weights=None,
    reference_manifest=None,
    dataset_json=None,
) -> pd.DataFrame:
    """One row per (guidance, power, temperature): gFID and IS of `num_samples` samples with the profile's extractor
    and reference, and their class-consistency where a domain classifier is given; written as CSV."""
    e, s = p["evaluation"], p["generator"]["sampling"]
    weights = extractor_weights(p, classifier_path, inception_weights)
    if e["reference"]["kind"] == "split" and (reference_manifest is None or dataset_json is None):
        raise ParamsError(
            f"evaluation.reference is the {e['reference']['split']} split: give --reference-manifest (its manifest, "
            f"as the evaluate rule does: results/<profile>/data/{e['reference']['split']}.csv) and --dataset"
        )
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    model = load_generator(generator_path).to(device).eval()
    tokenizer = load_tokenizer(tokenizer_path).to(device).eval()
    cfg, geo = model.config, tokenizer.geometry
    if (cfg.seq_len, cfg.vocab_size) != (geo.seq_len, geo.codebook_size):
        raise ReleaseError(
            f"generator {generator_path} emits {cfg.seq_len} codes over {cfg.vocab_size}, "
            f"tokenizer {tokenizer_path} decodes {geo.seq_len} over {geo.codebook_size}"
        )
    scorer = None  # the net whose logits give class-consistency: the extractor itself, or a second one
    if classifier_path is not None:
        from alitok.classifier.train import load_classifier

        classes = len(load_classifier(classifier_path)[1]["classes"])
        if classes != cfg.num_classes:
            raise ReleaseError(
                f"classifier {classifier_path} knows {classes} classes, generator {generator_path} {cfg.num_classes}"
            )
    net = generative.extractor(e["extractor"], weights, cuda=cuda)
    if classifier_path is not None:
        scorer = net if e["extractor"] == DOMAIN else generative.extractor(DOMAIN, classifier_path, cuda=cuda)
    ref = reference.of_params(p, net, weights, cache_dir, reference_manifest, dataset_json)
    log.info("sweep scored with extractor %s (%s) against reference %s", e["extractor"], weights, ref["name"])
    labels = sample_labels(num_samples, cfg.num_classes, s["labels"])
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    settings = list(itertools.product(guidance, powers, temperatures))
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent) as work:
        # one setting's images, memory-mapped as the sampling stage's blocks are (50,000 x 512² do not fit in memory)
        shape = (num_samples, geo.image_size, geo.image_size, 3)
        images = np.lib.format.open_memmap(Path(work) / "images.npy", mode="w+", dtype=np.uint8, shape=shape)
        for g, w, t in tqdm(settings, desc="sampling sweep", unit="setting", file=sys.stderr):
            q = copy.deepcopy(p)
            q["generator"]["scales"][scale].update(guidance=g, guidance_power=w)
            q["generator"]["sampling"]["temperature"] = t
            draw = drawer(q, scale, model, None)
            for start in range(0, num_samples, s["batch"]):
                stop = min(start + s["batch"], num_samples)
                batch = torch.as_tensor(labels[start:stop], device=device)
                codes = draw(batch, torch.arange(start, stop, device=device))
                images[start:stop] = to_uint8(tokenizer.decode_codes(codes).float(), s["uint8"])
            images.flush()
            feats = generative.features(images, net, e["batch"], cuda=cuda)  # the evaluate stage's calls from here
            row = {
                "guidance": g,
                "guidance_power": w,
                "temperature": t,
                "num_samples": num_samples,
                "gfid": generative.fid(generative.statistics(feats["pool"]), ref),
                "is": generative.inception_score(feats["logits_unbiased"], e["isc_splits"])[0],
            }
            iv = sample_intervals(feats, ref, e, None, row["gfid"], row["is"], prc=False)  # as the evaluate stage's
            row |= {
                "gfid_lo": iv["fid"]["lo"],
                "gfid_hi": iv["fid"]["hi"],
                "is_lo": iv["is"]["lo"],
                "is_hi": iv["is"]["hi"],
            }
            if scorer is not None:
                scored = feats if scorer is net else generative.features(images, scorer, e["batch"], cuda=cuda)
                row["class_consistency"] = generative.class_consistency(scored["logits"], labels)
                hits = int(round(row["class_consistency"] * num_samples))
                cc = intervals.wilson(hits, num_samples)
                row["class_consistency_lo"], row["class_consistency_hi"] = cc.lo, cc.hi
            rows.append(row)
        del images
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
    parser.add_argument(
        "--classifier",
        type=Path,
        help="the domain classifier's model.pt: the extractor where evaluation.extractor is domain_classifier "
        "(required there); gives class-consistency",
    )
    parser.add_argument(
        "--inception-weights",
        type=Path,
        help="torch-fidelity's Inception .pth where evaluation.extractor is inception-v3-compat "
        "(default: params evaluation.extractor_weights)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        required=True,
        help="reference statistics, keyed by content and weights (the evaluate stage's: "
        "results/<profile>/evaluation/cache)",
    )
    parser.add_argument("--reference-manifest", type=Path, help="evaluation.reference kind split: the split's manifest")
    parser.add_argument("--dataset", type=Path, help="evaluation.reference kind split: dataset.json")
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
        inception_weights=args.inception_weights,
        cache_dir=args.cache_dir,
        reference_manifest=args.reference_manifest,
        dataset_json=args.dataset,
        num_samples=args.num_samples or s["num_samples"],
        guidance=args.guidance or [sc["guidance"]],
        powers=args.power or [sc["guidance_power"]],
        temperatures=args.temperature or [s["temperature"]],
        out=args.out,
    )
    print(table.to_string(index=False))
