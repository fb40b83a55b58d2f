"""The stage-2 claim at our scale: does a bidirectional stage-2 decoder beat stage 1 trained on for as long?

Writes a short markdown verdict that says plainly when it does not hold.
"""

from __future__ import annotations

import json
from pathlib import Path

from alitok import atomic
from alitok.metrics import intervals

# (metric, what the table shows, lower is better)
METRICS = (("psnr", "PSNR (dB)", False), ("rfid", "rFID", True), ("ssim", "SSIM", False))


def differences(stage2: dict, control: dict) -> dict:
    """Stage 2 − control per metric: the paired-bootstrap interval over the same held-out images (the report's rule,
    alitok/metrics/intervals.py), and whether stage 2 is better, worse or within noise."""
    out = {}
    for key, _, lower in METRICS:
        d = intervals.paired(*(intervals.Interval.of(m["intervals"][key]) for m in (stage2, control)))
        better = (d.hi < 0) if lower else (d.lo > 0)
        worse = (d.lo > 0) if lower else (d.hi < 0)
        out[key] = {"difference": d, "said": "better" if better else "worse" if worse else "within noise"}
    return out


def verdict(stage2: dict, control: dict) -> dict:
    """The claim holds when stage 2 is better on PSNR and rFID beyond noise, partly when on one of them."""
    d = differences(stage2, control)
    psnr_better, rfid_better = (d[k]["said"] == "better" for k in ("psnr", "rfid"))
    return {"psnr_better": psnr_better, "rfid_better": rfid_better, "holds": psnr_better and rfid_better, "by": d}


def _accuracy(m: dict) -> str:
    return f"{100 * m['recon_class_accuracy']:.1f} %" if "recon_class_accuracy" in m else "n/a"


def _iv(m: dict, key: str, digits: int) -> str:
    iv = m["intervals"][key]
    return f"{m[key]:.{digits}f} [{iv['lo']:.{digits}f}, {iv['hi']:.{digits}f}]"


def run(stage2_json, control_json, stage1_json, out) -> dict:
    s1, s2, ctl = (json.loads(Path(p).read_text()) for p in (stage1_json, stage2_json, control_json))
    v = verdict(s2, ctl)
    noise = all(d["said"] == "within noise" for d in v["by"].values())
    said = "holds" if v["holds"] else "partly holds" if v["psnr_better"] or v["rfid_better"] else "does not hold"
    said += " (every difference within noise)" if noise else ""
    rows = [("stage 1", s1), ("stage 1 continued (control)", ctl), ("stage 2", s2)]
    by = v["by"]
    lines = [
        "# Tokenizer: stage 2 vs stage 1 continued for the same number of steps",
        "",
        f"Claim (AliTok §1.4, ablation row F): a bidirectional stage-2 decoder improves reconstruction. "
        f"At this params profile it **{said}**: against the control, stage 2 is {by['psnr']['said']} on held-out "
        f"PSNR and {by['rfid']['said']} on rFID.",
        "",
        "| tokenizer | PSNR (dB) ↑ | SSIM ↑ | rFID ↓ | class accuracy ↑ | codes used |",
        "|---|---|---|---|---|---|",
        *[
            f"| {name} | {_iv(m, 'psnr', 2)} | {_iv(m, 'ssim', 4)} | {_iv(m, 'rfid', 3)} | {_accuracy(m)} | "
            f"{100 * m['codebook_used_fraction']:.1f} % |"
            for name, m in rows
        ],
        "",
        "| stage 2 − control | difference [95 % paired interval] | verdict |",
        "|---|---|---|",
        *[f"| {label} | {by[key]['difference'].text(3)} | {by[key]['said']} |" for key, label, _ in METRICS],
        "",
        f"Brackets are 95 % intervals over the held-out images ({s2['intervals']['psnr']['method']}); a difference "
        "is resampled image by image, both tokenizers on the same images, and is within noise when its interval "
        'holds 0 (docs/evaluation.md, "Intervals"). They cover the choice of images, not retraining.',
        "",
        "Class accuracy: the domain classifier's accuracy on the reconstructions, the ceiling of a generator's "
        "class-consistency on these tokens.",
        "",
    ]
    atomic.write_text(out, "\n".join(lines))
    return v


def add_arguments(parser) -> None:
    parser.add_argument("--stage1", type=Path, required=True, help="stage-1 metrics JSON")
    parser.add_argument("--stage2", type=Path, required=True, help="stage-2 metrics JSON")
    parser.add_argument("--control", type=Path, required=True, help="continued-stage-1 metrics JSON")
    parser.add_argument("--out", type=Path, required=True, help="comparison (markdown)")


def main(args, p: dict) -> None:
    run(args.stage2, args.control, args.stage1, args.out)
