"""Figures people look at: every logged key drawn, phase restarts marked and named, an unlogged panel says so, legends
of at least 8 pt, log-axis ticks as plain numbers, our non-Inception FID apart from the papers' gFID, and the sample
grid and reconstruction strip labelled. Each PNG is written atomically."""

import json

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from alitok import plots
from alitok.data import manifest
from alitok.evaluation import report_figures
from alitok.evaluation.report_data import ReportData
from alitok.generator import sample
from alitok.tokenizer import evaluate

from conftest import REPO


@pytest.fixture
def captured(monkeypatch):
    """Each figure save_figure gets, before it is written and closed."""
    figures = []
    real_save = plots.save_figure

    def capture(fig, path):
        fig.canvas.draw()  # tick labels and legends exist only once drawn
        figures.append(fig)
        real_save(fig, path)

    monkeypatch.setattr(plots, "save_figure", capture)
    return figures


def _texts(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(matplotlib.text.Text) if t.get_visible() and t.get_text()]


def _tick_labels(ax) -> list[str]:
    return [t.get_text() for axis in (ax.xaxis, ax.yaxis) for t in axis.get_ticklabels(which="both") if t.get_text()]


def _legend_sizes(fig) -> list[float]:
    legends = [leg for ax in fig.axes if (leg := ax.get_legend())] + list(fig.legends)
    return [t.get_fontsize() for leg in legends for t in leg.get_texts()]


def test_log_curves_draws_each_key_and_marks_phases(tmp_path, captured):
    records = [
        {"step": s, "phase": "a" if s <= 20 else "b", "loss": 1.0 / s, **({"val_loss": 2.0 / s} if s % 20 == 0 else {})}
        for s in range(10, 50, 10)
    ]
    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in records))
    panels = [("loss", ["loss", "val_loss", "absent"], True), ("usage", ["codebook_used"], False, "what it counts")]
    plots.log_curves(tmp_path / "curve.png", plots.read_log(log), panels, title="run")
    (fig,) = captured
    ax, empty = fig.axes
    drawn = {line.get_label(): list(line.get_xdata()) for line in ax.get_lines() if line.get_label()[0] != "_"}
    assert drawn == {"loss": [10, 20, 30, 40], "val_loss": [20, 40]}
    assert [list(line.get_xdata()) for line in ax.get_lines() if line.get_label()[0] == "_"] == [[30, 30]]
    assert [t.get_text().strip() for t in ax.texts] == ["a", "b"]  # each phase named, a line where b starts
    assert fig._suptitle.get_text() == "run\nphases: a from step 10, b from step 30"
    assert [t.get_text() for t in empty.texts] == [plots.EMPTY_NOTE] and empty.get_lines() == []
    assert empty.get_title() == "usage\nwhat it counts"
    assert min(_legend_sizes(fig)) >= 8
    assert _tick_labels(ax) and not any("$" in t or "10^" in t for t in _tick_labels(ax))
    assert Image.open(tmp_path / "curve.png").size[0] > 100
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left


def test_first_phase_is_named_where_there_is_room_and_equal_curves_both_show(tmp_path, captured):
    def records(first_until):
        return [
            {"step": s, "phase": "warmup" if s < first_until else "gan", "commitment": 0.1 / s, "codebook": 0.1 / s}
            for s in range(10, 210, 10)
        ]

    plots.log_curves(tmp_path / "c.png", records(100), [("terms", ["commitment", "codebook"], True)])
    plots.log_curves(tmp_path / "d.png", records(20), [("terms", ["commitment"], True)])
    roomy, tight = (fig.axes[0] for fig in captured)
    assert [t.get_text().strip() for t in roomy.texts] == ["warmup", "gan"]
    assert [t.get_text().strip() for t in tight.texts] == ["gan"]  # warmup lasts one record: the suptitle names it
    assert "phases: warmup from step 10, gan from step 20" in captured[1]._suptitle.get_text()
    styles = {line.get_label(): line.get_linestyle() for line in roomy.get_lines() if line.get_label()[0] != "_"}
    assert list(styles) == ["commitment", "codebook (= commitment)"] and styles["codebook (= commitment)"] != "-"


@pytest.mark.parametrize(
    ("lo", "hi"),
    [(1.3, 5.5), (20.1, 20.9), (0.0005, 30.0), (50.0, 3000.0), (1e-4, 1e6)],
)
def test_log_axis_ticks_are_plain_numbers(lo, hi):
    plt = plots.pyplot()
    fig, ax = plt.subplots()
    ax.plot([1, 2], [lo, hi])
    ax.set_yscale("log")
    plots.readable_log_axes(ax, "y")
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.yaxis.get_ticklabels() if t.get_text()]
    minor = [t.get_text() for t in ax.yaxis.get_ticklabels(minor=True) if t.get_text()]
    visible = [t for t in ax.yaxis.get_majorticklocs() if lo * 0.999 <= t <= hi * 1.001]
    plt.close(fig)
    assert len(labels) >= 2 and len(visible) >= 2, labels  # at least two labelled ticks inside the data
    assert minor == [] and not any("$" in t or "times" in t for t in labels)
    assert len(set(labels)) == len(labels)  # no two ticks read the same


