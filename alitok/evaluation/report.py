"""The final report: results/<params profile>/report.md and its figures, from the stages' metrics files.

Every smoke number comes with its context: the classifier's held-out accuracy (the ceiling of
class-consistency), the real held-out images' FID against the reference (the floor), and the controls (an
untrained generator, one trained on shuffled labels), whose class-consistency must sit within sampling noise of
chance. The papers' numbers (results/paper/published.csv) are shown beside ours; a gap is computed only where
the data and the extractor match theirs (ImageNet with Inception), never on the embedded data.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pandas as pd

from alitok import atomic, plots
from alitok.evaluation import summary

CC_GOAL = 0.80  # issue 6: smoke samples at least 80 % class-consistent
FIGURES = ("gfid_vs_params.png", "speed_vs_quality.png", "generator_curves.png")


def _load(path) -> dict:
    return json.loads(Path(path).read_text())


def run_name(path) -> str:
    return Path(path).stem


def chance_band(chance: float, n: int) -> float:
    """Three binomial standard deviations: a label-blind sampler lands within this of chance (99.7 %)."""
    return 3 * math.sqrt(chance * (1 - chance) / n)


def comparable(evaluation: dict) -> bool:
    """The paper's gFID is Inception features against the ADM ImageNet batch; only that is a like-for-like gap."""
    p = evaluation["protocol"]
    return p["extractor"] == "inception-v3-compat" and p["reference"]["kind"] == "adm_npz"


