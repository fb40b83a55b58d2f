"""Figures people look at: written atomically, with the non-interactive backend (jobs run headless)."""

from __future__ import annotations

import json
from pathlib import Path

from alitok import atomic


def pyplot():
    """matplotlib.pyplot on the Agg backend, imported on first use (the CLI starts without it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path) -> None:
    plt = pyplot()
    with atomic.atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)


def read_log(path) -> list[dict]:
    """A JSON-lines training log as a list of records."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def log_curves(path, records: list[dict], panels: list[tuple[str, list[str], bool]], title: str = "") -> None:
    """One panel per (label, log keys, log scale): each key against `step`, where the records have it.
    Phase boundaries (a change of the `phase` key) are marked, so a jump at a restart is not read as a bug."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.5), squeeze=False)
    bounds = [r["step"] for prev, r in zip(records, records[1:]) if "phase" in r and r["phase"] != prev.get("phase")]
    for ax, (label, keys, log_y) in zip(axes[0], panels):
        for key in keys:
            points = [(r["step"], r[key]) for r in records if r.get(key) is not None]
            if points:
                steps, values = zip(*points)
                ax.plot(steps, values, label=key, marker="o" if len(points) < 20 else None)
        for b in bounds:
            ax.axvline(b, color="grey", lw=0.8, ls="--")
        ax.set(xlabel="step", ylabel=label, yscale="log" if log_y else "linear")
        ax.grid(alpha=0.3)
        if len(keys) > 1:
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    save_figure(fig, path)