def test_plain_number():
    assert [plots.plain_number(v) for v in (0.002, 0.05, 1.5, 2.0, 20.4, 300.0, 4000.0, 2e6)] == [
        "0.002",
        "0.05",
        "1.5",
        "2",
        "20.4",
        "300",
        "4000",
        "2e+06",
    ]


def _evaluation(fid, extractor, kind, control=None):
    return {
        "fid": fid,
        "speed": {"images_per_s": 30.0, "hardware": "cpu x (torch)"},
        "protocol": {"control": control, "extractor": extractor, "reference": {"kind": kind}, "kind": "alitok"},
    }


def _report_data(**evaluations) -> ReportData:
    logs = {name: [{"step": 10, "val_loss": 2.0, "val_acc": 0.3}] for name in evaluations}
    return ReportData(
        evaluations=evaluations,
        paper=pd.read_csv(REPO / "results" / "paper" / "published.csv"),
        logs=logs,
        params={name: 2_000_000 for name in evaluations},
    )


def test_domain_classifier_fid_gets_its_own_panel(tmp_path, captured):
    data = _report_data(
        S=_evaluation(20.9, "domain_classifier", "split"),
        **{"S-untrained": _evaluation(107.0, "x", "split", "untrained")},
    )
    report_figures.figures(data, tmp_path)
    size, speed, curves = captured
    for fig in (size, speed):
        papers, ours = fig.axes
        assert "Inception" in papers.get_ylabel() and "domain-classifier" in ours.get_ylabel()
        assert [t.get_text() for t in ours.texts] == ["ours: S"]  # the control is left out
        assert not papers.texts  # the papers' axis holds no run of ours
        assert min(papers.get_ylim()) < 2 and max(papers.get_ylim()) < 10  # not stretched to our FID of 20.9
        for ax in (papers, ours):
            assert not any("$" in t for t in _tick_labels(ax)), _tick_labels(ax)
        assert min(_legend_sizes(fig)) >= 8
    assert min(_legend_sizes(curves)) >= 8
    legend = [t.get_text() for t in speed.axes[0].get_legend().get_texts()]
    assert "ctf: LlamaGen-B ● → + CTF ■ (1x A100 batch 64)" in legend


def test_inception_fid_shares_the_papers_axis(tmp_path, captured):
    report_figures.figures(_report_data(B=_evaluation(1.61, "inception-v3-compat", "adm_npz")), tmp_path)
    for fig, star in zip(captured, ("ours: B", "ours: B (cpu x)")):  # speed: the hardware that timed it
        (ax,) = fig.axes
        assert [t.get_text() for t in ax.texts] == [star]


def test_label_rows_puts_names_left_and_header_above():
    image = np.zeros((64, 96, 3), np.uint8)
    out = np.asarray(plots.label_rows(image, ["original", "reconstruction"], "stage2"))
    assert out.shape[0] > 64 and out.shape[1] > 96 + 50
    assert np.array_equal(out[-64:, -96:], image)
    margin, top = out[-64:, :-96], out[:-64]
    assert (margin < 128).any() and (top < 128).any()  # text in both
    assert (out[-64:-32, :-96] < 128).any() and (out[-32:, :-96] < 128).any()  # a label per row


def test_recon_strip_and_sample_grid_are_labelled(tmp_path):
    originals = torch.randint(0, 255, (12, 3, 8, 8), dtype=torch.uint8)
    records = [manifest.Record(f"{i}.png", i % 3, f"c{i % 3:02d}", 8, 8, "") for i in range(12)]
    strip = np.asarray(evaluate.grid(originals, originals // 2, records, "stage1"))
    tiles = [torch.cat(list(x), dim=2).permute(1, 2, 0).numpy() for x in (originals, originals // 2)]  # picks 0..11
    assert np.array_equal(strip[-16:, -12 * 8 :], np.concatenate(tiles, axis=0))
    assert strip.shape[1] > 12 * 8 + 50 and strip.shape[0] > 16  # "reconstruction" left, the header above
    assert (strip[-16:-8, : -12 * 8] < 128).any() and (strip[-8:, : -12 * 8] < 128).any()

    blocks = tmp_path / "block-000.npy"
    np.save(blocks, np.full((6, 8, 8, 3), 200, np.uint8))
    sample.write_grid(tmp_path / "g.png", [blocks], np.array([0, 1, 2, 0, 1, 2]), 3, 2, 3, ["a", "b", "c"], "S")
    grid = np.asarray(Image.open(tmp_path / "g.png"))
    assert (grid[-24:, -16:] == 200).all() and grid.shape[1] > 16 + 10
