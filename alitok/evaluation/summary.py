"""What DVC compares between experiments: one flat-ish metrics file and one folder of loss curves per profile.

`dvc metrics diff` and `dvc exp show` read results/<profile>/metrics.json; `dvc plots diff` reads the curves
folder (dvc.yaml). Both come from the stages' own metrics files and logs, so they cannot disagree with report.md.
"""

from __future__ import annotations

import json
from pathlib import Path

from alitok import atomic

GENERATOR_KEYS = ("fid", "is", "precision", "recall", "class_consistency")
TOKENIZER_KEYS = ("psnr", "ssim", "rfid", "recon_class_accuracy", "codebook_used_fraction", "codebook_perplexity")
REAL_KEYS = ("fid", "precision", "recall", "class_consistency")


def _pick(d: dict, keys) -> dict:
    return {k: d[k] for k in keys if isinstance(d.get(k), (int, float))}


def _last(records: list[dict], key: str):
    return next((r[key] for r in reversed(records) if key in r), None)


def metrics(
    *,
    evaluations: dict[str, dict],
    generator_logs: dict[str, list],
    real: dict | None = None,
    classifier: dict | None = None,
    tokenizer: dict[str, dict] | None = None,
    ctf: dict | None = None,
) -> dict:
    """Headline numbers, nested by stage and run; only numbers, so every key is comparable across experiments."""
    out: dict = {}
    if classifier is not None:
        out["classifier"] = {"val_accuracy": classifier["val_accuracy"]}
    if real is not None:
        out["real"] = _pick(real, REAL_KEYS)
    if tokenizer:
        out["tokenizer"] = {stage: _pick(m, TOKENIZER_KEYS) for stage, m in tokenizer.items()}
    gen = {}
    for run, m in evaluations.items():
        g = _pick(m, GENERATOR_KEYS)
        if isinstance(m.get("speed"), dict) and "images_per_s" in m["speed"]:
            g["images_per_s"] = m["speed"]["images_per_s"]
        for key in ("val_loss", "val_class_gain"):
            value = _last(generator_logs.get(run, []), key)
            if value is not None:
                g[key] = value
        gen[run] = g
    out["generator"] = gen
    if ctf and (ctf.get("coarse_map") or ctf.get("stage2_log") or ctf.get("redundancy")):
        c: dict = {}
        if ctf.get("coarse_map"):
            c["coarse_map"] = _pick(ctf["coarse_map"], ("clusters", "used_codes", "clusters_without_used_code"))
        if ctf.get("stage2_log"):
            c["stage2"] = {k: v for k in ("val_loss", "val_acc") if (v := _last(ctf["stage2_log"], k)) is not None}
        if ctf.get("redundancy"):
            c["redundancy"] = {
                swap: _pick(ctf["redundancy"][swap], ("psnr", "rfid"))
                for swap in ("reconstruction", "within_cluster", "whole_codebook")
            }
        out["ctf"] = c
    return out


def curve_names(generator_runs, tokenizer_stages, others=()) -> dict[str, list[str]]:
    """The curve files a run of the pipeline has, by kind: declared as outputs so that a missing one is an error.
    The untrained control has no training loss, only its held-out point; the tokenizer logs no held-out loss;
    `others` (CTF's stage 2) log both."""
    return {
        "train": [f"generator_{r}" for r in generator_runs if not r.endswith("-untrained")]
        + [f"tokenizer_{s}" for s in tokenizer_stages]
        + list(others),
        "heldout": [f"generator_{r}" for r in generator_runs] + list(others),
    }


def curves(logs: dict[str, list]) -> dict[str, dict[str, list[dict]]]:
    """Per kind and log name: the training loss ("train") and the held-out loss ("heldout") against step; DVC plots
    one y field per folder, so each kind is its own folder."""
    out = {"train": {}, "heldout": {}}
    for name, records in logs.items():
        for kind, key in (("train", "loss"), ("heldout", "val_loss")):
            rows = [{"step": r["step"], key: r[key]} for r in records if key in r]
            if rows:
                out[kind][name] = rows
    return out


def write(metrics_out, curves_dir, summary: dict, curve_data: dict[str, dict[str, list[dict]]]) -> None:
    """Every file replaced atomically: a killed report leaves the previous metrics and curves whole."""
    atomic.write_json(metrics_out, summary)
    for kind, named in curve_data.items():
        for name, rows in named.items():
            atomic.write_text(Path(curves_dir) / kind / f"{name}.json", json.dumps(rows) + "\n")
