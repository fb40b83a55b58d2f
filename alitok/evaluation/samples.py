"""Evaluation stage: FID, IS, precision/recall and class-consistency of one sample set, with its protocol.

A sample set is a generator's ADM archive (read memory-mapped, one feature pass) or, for context, the real
held-out images: their FID against the training reference is the floor a generator could reach, and their
class-consistency is the classifier's own held-out accuracy, the ceiling. Each result records every protocol
detail that moves FID (sample count, label layout, guidance, temperature, weights, uint8 rule, reference,
extractor and its weights' hash), and the sampling speed at the paper's batch 64 on the named hardware.
"""

from __future__ import annotations

import logging
import platform
import time
from pathlib import Path

import numpy as np
import torch

from alitok import atomic, cliargs
from alitok.evaluation import reference
from alitok.generator.archive import read_npz
from alitok.generator.runs import CONTROLS, at_ctf_protocol
from alitok.metrics import generative

log = logging.getLogger("alitok.evaluation")


def hardware() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} (torch {torch.__version__})"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{cpu}, {torch.get_num_threads()} threads (torch {torch.__version__})"


@torch.no_grad()
def sampling_speed(
    generator_path, tokenizer_path, p: dict, scale: str, batch: int, repeats: int, ctf_stage2=None, coarse_map=None
) -> dict:
    """Images/s of generate + decode at `batch`, after one untimed warm-up call, with the run's own settings (CTF:
    both stages)."""
    from alitok.generator.sample import drawer, load_models
    from alitok.tokenizer.release import load_tokenizer

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, ctf = load_models(p, generator_path, device, ctf_stage2, coarse_map)
    tok = load_tokenizer(tokenizer_path).to(device)
    draw = drawer(p, scale, model, ctf)
    labels = torch.arange(batch, device=device) % model.config.num_classes

    def once():
        tok.decode_codes(draw(labels, torch.arange(batch, device=device)))
        if device.type == "cuda":
            torch.cuda.synchronize()

    once()
    start = time.perf_counter()
    for _ in range(repeats):
        once()
    seconds = time.perf_counter() - start
    return {
        "images_per_s": batch * repeats / seconds,
        "batch": batch,
        "repeats": repeats,
        "hardware": hardware(),
        "precision": "fp32",
        "includes_decoding": True,
    }


def sample_intervals(feats: dict, ref: dict, e: dict, labels, fid: float, isc: float, prc: bool = True) -> dict:
    """95 % intervals of the set's metrics over its samples (alitok/metrics/intervals.py), around the set's own `fid`
    and `isc`: one set of resamples for all of them, each scored as the whole set is; Wilson's for
    class-consistency (with the domain classifier and labels). `prc` False: FID and IS only. Every interval keeps its
    draws, so a run sampled with the same labels and seeds pairs with this one sample by sample (`intervals.paired`)."""
    from dataclasses import replace

    from alitok.metrics import intervals

    n, draws, seed = len(feats["pool"]), e["intervals"]["draws"], e["intervals"]["seed"]
    rows, pairing = intervals.resamples(n, draws, seed), {"n": n, "seed": seed}
    pool, unbiased = feats["pool"], feats["logits_unbiased"]
    method = f"bootstrap over {n} samples, {draws} resamples"

    def interval(value, resampled):
        return intervals.from_values(value, resampled, method, pairing=pairing).as_dict()

    scores = [generative.inception_score(unbiased[torch.as_tensor(r)], e["isc_splits"])[0] for r in rows]
    out = {"fid": interval(fid, generative.fid_resampled(pool, ref, rows)), "is": interval(isc, scores)}
    pr = generative.precision_recall_resampled(pool, ref["pool"], e["prc_k"], [np.arange(n), *rows]) if prc else None
    if pr is not None:  # the first row is the whole set
        for j, key in enumerate(("precision", "recall")):
            out[key] = interval(pr[0, j], pr[1:, j])
    if e["extractor"] == "domain_classifier" and labels is not None:
        hits = (feats["logits"].argmax(1).numpy() == np.asarray(labels)).astype(np.float64)
        wilson = intervals.wilson(int(hits.sum()), n)  # the interval; the bootstrap draws only pair it with others
        out["class_consistency"] = replace(wilson, draws=tuple(hits[rows].mean(1)), pairing=pairing).as_dict()
    return out


