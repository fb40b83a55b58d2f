"""Figures people look at: written atomically, with the non-interactive backend (jobs run headless).

Readability rules every figure here follows: legends at 8 pt or more, below the axes when long; log axes with
plain-number tick labels (1, 2, 5, 10 ...) and unlabelled minor ticks, never matplotlib's `3×10^1` mathtext that
collides with its neighbours; an axis that nothing was logged for says so instead of standing empty."""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path

from alitok import atomic

LEGEND_PT = 8  # the smallest text in a figure: legends, phase names, notes
EMPTY_NOTE = "not logged by this run"


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


def plain_number(value: float, _pos=None) -> str:
    """A tick label without mathtext: 0.002, 0.05, 1.5, 20, 20.4, 300, 4000, 1e+06."""
    if value <= 0 or not math.isfinite(value):
        return ""
    if value == round(value) and value < 1e6:
        return f"{value:.0f}"
    return f"{value:.4g}"


def readable_log_axes(ax, axes: str = "xy") -> None:
    """Plain-number labels on the log axes in `axes` ("x", "y" or "xy"), call after the data are drawn: major
    ticks at 1-2-5 steps (finer within about a decade, every decade over more than four; matplotlib's linear ticks
    where even those leave one tick in view), minor ticks unlabelled."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    for name in axes:
        axis = getattr(ax, f"{name}axis")
        if axis.get_scale() != "log":
            continue
        lo, hi = sorted(getattr(ax, f"get_{name}lim")())
        decades = math.log10(hi / lo) if lo > 0 else 10.0
        if decades < 1.0:
            subs = (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.0)
        elif decades < 1.5:
            subs = (1.0, 2.0, 3.0, 5.0)
        else:
            subs = (1.0, 2.0, 5.0) if decades <= 4 else (1.0,)
        axis.set_major_locator(LogLocator(base=10, subs=subs))
        axis.set_major_formatter(FuncFormatter(plain_number))
        axis.set_minor_locator(LogLocator(base=10, subs=[s for s in range(1, 10) if s not in subs]))
        axis.set_minor_formatter(NullFormatter())


def legend_below(ax, ncol: int = 1) -> None:
    """The axes' legend under its x label (outside the data), at LEGEND_PT; nothing when nothing is labelled."""
    from matplotlib.transforms import offset_copy

    if ax.get_legend_handles_labels()[0]:
        under = offset_copy(ax.transAxes, fig=ax.figure, y=-36, units="points")  # below tick labels and x label
        ax.legend(
            fontsize=LEGEND_PT,
            loc="upper center",
            bbox_to_anchor=(0.5, 0),
            bbox_transform=under,
            ncol=ncol,
            frameon=False,
        )


def note(ax, text: str) -> None:
    """An axes with nothing to draw: `text` in its middle, no ticks, so it is not read as a flat curve."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=LEGEND_PT + 1, color="0.35")
    ax.set_xticks([])
    ax.set_yticks([])


def phase_starts(records: list[dict]) -> list[tuple[int, str]]:
    """(step, name) of each phase: the first record's, then every change of the `phase` key."""
    starts = []
    for prev, r in zip([{}] + records, records):
        if "phase" in r and r["phase"] != prev.get("phase"):
            starts.append((r["step"], str(r["phase"])))
    return starts


def log_curves(path, records: list[dict], panels: list[tuple], title: str = "") -> None:
    """One panel per (label, log keys, log scale[, note]): each key against `step`, where the records have it; the
    optional note (what the panel measures) is printed under its title. Phase boundaries (a change of the `phase`
    key) are dashed lines named by the phase that starts there, so a jump at a restart is not read as a bug. A panel
    none of whose keys is in the records says "not logged by this run"."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False, layout="constrained")
    starts = phase_starts(records)
    all_steps = [r["step"] for r in records if "step" in r] or [0]
    pad = 0.03 * (max(all_steps) - min(all_steps) or 1)
    for ax, (label, keys, log_y, *extra) in zip(axes[0], panels):
        ax.set_title("\n".join([label, *(textwrap.wrap(extra[0], 52) if extra else [])]), fontsize=9)
        drawn: dict[str, list] = {}
        for key in keys:
            points = [(r["step"], r[key]) for r in records if r.get(key) is not None]
            if points:
                same = next((k for k, pts in drawn.items() if pts == points), None)  # e.g. codebook == commitment
                steps, values = zip(*points)
                ax.plot(
                    steps,
                    values,
                    label=key if same is None else f"{key} (= {same})",
                    marker="o" if len(points) < 20 else None,
                    ms=4,
                    ls="-" if same is None else (0, (4, 4)),
                )
                drawn[key] = points
        if not drawn:
            note(ax, EMPTY_NOTE)
            continue
        ax.set(xlabel="step", yscale="log" if log_y else "linear", xlim=(min(all_steps) - pad, max(all_steps) + pad))
        ax.grid(alpha=0.3)
        readable_log_axes(ax, "y")
        mark_phases(ax, starts)
        if len(drawn) > 1:
            legend_below(ax, ncol=min(len(drawn), 3))
    lines = [title] if title else []
    if len(starts) > 1:
        lines.append("phases: " + ", ".join(f"{name} from step {step}" for step, name in starts))
    if lines:
        fig.suptitle("\n".join(lines))
    save_figure(fig, path)


def mark_phases(ax, starts: list[tuple[int, str]]) -> None:
    """A dashed line at each phase boundary inside the x range, named (rotated, at the top) by the phase that
    starts there; the first phase is named at the left edge where there is room before the first boundary."""
    lo, hi = ax.get_xlim()
    width = hi - lo
    for i, (step, name) in enumerate(starts):
        if i == 0:
            nxt = starts[1][0] if len(starts) > 1 else hi
            if (nxt - lo) / width < 0.1:  # no room: the suptitle lists it
                continue
            step = max(step, lo)
        elif not lo <= step <= hi:
            continue
        else:
            ax.axvline(step, color="grey", lw=0.8, ls="--")
        ax.text(
            step,
            0.98,
            f" {name}",
            transform=ax.get_xaxis_transform(),
            rotation=90,
            ha="left",
            va="top",
            fontsize=LEGEND_PT,
            color="0.3",
        )
    ax.set_xlim(lo, hi)


def label_rows(image, labels: list[str], header: str = ""):
    """A PIL image of `image` (a uint8 HxWx3 array or PIL image of len(labels) equal rows) with each row's label
    left of it, black on white, in Pillow's bundled font (no download) sized to the row; `header`, if given, above.
    """
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    image = Image.fromarray(np.asarray(image)) if not isinstance(image, Image.Image) else image
    row = image.height // max(len(labels), 1)
    font = ImageFont.load_default(size=max(10, min(28, round(row * 0.38))))
    gap = font.size // 2
    width = max([font.getbbox(t)[2] for t in labels] or [0]) + 2 * gap
    top = font.size + 2 * gap if header else 0
    out = Image.new("RGB", (width + image.width, top + image.height), "white")
    out.paste(image.convert("RGB"), (width, top))
    draw = ImageDraw.Draw(out)
    for i, text in enumerate(labels):
        draw.text((width - gap, top + i * row + row // 2), text, fill="black", font=font, anchor="rm")
    if header:
        draw.text((width + image.width // 2, top // 2), header, fill="black", font=font, anchor="mm")
    return out
