"""Sampling stage: released label layout, streamed ADM archive, uint8 conversion, grid, resume after a kill."""

from dataclasses import asdict

import numpy as np
import pytest
import torch
from PIL import Image

from alitok import config
from alitok.generator import sample
from alitok.generator.archive import released_labels, to_uint8, write_npz
from alitok.generator.config import model_config as generator_config
from alitok.models.generator import Generator

from conftest import REPO, run, save_random_tokenizer


def test_released_label_layout():
    """docs/papers/alitok-release.md §3 with W = 8: label (250r + 125·it + i) mod 1000 at file k = it·1000 + 8i + r."""
    labels = released_labels(50000, 1000, world=8, batch=125)
    assert labels[:6].tolist() == [0, 250, 500, 750, 0, 250]
    assert np.bincount(labels, minlength=1000).tolist() == [50] * 1000
    for k in (0, 7, 8, 999, 1000, 49999):
        it, i, r = k // 1000, (k // 8) % 125, k % 8
        assert labels[k] == (250 * r + 125 * it + i) % 1000
    with pytest.raises(ValueError, match="divisible by batch x world"):
        released_labels(1001, 1000, world=8, batch=125)


def test_uint8_truncates_like_the_release():
    x = torch.tensor([127.5, 254.997, 0.2]).div(255).view(1, 3, 1, 1)
    assert to_uint8(x, "truncate").flatten().tolist() == [127, 254, 0]
    assert to_uint8(x, "round").flatten().tolist() == [128, 255, 0]


def test_archive_is_streamed_in_order(tmp_path, monkeypatch):
    from alitok.generator import archive

    monkeypatch.setattr(archive, "CHUNK", 3)  # several writes per block
    rng = np.random.default_rng(0)
    parts = [rng.integers(0, 256, (n, 4, 4, 3), dtype=np.uint8) for n in (5, 7)]
    blocks = []
    for i, a in enumerate(parts):
        np.save(tmp_path / f"b{i}.npy", a)
        blocks.append(tmp_path / f"b{i}.npy")
    write_npz(tmp_path / "s.npz", blocks, np.arange(12) % 3)
    with np.load(tmp_path / "s.npz") as z:
        assert sorted(z.files) == ["arr_0", "arr_1"]
        assert z["arr_0"].dtype == np.uint8 and np.array_equal(z["arr_0"], np.concatenate(parts))
        assert z["arr_1"].tolist() == [0, 1, 2] * 4


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    ws = tmp_path_factory.mktemp("sample")
    p = config.load(REPO / "params.yaml", "tiny")
    save_random_tokenizer(ws / "tok.pt", p)
    torch.manual_seed(0)
    gcfg = generator_config(p, "S", p["data"]["embedded"]["num_classes"])
    gen = Generator(gcfg)
    torch.nn.init.normal_(gen.output.weight, std=0.5)
    torch.save(
        {"format": "alitok-generator/1", "kind": "generator", "config": asdict(gcfg), "model": gen.state_dict()},
        ws / "gen.pt",
    )
    return ws, p


def run_sample(ws, p, name):
    return sample.run(
        p,
        scale="S",
        generator_path=ws / "gen.pt",
        tokenizer_path=ws / "tok.pt",
        work_dir=ws / name / "work",
        out_archive=ws / name / "samples.npz",
        out_grid=ws / name / "grid.png",
    )


def test_sampling_stage_writes_archive_and_grid(models):
    ws, p = models
    run_sample(ws, p, "clean")
    s = p["generator"]["sampling"]
    with np.load(ws / "clean" / "samples.npz") as z:
        assert z["arr_0"].shape == (s["num_samples"], 32, 32, 3)
        assert z["arr_1"].tolist() == (np.arange(s["num_samples"]) % 10).tolist()
        assert z["arr_0"].std() > 0
    grid = np.asarray(Image.open(ws / "clean" / "grid.png"))
    assert grid.shape == (10 * 32, s["grid_per_class"] * 32, 3)
    assert not any((ws / "clean" / "work").iterdir())