def protocol(
    p: dict, scale: str | None, control: str | None, num_samples: int, ref: dict, ctf: bool = False, sampling="own"
) -> dict:
    """Every setting that moves the numbers, stored with them."""
    e = p["evaluation"]
    out = {
        "profile": p["name"] + (f"/{p['setting']}" if p.get("setting") else ""),  # the CTF setting: its own name
        "num_samples": num_samples,
        "reference": {**e["reference"], "key": ref["name"]},
        "extractor": e["extractor"],
        "prc_k": e["prc_k"],
        "isc_splits": e["isc_splits"],
    }
    if scale is not None:
        s, sc = p["generator"]["sampling"], p["generator"]["scales"][scale]
        guide = p["ctf"]["sampling"] if ctf else sc  # CTF's stage 1 follows ctf.sampling, not the scale's guidance
        out.update(
            kind="ctf" if ctf else "plain",
            sampling=sampling,  # "ctf": a plain generator at CTF's protocol (p is then at_ctf_protocol's)
            arch=sc["arch"],  # the generator's (CTF: stage 1's) architecture
            tokenizer=p["tokenizer"].get("family", "alitok"),
            scale=scale,
            control=control,
            weights="raw (no EMA)",
            guidance=guide["guidance"],
            guidance_schedule="constant"
            if guide["guidance_power"] is None
            else f"cosine-power, power {guide['guidance_power']}",
            uint8=s["uint8"],
            label_layout=s["labels"],
            sample_seed=sc["sample_seed"],
        )
        if ctf:
            out.update(
                temperature=guide["tau1"],
                tau2=guide["tau2"],
                top_k=guide["top_k"],
                top_p=1.0,
                restrict=guide["restrict"],
                clusters=p["ctf"]["clusters"]["count"],
            )
        else:
            out.update(temperature=s["temperature"], top_k=s["top_k"], top_p=s["top_p"])
    return out


def run(
    p: dict,
    *,
    out,
    extractor_weights,
    cache_dir,
    samples=None,
    real_split=None,
    dataset_json=None,
    reference_manifest=None,
    scale: str | None = None,
    control: str | None = None,
    generator=None,
    tokenizer=None,
    ctf_stage2=None,
    coarse_map=None,
    sampling: str = "own",
) -> dict:
    """Metrics JSON of `samples` (an ADM archive) or of the real images listed in `real_split` (a manifest).
    `sampling` "ctf": the samples are a plain generator's at CTF's protocol; they are timed at it, too."""
    e = p["evaluation"]
    if (samples is None) == (real_split is None):
        raise ValueError("evaluate exactly one of: a sample archive, a real split")
    cuda = torch.cuda.is_available()
    net = generative.extractor(e["extractor"], extractor_weights, cuda=cuda)
    ref = reference.of_params(p, net, extractor_weights, cache_dir, reference_manifest, dataset_json)
    if samples is not None:
        images, labels = read_npz(samples)
    else:
        images = reference.split_images(real_split, dataset_json, p["data"]["image_size"])
        from alitok.data import manifest

        labels = np.array([r.label for r in manifest.read_manifest(real_split)])
    feats = generative.features(images, net, e["batch"], cuda=cuda)
    isc_mean, isc_std = generative.inception_score(feats["logits_unbiased"], e["isc_splits"])
    precision, recall = generative.precision_recall(feats["pool"], ref["pool"], e["prc_k"])
    metrics = {
        "fid": generative.fid(generative.statistics(feats["pool"]), ref),
        "is": isc_mean,
        "is_std": isc_std,
        "precision": precision,
        "recall": recall,
        "num_samples": len(images),
        "protocol": protocol(p, scale, control, len(images), ref, ctf=ctf_stage2 is not None, sampling=sampling),
        "extractor_weights_sha256": generative.weights_digest(extractor_weights, 64),
        "source": str(samples if samples is not None else real_split),
    }
    if e["extractor"] == "domain_classifier" and labels is not None:
        metrics["class_consistency"] = generative.class_consistency(feats["logits"], labels)
        from alitok.data import manifest

        metrics["chance"] = 1.0 / len(manifest.read_dataset_info(dataset_json)["classes"])
    metrics["intervals"] = sample_intervals(feats, ref, e, labels, metrics["fid"], isc_mean)
    if generator is not None and tokenizer is not None:
        metrics["speed"] = sampling_speed(
            generator, tokenizer, p, scale, e["speed"]["batch"], e["speed"]["repeats"], ctf_stage2, coarse_map
        )
    atomic.write_json(out, metrics)
    log.info(
        "evaluated %s: FID %.3f, IS %.2f, precision %.3f, recall %.3f%s",
        metrics["source"],
        metrics["fid"],
        isc_mean,
        precision,
        recall,
        f", class-consistency {metrics['class_consistency']:.3f}" if "class_consistency" in metrics else "",
    )
    return metrics


def add_arguments(parser) -> None:
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--samples", type=Path, help="an ADM archive (samples.npz) to evaluate")
    what.add_argument("--real-split", type=Path, help="a split's manifest: evaluate real images (floor and ceiling)")
    cliargs.reference(parser, required=False)  # the reference manifest: reference kind split only
    parser.add_argument("--scale", help="the generator scale that made the samples (its protocol goes in the result)")
    parser.add_argument("--control", choices=CONTROLS, help="the samples are of this control")
    parser.add_argument("--generator", type=Path, help="with --tokenizer: also time sampling (evaluation.speed)")
    parser.add_argument("--tokenizer", type=Path)
    cliargs.ctf_pair(parser)
    cliargs.sampling_protocol(parser)
    parser.add_argument("--out", type=Path, required=True, help="metrics JSON")


def main(args, p: dict) -> None:
    cliargs.together(args, "ctf_stage2", "coarse_map")
    if args.protocol == "ctf":
        p = at_ctf_protocol(p, args.scale)
    names = ("out", "extractor_weights", "cache_dir", "samples", "real_split", "reference_manifest", "scale")
    names += ("control", "generator", "tokenizer", "ctf_stage2", "coarse_map")
    run(p, **cliargs.passed(args, *names, dataset_json="dataset"), sampling=args.protocol)