def _fmt(x, digits=3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _rel(target, start) -> str:
    return os.path.relpath(target, Path(start).parent)


def generator_table(evals: dict[str, dict], logs: dict[str, list]) -> list[str]:
    lines = ["| run | control | held-out loss | class gain (nats/token) | samples | FID | IS | precision | recall | "
             "class-consistency | images/s (batch) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, m in evals.items():
        speed = m.get("speed")
        last = next((r for r in reversed(logs.get(name, [])) if "val_loss" in r), {})
        lines.append(f"| {name} | {m['protocol'].get('control') or '–'} | {_fmt(last.get('val_loss'))} | "
                     f"{_fmt(last.get('val_class_gain'), 4)} | {m['num_samples']} | {_fmt(m['fid'], 2)} | "
                     f"{_fmt(m['is'], 2)} | {_fmt(m['precision'])} | {_fmt(m['recall'])} | "
                     f"{_fmt(m.get('class_consistency'))} | "
                     f"{_fmt(speed['images_per_s'], 1) + ' (' + str(speed['batch']) + ')' if speed else '–'} |")
    return lines


def verdicts(evals: dict[str, dict], real: dict | None) -> list[str]:
    """Plain sentences on the claims the smoke run must show."""
    out = []
    for name, m in evals.items():
        if "class_consistency" not in m:
            continue
        cc, chance, n = m["class_consistency"], m["chance"], m["num_samples"]
        band = chance_band(chance, n)
        control = m["protocol"].get("control")
        if control:
            ok = abs(cc - chance) <= band
            out.append(f"- Control `{name}`: class-consistency {cc:.1%}, chance {chance:.1%} ± {band:.1%} (3σ, n = {n}): "
                       + ("**near chance, as it must be**." if ok else "**NOT near chance: the instrument is suspect**."))
        else:
            ok = cc >= CC_GOAL
            out.append(f"- `{name}`: class-consistency {cc:.1%} against the goal of {CC_GOAL:.0%}: "
                       + ("**met**." if ok else "**not met**.")
                       + (f" Ceiling (classifier on real held-out images): {real['class_consistency']:.1%}."
                          if real and "class_consistency" in real else ""))
    return out


def paper_rows(paper: pd.DataFrame) -> pd.DataFrame:
    main = paper[(paper.metric == "gfid") & (paper.setting == "w/ cfg")]
    return main[main.table.str.contains("main|release|Table 1")]


def figures(fig_dir: Path, evals: dict, params_of: dict, paper: pd.DataFrame, logs: dict) -> None:
    plt = plots.pyplot()
    # gFID against parameters: the papers' points and ours (ours marked when the extractor differs)
    fig, ax = plt.subplots(figsize=(6, 4))
    for (p, table), rows in paper_rows(paper).groupby(["paper", "table"]):
        ax.plot(rows.params_m, rows.value, marker="o", ls="--", label=f"{p}: {table}")
    for name, m in evals.items():
        if name in params_of and not m["protocol"].get("control"):
            tag = "ours" if comparable(m) else "ours (domain-classifier FID: not comparable)"
            ax.scatter([params_of[name] / 1e6], [m["fid"]], marker="*", s=150, label=f"{tag}: {name}", zorder=3)
    ax.set(xscale="log", yscale="log", xlabel="generator parameters (M)", ylabel="gFID", title="gFID against size")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    plots.save_figure(fig, fig_dir / FIGURES[0])

    # speed against quality
    fig, ax = plt.subplots(figsize=(6, 4))
    speed = paper[paper.metric == "images_per_s"]
    gfid = paper[(paper.metric == "gfid") & (paper.setting == "w/ cfg")]
    for _, r in speed.iterrows():
        match = gfid[(gfid.model == r.model) & (gfid.paper == r.paper)]
        if len(match):
            ax.scatter(r.value, match.value.min(), label=f"{r.paper}: {r.model} ({r.table.split('(')[-1].rstrip(')')})")
    for name, m in evals.items():
        if "speed" in m and not m["protocol"].get("control"):
            ax.scatter(m["speed"]["images_per_s"], m["fid"], marker="*", s=150,
                       label=f"ours: {name} ({m['speed']['hardware'].split(' (')[0]})")
    ax.set(xscale="log", yscale="log", xlabel="images/s (batch 64 unless noted)", ylabel="gFID",
           title="speed against quality")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    plots.save_figure(fig, fig_dir / FIGURES[1])

    # generator training curves, every run on one figure
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for name, records in logs.items():
        for ax, key in zip(axes, ("val_loss", "val_acc")):
            pts = [(r["step"], r[key]) for r in records if key in r]
            if pts:
                ax.plot(*zip(*pts), marker="o" if len(pts) < 3 else None, label=name)
    for ax, label in zip(axes, ("held-out cross-entropy", "held-out next-token accuracy")):
        ax.set(xlabel="step", ylabel=label)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    plots.save_figure(fig, fig_dir / FIGURES[2])


def run(*, out, fig_dir, evaluations: list, paper_csv, real=None, classifier=None, tokenizer_metrics=(),
        comparison=None, generator_logs=(), generators=(), tokenizer_logs=(), metrics_out=None, curves_dir=None) -> None:
    import torch

    out, fig_dir = Path(out), Path(fig_dir)
    evals = {run_name(p): _load(p) for p in evaluations}
    real_m = _load(real) if real else None
    paper = pd.read_csv(paper_csv)
    logs = {Path(p).parent.name: plots.read_log(p) for p in generator_logs}
    params_of = {}
    for g in generators:
        ck = torch.load(g, map_location="cpu", weights_only=False)
        params_of[Path(g).parent.name] = sum(v.numel() for v in ck["model"].values())
    profile = next(iter(evals.values()))["protocol"]["profile"] if evals else "?"

    lines = [f"# Report: params profile `{profile}`", "",
             "Written by `alitok report` from this folder's metrics files. Every number below was computed by this "
             "pipeline run; the papers' numbers come from `results/paper/published.csv`.", ""]
    lines += ["## Context", ""]
    if classifier:
        c = _load(classifier)
        lines.append(f"- Evaluation classifier, held-out accuracy: {c['val_accuracy']:.1%} (the ceiling of "
                     "class-consistency).")
    if real_m:
        lines.append(f"- Real held-out images against the reference: FID {real_m['fid']:.2f} (the floor), "
                     f"precision {real_m['precision']:.3f}, recall {real_m['recall']:.3f}"
                     + (f", class-consistency {real_m['class_consistency']:.1%}" if "class_consistency" in real_m else "")
                     + f" (n = {real_m['num_samples']}).")
    if evals:
        p = next(iter(evals.values()))["protocol"]
        lines.append(f"- Extractor: `{p['extractor']}`; reference: `{p['reference']['key']}`; precision/recall k = "
                     f"{p['prc_k']}; IS splits {p['isc_splits']}.")
    lines.append("")

    if tokenizer_metrics:
        lines += ["## Tokenizer", "", "| stage | PSNR (dB) | SSIM | rFID | class accuracy of reconstructions |",
                  "|---|---|---|---|---|"]
        for path in tokenizer_metrics:
            m = _load(path)
            name = Path(path).name.replace("_metrics.json", "")
            lines.append(f"| {name} | {m['psnr']:.2f} | {m['ssim']:.3f} | {m['rfid']:.2f} | "
                         f"{m.get('recon_class_accuracy', float('nan')):.1%} |")
        lines.append("")
        if comparison:
            verdict = [ln for ln in Path(comparison).read_text().splitlines() if "hold" in ln.lower()]
            lines += [f"Stage 2 against stage 1 continued ([stage_comparison.md]({_rel(comparison, out)})): "
                      + (verdict[0].strip() if verdict else "see the file."), ""]

    lines += ["## Generator", "", "Class gain: held-out loss with the null label minus with the true label; near 0 the "
              "model ignores its class and guidance has nothing to amplify.", ""]
    lines += generator_table(evals, logs) + [""] + verdicts(evals, real_m) + [""]
    for name in evals:
        p = evals[name]["protocol"]
        lines.append(f"- `{name}` protocol: {p.get('num_samples')} samples, labels {p.get('label_layout')}, guidance "
                     f"{p.get('guidance')} ({p.get('guidance_schedule')}), temperature {p.get('temperature')}, top-k "
                     f"{p.get('top_k')}, top-p {p.get('top_p')}, uint8 {p.get('uint8')}, weights {p.get('weights')}, "
                     f"seed {p.get('sample_seed')}.")
    speeds = [m["speed"] for m in evals.values() if "speed" in m]
    if speeds:
        lines.append(f"- Sampling speed measured on: {speeds[0]['hardware']}, {speeds[0]['precision']}, "
                     "with decoding to pixels.")
    lines.append("")

    lines += ["## The papers' numbers", ""]
    like = {n: m for n, m in evals.items() if comparable(m) and not m["protocol"].get("control")}
    if like:
        lines += ["Same data and extractor as the papers (Inception, ADM reference): the gap is meaningful.", "",
                  "| run | our gFID | paper rows (gFID) |", "|---|---|---|"]
        rows = paper_rows(paper)
        for n, m in like.items():
            lines.append(f"| {n} | {m['fid']:.3f} | " + "; ".join(
                f"{r.model} {r.value} ({r.table}, {r.version})" for r in rows.itertuples() if r.paper == "alitok") + " |")
    else:
        lines += ["These runs use the embedded data and the domain classifier, so no gap to the papers is computed; "
                  "their ImageNet rows are context only.", "", "| paper | table | model | params (M) | gFID | source |",
                  "|---|---|---|---|---|---|"]
        for r in paper_rows(paper).itertuples():
            lines.append(f"| {r.paper} ({r.version}) | {r.table} | {r.model} | {r.params_m} | {r.value} | "
                         f"{r.source}, {r.evidence} |")
    lines.append("")

    figures(fig_dir, evals, params_of, paper, logs)
    lines += ["## Figures", ""] + [f"![{f}]({_rel(fig_dir / f, out)})" for f in FIGURES]
    for g in generators:
        grid = Path(g).parent / "samples_grid.png"
        lines.append(f"![samples {Path(g).parent.name}]({_rel(grid, out)})")
    for path in tokenizer_metrics:
        grid = Path(str(path).replace("_metrics.json", "_recon.png"))
        lines.append(f"![reconstructions {grid.stem}]({_rel(grid, out)})")
    if metrics_out is not None:
        tok = {Path(p).name.replace("_metrics.json", ""): _load(p) for p in tokenizer_metrics}
        curve_logs = {f"generator_{n}": records for n, records in logs.items()}
        curve_logs |= {f"tokenizer_{Path(p).name.replace('_log.jsonl', '')}": plots.read_log(p) for p in tokenizer_logs}
        summary.write(metrics_out, curves_dir, summary.metrics(
            evaluations=evals, generator_logs=logs, real=real_m, tokenizer=tok,
            classifier=_load(classifier) if classifier else None), summary.curves(curve_logs))
    atomic.write_text(out, "\n".join(lines) + "\n")
