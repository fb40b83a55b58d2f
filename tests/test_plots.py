"""Training-curve figures: every logged key is drawn, phase restarts are marked, the PNG is written atomically."""

import json

import matplotlib

matplotlib.use("Agg")

from PIL import Image

from alitok import plots


def test_log_curves_draws_each_key_and_marks_phases(tmp_path, monkeypatch):
    records = [
        {"step": s, "phase": "a" if s <= 20 else "b", "loss": 1.0 / s, **({"val_loss": 2.0 / s} if s % 20 == 0 else {})}
        for s in range(10, 50, 10)
    ]
    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in records))
    drawn = {}

    def capture(fig, path):
        ax = fig.axes[0]
        drawn["lines"] = {
            line.get_label(): list(line.get_xdata()) for line in ax.get_lines() if not line.get_label().startswith("_")
        }
        drawn["vlines"] = [list(line.get_xdata()) for line in ax.get_lines() if line.get_label().startswith("_")]
        real_save(fig, path)

    real_save = plots.save_figure
    monkeypatch.setattr(plots, "save_figure", capture)
    plots.log_curves(tmp_path / "curve.png", plots.read_log(log), [("loss", ["loss", "val_loss", "absent"], True)])
    assert drawn["lines"] == {"loss": [10, 20, 30, 40], "val_loss": [20, 40]}
    assert drawn["vlines"] == [[30, 30]]  # the first record of phase b
    assert Image.open(tmp_path / "curve.png").size[0] > 100
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left