def test_killed_sampling_resumes_and_matches(models, monkeypatch):
    ws, p = models
    real, calls = sample.generate, []

    def dies_on_second(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        return real(*a, **k)

    monkeypatch.setattr(sample, "generate", dies_on_second)
    with pytest.raises(KeyboardInterrupt):
        run_sample(ws, p, "resumed")
    assert not (ws / "resumed" / "samples.npz").exists()
    calls.clear()
    monkeypatch.setattr(sample, "generate", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    run_sample(ws, p, "resumed")
    batches = -(-p["generator"]["sampling"]["num_samples"] // p["generator"]["sampling"]["batch"])
    assert len(calls) == batches - 1  # the finished first batch was not redone
    with np.load(ws / "resumed" / "samples.npz") as a, np.load(ws / "clean" / "samples.npz") as b:
        assert np.array_equal(a["arr_0"], b["arr_0"])


def test_mismatched_generator_and_tokenizer_is_one_clear_error(models, tmp_path):
    """A generator trained on other tokens (here: the smoke geometry) against the tiny tokenizer."""
    import sys

    ws, p = models
    smoke = config.load(REPO / "params.yaml", "smoke")
    gcfg = generator_config(smoke, "S", 10)
    torch.save(
        {
            "format": "alitok-generator/1",
            "kind": "generator",
            "config": asdict(gcfg),
            "model": Generator(gcfg).state_dict(),
        },
        tmp_path / "gen.pt",
    )
    cli = [sys.executable, "-m", "alitok", "sample", "--profile", "tiny", "--scale", "S"]
    checkpoints = ["--generator", tmp_path / "gen.pt", "--tokenizer", ws / "tok.pt"]
    outputs = ["--work-dir", tmp_path / "w", "--out-archive", tmp_path / "s.npz", "--out-grid", tmp_path / "g.png"]
    r = run([*cli, *checkpoints, *outputs], cwd=REPO, check=False)
    assert r.returncode == 2 and "emits 73 codes over 1024" in r.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "s.npz").exists()


def test_sampling_sweep_reproduces_the_pipelines_class_consistency(models, tmp_path):
    """`alitok sampling-sweep` at the params' own settings scores what the sampling stage's archive scores."""
    import pandas as pd

    from alitok.classifier.train import predict
    from alitok.cli import main
    from alitok.models.classifier import Classifier, ClassifierConfig

    ws, p = models
    if not (ws / "clean" / "samples.npz").exists():
        run_sample(ws, p, "clean")
    torch.manual_seed(3)
    ccfg = ClassifierConfig(num_classes=10, width=4)
    classifier = Classifier(ccfg).eval()
    torch.save(
        {"config": asdict(ccfg), "state_dict": classifier.state_dict(), "classes": [str(c) for c in range(10)]},
        tmp_path / "clf.pt",
    )
    with np.load(ws / "clean" / "samples.npz") as z:
        images, labels = torch.from_numpy(z["arr_0"]).permute(0, 3, 1, 2), torch.from_numpy(z["arr_1"])
    expected = float((predict(classifier, images, 8) == labels).double().mean())

    sc, s = p["generator"]["scales"]["S"], p["generator"]["sampling"]
    args = [
        "sampling-sweep",
        "--params",
        str(REPO / "params.yaml"),
        "--profile",
        "tiny",
        "--scale",
        "S",
        "--generator",
        str(ws / "gen.pt"),
        "--tokenizer",
        str(ws / "tok.pt"),
        "--classifier",
        str(tmp_path / "clf.pt"),
        "--guidance",
        str(sc["guidance"]),
        "1.0",
        "--power",
        str(sc["guidance_power"]),
        "none",
        "--temperature",
        str(s["temperature"]),
        "--out",
        str(tmp_path / "sweep.csv"),
    ]
    assert main(args) == 0
    table = pd.read_csv(tmp_path / "sweep.csv")
    assert len(table) == 4 and set(table["num_samples"]) == {s["num_samples"]}
    assert table["guidance_power"].isna().sum() == 2  # 'none': constant guidance
    own = table[(table.guidance == sc["guidance"]) & (table.guidance_power == sc["guidance_power"])]
    assert own["class_consistency"].tolist() == [pytest.approx(expected, abs=1e-9)]
    args[args.index("S")] = "XL"  # not a tiny scale: one line naming the key, no table
    (tmp_path / "sweep.csv").unlink()
    assert main(args) == 2 and not (tmp_path / "sweep.csv").exists()
