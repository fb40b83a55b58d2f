"""The report's figures (matplotlib), from a ReportData alone: gFID against size, speed against quality, and
every generator run's training curves."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from alitok import plots
from alitok.evaluation.report_data import comparable, paper_rows

if TYPE_CHECKING:
    from alitok.evaluation.report_data import ReportData

FIGURES = ("gfid_vs_params.png", "speed_vs_quality.png", "generator_curves.png")  # the rule's outputs, by name


def model_family(model: str) -> str:
    """ "AliTok-B" -> "AliTok", "LlamaGen-L + CTF" -> "LlamaGen + CTF", "VQGAN (227M)" -> "VQGAN": sizes of one
    model family share a line in the gFID-against-size figure."""
    base = model.split(" + ")[0].split(" (")[0].split("-")[0]
    return base + (" + CTF" if "CTF" in model else "")


def figures(data: ReportData, fig_dir: Path | str) -> list[Path]:
    """Write FIGURES into fig_dir; returns their paths."""
    import pandas as pd  # not at import time: the Snakefile imports FIGURES while it builds the DAG

    fig_dir = Path(fig_dir)
    evals, params_of, paper, logs = data.evaluations, data.params, data.paper, data.logs
    plt = plots.pyplot()
    # gFID against parameters: the papers' points and ours (ours marked when the extractor differs)
    fig, ax = plt.subplots(figsize=(6, 4))
    rows_all = paper_rows(paper).assign(family=lambda d: d.model.map(model_family)).dropna(subset=["params_m"])
    others = []
    for (p, table, family), rows in rows_all.groupby(["paper", "table", "family"]):
        if len(rows) < 2:  # a compared method with one size: a point, not a curve
            others.append(rows)
            continue
        rows = rows.sort_values("params_m")  # one line per model family, so sizes of one family read as a curve
        tag = " (stage-1 params)" if "CTF" in family else ""
        ax.plot(rows.params_m, rows.value, marker="o", ls="--", label=f"{p}: {table}: {family}{tag}")
    if others:
        rest = pd.concat(others)
        ax.scatter(rest.params_m, rest.value, marker=".", color="0.6", label="other methods in the papers' tables")
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
            ax.scatter(
                m["speed"]["images_per_s"],
                m["fid"],
                marker="*",
                s=150,
                label=f"ours: {name} ({m['speed']['hardware'].split(' (')[0]})",
            )
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="images/s (batch 64 unless noted)",
        ylabel="gFID",
        title="speed against quality",
    )
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
    return [fig_dir / f for f in FIGURES]
