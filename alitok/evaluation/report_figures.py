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


def _ours(evals: dict) -> tuple[dict, dict]:
    """Our non-control runs split by FID protocol: (comparable with the papers' Inception gFID, not comparable)."""
    runs = {n: m for n, m in evals.items() if not m["protocol"].get("control")}
    return {n: m for n, m in runs.items() if comparable(m)}, {n: m for n, m in runs.items() if not comparable(m)}


def _panels(plt, apart: bool, title: str):
    """One axes, or two side by side (the papers' Inception gFID left, our domain-classifier FID right, each on its
    own axis) when `apart`: mixing them on one axis squashes the papers' curves against ours."""
    fig, axes = plt.subplots(
        1, 2 if apart else 1, figsize=(11 if apart else 6.5, 4.6), squeeze=False, layout="constrained"
    )
    fig.suptitle(title)
    return fig, list(axes[0]) + [axes[0][0]] * (not apart)


def _finish(ax, xlabel: str, ylabel: str, title: str) -> None:
    ax.set(xscale="log", yscale="log", xlabel=xlabel, ylabel=ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.margins(0.2)
    plots.readable_log_axes(ax)
    plots.legend_below(ax)


def _star(ax, x, y, label: str) -> None:
    """One of our runs: a gold star (apart from every paper colour) named beside it, not in the legend."""
    ax.scatter([x], [y], marker="*", s=200, zorder=3, color="gold", edgecolor="k", linewidth=0.7)
    ax.annotate(label, (x, y), xytext=(7, 4), textcoords="offset points", fontsize=plots.LEGEND_PT)


def figures(data: ReportData, fig_dir: Path | str) -> list[Path]:
    """Write FIGURES into fig_dir; returns their paths."""
    import pandas as pd  # not at import time: the Snakefile imports FIGURES while it builds the DAG

    fig_dir = Path(fig_dir)
    evals, params_of, paper, logs = data.evaluations, data.params, data.paper, data.logs
    plt = plots.pyplot()
    same, other = _ours(evals)
    papers_title = "the papers (Inception gFID, ImageNet)" + (" and ours on their protocol" if same else "")
    other_title = "ours: domain-classifier FID (not comparable with the papers')"

    # gFID against parameters: the papers' lines and ours; ours on their own axis when the extractor differs
    fig, (ax, ax_ours) = _panels(plt, bool(other), "gFID against size")
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
    for group, target in ((same, ax), (other, ax_ours)):
        for name, m in group.items():
            if name in params_of:
                _star(target, params_of[name] / 1e6, m["fid"], f"ours: {name}")
    size = "generator parameters (M)"
    _finish(ax, size, "gFID (Inception)", papers_title)
    if other:
        _finish(ax_ours, size, "FID (domain-classifier features)", other_title)
    plots.save_figure(fig, fig_dir / FIGURES[0])

    # speed against quality: the papers' speed tables beside their gFID; ours with the hardware that timed them
    fig, (ax, ax_ours) = _panels(plt, bool(other), "speed against quality")
    speed = paper[paper.metric == "images_per_s"]
    gfid = paper[(paper.metric == "gfid") & (paper.setting == "w/ cfg")]
    points = {}  # (paper, model) -> (images/s, gFID, where it was timed)
    for _, r in speed.iterrows():
        match = gfid[(gfid.model == r.model) & (gfid.paper == r.paper)]
        if len(match):
            points[r.paper, r.model] = (r.value, match.value.min(), r.table.split("(")[-1].rstrip(")"))
    colours = (f"C{i}" for i in range(1000))  # one per entry: scatter and plot would each restart the cycle
    for (paper_name, model), (x, y, where) in points.items():
        if " + " in model:
            continue
        colour = next(colours)
        plus = next(
            ((m, pt) for (pn, m), pt in points.items() if pn == paper_name and m.startswith(f"{model} + ")), None
        )
        if plus is None:  # a model of the paper's speed table
            ax.scatter(x, y, marker="o", s=40, color=colour, label=f"{paper_name}: {model} ({where})")
            continue
        # a method's gain: the plain model (circle) joined to the same model with the method (square)
        method = plus[0].split(" + ", 1)[1]
        ax.plot([x, plus[1][0]], [y, plus[1][1]], ls=":", lw=1.2, color=colour)
        ax.scatter(x, y, marker="o", s=40, color=colour, label=f"{paper_name}: {model} ● → + {method} ■ ({where})")
        ax.scatter(plus[1][0], plus[1][1], marker="s", s=40, color=colour)
    for group, target in ((same, ax), (other, ax_ours)):
        for name, m in group.items():
            if "speed" in m:  # the hardware beside the star on the papers' axis; on our own, the axis says it
                hw = f" ({m['speed']['hardware'].split(' (')[0]})" if target is ax else ""
                _star(target, m["speed"]["images_per_s"], m["fid"], f"ours: {name}{hw}")
    hardware = sorted({m["speed"]["hardware"].split(" (")[0] for m in {**same, **other}.values() if "speed" in m})
    rate = "images/s (batch 64 unless noted)"
    _finish(ax, rate, "gFID (Inception, w/ cfg)", papers_title)
    if other:
        _finish(ax_ours, f"images/s, timed on {'; '.join(hardware)}", "FID (domain-classifier features)", other_title)
    plots.save_figure(fig, fig_dir / FIGURES[1])

    # generator training curves, every run on one figure
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    for name, records in logs.items():
        m = evals.get(name, {}).get("protocol", {})
        label = f"{name} (stage 1: {m.get('clusters', 'coarse')} coarse labels)" if m.get("kind") == "ctf" else name
        for ax, key in zip(axes, ("val_loss", "val_acc")):
            pts = [(r["step"], r[key]) for r in records if key in r]
            if pts:
                ax.plot(*zip(*pts), marker="o" if len(pts) < 3 else None, label=label)
    for ax, label in zip(axes, ("held-out cross-entropy", "held-out next-token accuracy")):
        ax.set(xlabel="step", ylabel=label)
        ax.grid(alpha=0.3)
    if axes[0].get_legend_handles_labels()[0]:
        fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncol=4, fontsize=plots.LEGEND_PT)
    plots.save_figure(fig, fig_dir / FIGURES[2])
    return [fig_dir / f for f in FIGURES]
