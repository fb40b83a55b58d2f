"""The stage-2 claim at our scale: does a bidirectional stage-2 decoder beat stage 1 trained on for as long?

Writes a short markdown verdict that says plainly when it does not hold.
"""

from __future__ import annotations

import json
from pathlib import Path

from alitok import atomic


def verdict(stage2: dict, control: dict) -> dict:
    psnr_better = stage2["psnr"] > control["psnr"]
    rfid_better = stage2["rfid"] < control["rfid"]
    return {"psnr_better": psnr_better, "rfid_better": rfid_better, "holds": psnr_better and rfid_better}


def _accuracy(m: dict) -> str:
    return f"{100 * m['recon_class_accuracy']:.1f} %" if "recon_class_accuracy" in m else "n/a"


def run(stage2_json, control_json, stage1_json, out) -> dict:
    s1, s2, ctl = (json.loads(Path(p).read_text()) for p in (stage1_json, stage2_json, control_json))
    v = verdict(s2, ctl)
    said = "holds" if v["holds"] else ("partly holds" if v["psnr_better"] or v["rfid_better"] else "does not hold")
    rows = [("stage 1", s1), ("stage 1 continued (control)", ctl), ("stage 2", s2)]
    lines = [
        "# Tokenizer: stage 2 vs stage 1 continued for the same number of steps",
        "",
        f"Claim (AliTok §1.4, ablation row F): a bidirectional stage-2 decoder improves reconstruction. "
        f"At this params profile it **{said}**: stage 2 is {'better' if v['psnr_better'] else 'not better'} on "
        f"held-out PSNR and {'better' if v['rfid_better'] else 'not better'} on rFID than the control.",
        "",
        "| tokenizer | PSNR (dB) ↑ | SSIM ↑ | rFID ↓ | class accuracy ↑ | codes used |",
        "|---|---|---|---|---|---|",
        *[
            f"| {name} | {m['psnr']:.2f} | {m['ssim']:.4f} | {m['rfid']:.3f} | {_accuracy(m)} | "
            f"{100 * m['codebook_used_fraction']:.1f} % |"
            for name, m in rows
        ],
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
