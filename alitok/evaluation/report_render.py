"""report.md as text, from a ReportData alone: no files read or written (report_data reads, report writes).

Every smoke number comes with its context: the classifier's held-out accuracy (the ceiling of
class-consistency), the real held-out images' FID against the reference (the floor), and the controls (an
untrained generator, one trained on shuffled labels), whose class-consistency must sit within sampling noise of
chance. The papers' numbers (results/paper/published.csv) are shown beside ours; a gap is computed only where
the data and the extractor match theirs (ImageNet with Inception), never on a profile's own data and classifier.
"""

from __future__ import annotations

import os
from pathlib import Path

from alitok.evaluation.report_data import ReportData, comparable, paired_rows, paper_rows
from alitok.evaluation.report_figures import FIGURES
from alitok.generator.runs import AT_CTF
from alitok.metrics import intervals

CC_GOAL = 0.80  # issue 6: smoke samples at least 80 % class-consistent


def _fmt(x, digits=3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _rel(target, start) -> str:
    return os.path.relpath(target, Path(start).parent)


def _kind(protocol: dict) -> str:
    """plain or ctf, with the architecture (and the tokenizer family when it is not AliTok's)."""
    kind = protocol.get("kind", "plain")
    tokenizer = protocol.get("tokenizer", "alitok")
    detail = ", ".join(x for x in (protocol.get("arch"), None if tokenizer == "alitok" else f"{tokenizer} tokens") if x)
    return f"{kind} ({detail})" if detail else kind


def _iv(m: dict, key: str, digits: int = 3) -> str:
    """A metric with its 95 % interval when the evaluation computed one (alitok/metrics/intervals.py)."""
    iv = m.get("intervals", {}).get(key)
    if iv is None or m.get(key) is None:
        return _fmt(m.get(key), digits)
    return f"{m[key]:.{digits}f} [{iv['lo']:.{digits}f}, {iv['hi']:.{digits}f}]"


def generator_table(evals: dict[str, dict], logs: dict[str, list]) -> list[str]:
    lines = [
        "| run | kind | control | held-out loss | class gain (nats/token) | samples | FID | IS | precision | recall | "
        "class-consistency | images/s (batch) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in evals.items():
        speed = m.get("speed")
        last = next((r for r in reversed(logs.get(name, [])) if "val_loss" in r), {})
        lines.append(
            f"| {name} | {_kind(m['protocol'])} | {m['protocol'].get('control') or '–'} | "
            f"{_fmt(last.get('val_loss'))} | "
            f"{_fmt(last.get('val_class_gain'), 4)} | {m['num_samples']} | {_iv(m, 'fid', 2)} | "
            f"{_iv(m, 'is', 2)} | {_iv(m, 'precision')} | {_iv(m, 'recall')} | "
            f"{_iv(m, 'class_consistency')} | "
            f"{_fmt(speed['images_per_s'], 1) + ' (' + str(speed['batch']) + ')' if speed else '–'} |"
        )
    return lines


def _interval(m: dict, key: str) -> intervals.Interval:
    return intervals.Interval.of(m["intervals"][key])


def verdicts(evals: dict[str, dict], real: dict | None) -> list[str]:
    """Plain sentences on the claims the smoke run must show, by the rules of the report's header: a goal is met
    on the interval's lower end, a control is at chance by `intervals.at_chance`."""
    out = []
    for name, m in evals.items():
        if "class_consistency" not in m:
            continue
        cc, chance = _interval(m, "class_consistency"), m["chance"]
        where = f"class-consistency {cc.text(3, percent=True)} (n = {m['num_samples']})"
        if m["protocol"].get("control"):
            ok = intervals.at_chance(cc, chance)
            out.append(
                f"- Control `{name}`: {where}, chance {chance:.1%}: "
                + (
                    "**at chance, as it must be**."
                    if ok
                    else f"**NOT at chance (the interval must hold {chance:.1%} and stay below {2 * chance:.1%}): "
                    "the instrument is suspect**."
                )
            )
        else:
            ok = intervals.meets(cc, CC_GOAL)
            out.append(
                f"- `{name}`: {where} against the goal of {CC_GOAL:.0%} on the lower end: "
                + ("**met**." if ok else "**not met**.")
                + (
                    f" Ceiling (classifier on real held-out images): {real['class_consistency']:.1%}."
                    if real and "class_consistency" in real
                    else ""
                )
            )
    return out


def ctf_pairs(evals: dict[str, dict], own_only: bool = False) -> list[tuple[str, str]]:
    """(CTF run, plain run of the same scale): the fair comparison, same depth and width on the same tokens. Then,
    unless `own_only`, (CTF run, that plain run sampled at CTF's protocol), the pair that differs in the method only."""
    pairs = []
    for name, m in evals.items():
        if m["protocol"].get("kind") == "ctf":
            scale = m["protocol"]["scale"]
            pairs += [(name, plain) for plain in (scale, f"{scale}-{AT_CTF}")[: 1 if own_only else 2] if plain in evals]
    return pairs


def sampling_of(protocol: dict) -> str:
    """A run's sampling protocol in a few words, for rows that set two runs side by side."""
    return f"guidance {protocol.get('guidance')} ({protocol.get('guidance_schedule')}), T {protocol.get('temperature')}"


def _ratio(a, b) -> str:
    return "–" if a is None or b is None or b == 0 else f"{a / b:.2f}x"


def ctf_section(
    evals: dict, logs: dict, params_of: dict, cmap: dict | None, stage2_log: list, redundancy: dict | None
) -> list[str]:
    """CTF beside the plain generator of its shape, its stage 2 and coarse map, and the redundancy measurement."""
    lines = ["## CTF: coarse-to-fine on the same tokens", ""]
    if cmap is not None:
        used = cmap.get("used_codes")
        lines.append(
            f"- Coarse map: {cmap['codebook_size']} codes in {cmap['clusters']} clusters (k-means, "
            f"normalisation {cmap['normalisation']}, seed {cmap['seed']}; sizes {min(cmap['sizes'])}.."
            f"{max(cmap['sizes'])})"
            + (
                ""
                if used is None
                else f"; {used} codes used by the training tokens ({used / cmap['codebook_size']:.0%}), "
                f"{cmap['clusters_without_used_code']} clusters without a used code"
            )
            + "."
        )
    last = next((r for r in reversed(stage2_log) if "val_loss" in r), None)
    if last is not None:
        lines.append(
            f"- Stage 2 (one bidirectional model for every stage 1, trained on true coarse maps): held-out "
            f"fine-label loss {last['val_loss']:.3f}, accuracy {last['val_acc']:.1%} after {last['step']} steps."
        )
    lines.append("")
    pairs = ctf_pairs(evals)
    if pairs:
        lines += [
            "CTF against the plain generator of the same depth and width. CTF's parameters are both stages' "
            "(the papers' rows count stage 1 only). Held-out accuracy is over different label sets, so it is "
            "given per model, not as a ratio: stage 1 over the K coarse labels, stage 2 and the plain generator "
            "over the codebook.",
            "",
            "| CTF | plain | sampling CTF / plain | params (M) CTF / plain | gFID CTF / plain | "
            "class-consistency CTF / plain | images/s CTF / plain (ratio) | "
            "held-out accuracy: stage 1 (coarse) / stage 2 (fine) / plain (fine) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        stage2_acc = None if last is None else last["val_acc"]
        for ctf, plain in pairs:
            a, b = evals[ctf], evals[plain]
            acc = [
                next((r["val_acc"] for r in reversed(logs.get(n, [])) if "val_acc" in r), None) for n in (ctf, plain)
            ]
            speed = [m["speed"]["images_per_s"] if "speed" in m else None for m in (a, b)]
            size = [params_of[n] / 1e6 if n in params_of else None for n in (ctf, plain)]
            sampling = [sampling_of(m["protocol"]) for m in (a, b)]
            same = "the same" if sampling[0] == sampling[1] else f"{sampling[0]} / {sampling[1]}"
            lines.append(
                f"| {ctf} | {plain} | {same} | {_fmt(size[0], 2)} / {_fmt(size[1], 2)} | "
                f"{a['fid']:.2f} / {b['fid']:.2f} | "
                f"{_fmt(a.get('class_consistency'))} / {_fmt(b.get('class_consistency'))} | "
                f"{_fmt(speed[0], 1)} / {_fmt(speed[1], 1)} ({_ratio(*speed)}) | "
                f"{_fmt(acc[0])} / {_fmt(stage2_acc)} / {_fmt(acc[1])} |"
            )
            lines.append("")
            differs = "the method only" if same == "the same" else "the method and the sampling protocol"
            lines.append(f"- `{ctf}` against `{plain}` (they differ in {differs}), paired sample by sample:")
            for key, label, lower in (("fid", "gFID", True), ("class_consistency", "class-consistency", False)):
                if key in a.get("intervals", {}) and key in b.get("intervals", {}):
                    d = intervals.paired(_interval(a, key), _interval(b, key))
                    lines.append(f"  - {label}: {intervals.compare_text(d, 'CTF', 'plain', lower, 3)}.")
            if all(speed):
                lines.append(
                    "- images/s: two separate jobs; on a shared CPU their run-to-run noise can exceed the "
                    "difference. `benchmarks/ctf.py` times both kinds side by side in one process."
                )
        lines.append("")
    if redundancy is not None:
        lines += [
            "Redundancy (the paper's Fig. 1b as numbers): every held-out token replaced by a random member of its "
            "cluster (uniform, itself included), or by a random code of the whole codebook, then decoded "
            f"({redundancy['num_images']} images, "
            f"seed {redundancy['seed']}):",
            "",
            "| tokens | PSNR vs original (dB) | PSNR vs plain reconstruction (dB) | rFID |",
            "|---|---|---|---|",
        ]
        for key, label in (
            ("reconstruction", "as encoded"),
            ("within_cluster", "swapped within the cluster"),
            ("whole_codebook", "swapped anywhere in the codebook"),
        ):
            r = redundancy[key]
            lines.append(
                f"| {label} | {r['psnr']:.2f} | {_fmt(r.get('psnr_vs_reconstruction'), 1)} | {r['rfid']:.2f} |"
            )
        w, a, plain = redundancy["within_cluster"], redundancy["whole_codebook"], redundancy["reconstruction"]
        holds = w["psnr"] - a["psnr"] > 0 and w["rfid"] < a["rfid"]
        lines += [
            "",
            f"- The redundancy finding {'**holds**' if holds else '**does not hold**'} here: a within-cluster "
            f"swap costs {plain['psnr'] - w['psnr']:.2f} dB and {w['rfid'] - plain['rfid']:+.1f} rFID, a swap "
            f"anywhere {plain['psnr'] - a['psnr']:.2f} dB and {a['rfid'] - plain['rfid']:+.1f} rFID.",
            "",
        ]
    return lines


def _pair(ours, theirs, digits: int) -> str:
    if ours is None or theirs is None:
        return f"{_fmt(ours, digits)} / {_fmt(theirs, digits)}"
    return f"{ours:.{digits}f} / {theirs:.{digits}f} ({ours - theirs:+.{digits}f})"


def paired_section(like: dict[str, dict], pairing: dict, rows: dict[str, dict]) -> list[str]:
    """Each run beside the paper row its recipe follows (params `evaluation.paper`), like for like, with the gap;
    speed as the CTF-over-plain ratio, the comparison that does not depend on the GPU."""
    lines = [
        f"Same data and extractor as the paper (Inception, ADM reference): the gaps are meaningful. Each run is set "
        f"beside its row of {pairing['name']}'s {pairing['quality']} and {pairing['speed']} "
        "(`evaluation.paper` in params.yaml). Cells: ours / the paper's (ours − the paper's).",
        "",
        "| run | paper row | FID | IS | precision | recall | images/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for run, m in like.items():
        if run not in pairing["rows"]:
            continue
        theirs, speed = rows.get(run, {}), (m.get("speed") or {}).get("images_per_s")
        lines.append(
            f"| {run} | {pairing['rows'][run]} | {_pair(m['fid'], theirs.get('fid'), 2)} | "
            f"{_pair(m['is'], theirs.get('is'), 1)} | {_pair(m['precision'], theirs.get('precision'), 2)} | "
            f"{_pair(m['recall'], theirs.get('recall'), 2)} | "
            f"{_fmt(speed, 2)} / {_fmt(theirs.get('images_per_s'), 2)} |"
        )
    ratios = []
    for run, plain in ctf_pairs(like, own_only=True):  # the paper's speed comparison: each at its own protocol
        if all("speed" in like[r] for r in (run, plain)):
            ours = like[run]["speed"]["images_per_s"] / like[plain]["speed"]["images_per_s"]
            a, b = rows.get(run, {}).get("images_per_s"), rows.get(plain, {}).get("images_per_s")
            ratios.append(
                f"{plain}: ×{ours:.2f} here, ×{a / b:.2f} in the paper" if a and b else f"{plain}: ×{ours:.2f}"
            )
    lines.append("")
    if ratios:
        lines.append(
            "Images/s are measured on different GPUs, so the speed columns are context; CTF's speed relative to the "
            f"plain generator of its scale is comparable: {'; '.join(ratios)}."
        )
    lines.append("")
    return lines


def render(data: ReportData, out: Path | str = "report.md", fig_dir: Path | str = "figures") -> str:
    """report.md's text. `out` and `fig_dir` are where the report and its figures go: links are relative to `out`."""
    out, fig_dir = Path(out), Path(fig_dir)
    evals, logs, real_m = data.evaluations, data.logs, data.real
    profile = next(iter(evals.values()))["protocol"]["profile"] if evals else "?"

    lines = [
        f"# Report: params profile `{profile}`",
        "",
        "Written by `alitok report` from this folder's metrics files. Every number below was computed by this "
        "pipeline run; the papers' numbers come from `results/paper/published.csv`.",
        "",
        f'**Rules of the verdicts below** (docs/evaluation.md, "Intervals"). {intervals.RULES}',
        "",
    ]
    lines += ["## Context", ""]
    if data.classifier:
        c = data.classifier
        lines.append(
            f"- Evaluation classifier, held-out accuracy: {c['val_accuracy']:.1%} (the ceiling of class-consistency)."
        )
    if real_m:
        lines.append(
            f"- Real held-out images against the reference: FID {real_m['fid']:.2f} (the floor), "
            f"precision {real_m['precision']:.3f}, recall {real_m['recall']:.3f}"
            + (f", class-consistency {real_m['class_consistency']:.1%}" if "class_consistency" in real_m else "")
            + f" (n = {real_m['num_samples']})."
        )
    if evals:
        p = next(iter(evals.values()))["protocol"]
        lines.append(
            f"- Extractor: `{p['extractor']}`; reference: `{p['reference']['key']}`; precision/recall k = "
            f"{p['prc_k']}; IS splits {p['isc_splits']}."
            + (
                " FID, IS, precision and recall use the features of the domain classifier trained on this "
                "profile's own data: they are not Inception numbers and do not compare with the papers'."
                if p["extractor"] == "domain_classifier"
                else ""
            )
        )
    lines.append("")

    if data.tokenizer:
        lines += [
            "## Tokenizer",
            "",
            "| stage | PSNR (dB) | SSIM | rFID | class accuracy of reconstructions |",
            "|---|---|---|---|---|",
        ]
        for name, m in data.tokenizer.items():
            lines.append(
                f"| {name} | {_iv(m, 'psnr', 2)} | {_iv(m, 'ssim', 3)} | {_iv(m, 'rfid', 2)} | "
                f"{_iv(m, 'recon_class_accuracy', 3)} |"
            )
        lines += ["", "Brackets: 95 % intervals over the held-out images (a bootstrap; Wilson's for the accuracy).", ""]
        if data.comparison:
            lines += [
                f"Stage 2 against stage 1 continued ([stage_comparison.md]({_rel(data.comparison, out)})): "
                + (data.comparison_verdict or "see the file."),
                "",
            ]

    lines += [
        "## Generator",
        "",
        "Class gain: held-out loss with the null label minus with the true label; near 0 the "
        "model ignores its class and guidance has nothing to amplify.",
        "",
    ]
    lines += generator_table(evals, logs) + [""]
    if any("intervals" in m for m in evals.values()):
        fid_bias = [m["intervals"]["fid"]["bias"] for m in evals.values() if "fid" in m.get("intervals", {})]
        lines += [
            "Brackets are 95 % intervals over the samples (alitok/metrics/intervals.py): Wilson's for "
            "class-consistency, a bootstrap for the rest, each resample scored as the whole set. A bootstrap resample "
            "repeats samples, which biases FID upward: here by "
            f"{min(fid_bias):+.2f} to {max(fid_bias):+.2f} (mean resampled FID minus the set's). The intervals "
            "cover the draw of samples, not retraining on another machine (docs/evaluation.md).",
            "",
        ]
    if any(m["protocol"].get("kind") == "ctf" for m in evals.values()):
        lines += [
            "Rows of kind `ctf` show stage 1's held-out loss and class gain, over the K coarse labels: not "
            "comparable with the plain rows' values over the codebook (stage 2 is in the CTF section).",
            "",
        ]
    lines += verdicts(evals, real_m) + [""]
    for name in evals:
        p = evals[name]["protocol"]
        lines.append(
            f"- `{name}` protocol: {p.get('num_samples')} samples, labels {p.get('label_layout')}, guidance "
            f"{p.get('guidance')} ({p.get('guidance_schedule')}), temperature {p.get('temperature')}, top-k "
            f"{p.get('top_k')}, top-p {p.get('top_p')}, uint8 {p.get('uint8')}, weights {p.get('weights')}, "
            f"seed {p.get('sample_seed')}"
            + (
                f"; CTF: temperature is stage 1's τ1, top-k is stage 2's, τ2 {p['tau2']}, stage 2 restricted "
                f"to the sampled cluster {p['restrict']}, K {p['clusters']}"
                if p.get("kind") == "ctf"
                else ""
            )
            + "."
        )
    speeds = [m["speed"] for m in evals.values() if "speed" in m]
    if speeds:
        lines.append(
            f"- Sampling speed measured on: {speeds[0]['hardware']}, {speeds[0]['precision']}, with decoding to pixels."
        )
    lines.append("")

    if data.ctf_map is not None or ctf_pairs(evals):
        lines += ctf_section(evals, logs, data.params, data.ctf_map, data.ctf_stage2_log or [], data.ctf_redundancy)

    lines += ["## The papers' numbers", ""]
    like = {n: m for n, m in evals.items() if comparable(m) and not m["protocol"].get("control")}
    if like and data.pairing:
        lines += paired_section(like, data.pairing, paired_rows(data.paper, data.pairing))
    elif like:
        lines += [
            "Same data and extractor as the papers (Inception, ADM reference): the gap is meaningful.",
            "",
            "| run | our gFID | paper rows (gFID) |",
            "|---|---|---|",
        ]
        rows = paper_rows(data.paper)
        for n, m in like.items():
            lines.append(
                f"| {n} | {m['fid']:.3f} | "
                + "; ".join(
                    f"{r.model} {r.value} ({r.table}, {r.version})" for r in rows.itertuples() if r.paper == "alitok"
                )
                + " |"
            )
    else:
        lines += [
            "These runs use this profile's own data and the domain classifier trained on it, not Inception, so no gap "
            "to the papers is computed; "
            "their ImageNet rows are context only.",
            "",
            "| paper | table | model | params (M) | gFID | source |",
            "|---|---|---|---|---|---|",
        ]
        for r in paper_rows(data.paper).itertuples():
            lines.append(
                f"| {r.paper} ({r.version}) | {r.table} | {r.model} | {r.params_m} | {r.value} | "
                f"{r.source}, {r.evidence} |"
            )
    lines.append("")

    lines += ["## Figures", ""] + [f"![{f}]({_rel(fig_dir / f, out)})" for f in FIGURES]
    for run, grid in data.sample_grids.items():
        lines.append(f"![samples {run}]({_rel(grid, out)})")
    for grid in data.recon_grids.values():
        lines.append(f"![reconstructions {grid.stem}]({_rel(grid, out)})")
    return "\n".join(lines) + "\n"
