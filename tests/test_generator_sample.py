"""Sampling stage: released label layout, streamed ADM archive, uint8 conversion, grid, resume after a kill."""

from dataclasses import asdict

import numpy as np
import pytest
import torch
from PIL import Image

from alitok import config
from alitok.data.synthetic import class_names
from alitok.generator import sample
from alitok.generator.archive import released_labels, to_uint8, write_npz
from alitok.generator.config import model_config as generator_config
from alitok.models.generator import Generator

from conftest import REPO, make_tiny_data, run, save_random_tokenizer
from fakes import random_inception_weights


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
        images, labels = z["arr_0"], z["arr_1"]
    # the samples, one row per class, sit bottom right; the class names left of them and the run's name above
    grid = np.asarray(Image.open(ws / "clean" / "grid.png"))
    n = s["grid_per_class"]
    rows = [np.concatenate(images[np.flatnonzero(labels == c)[:n]], axis=1) for c in range(10)]
    assert grid.shape[0] > 10 * 32 and grid.shape[1] > n * 32 + 60 and grid.shape[2] == 3
    assert np.array_equal(grid[-10 * 32 :, -n * 32 :], np.concatenate(rows, axis=0))
    margin = grid[-10 * 32 :, : -n * 32]
    assert (margin < 128).any() and (margin == 255).mean() > 0.5  # dark text on white
    assert sample.class_names(p, 10)[1] == f"class 1: {class_names(p['data']['embedded']['classes'])[1]}"
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


def _save_classifier(path, num_classes=10):
    from alitok.models.classifier import Classifier, ClassifierConfig

    torch.manual_seed(3)
    ccfg = ClassifierConfig(num_classes=num_classes, width=4)
    state = Classifier(ccfg).eval().state_dict()
    torch.save({"config": asdict(ccfg), "state_dict": state, "classes": [str(c) for c in range(num_classes)]}, path)


def test_sampling_sweep_reproduces_the_pipelines_evaluation(models, tmp_path, capsys):
    """`alitok sampling-sweep` at the params' own settings scores what the evaluate stage scores on the sampling
    stage's archive: gFID, IS and class-consistency, with the embedded profile's extractor (the domain classifier)
    and reference (the train split)."""
    import pandas as pd

    from alitok.cli import main
    from alitok.evaluation import samples

    ws, p = models
    if not (ws / "clean" / "samples.npz").exists():
        run_sample(ws, p, "clean")
    make_tiny_data(tmp_path, train_per_class=2, val_per_class=1)
    _save_classifier(tmp_path / "clf.pt")
    data = {"dataset_json": tmp_path / "data" / "dataset.json", "reference_manifest": tmp_path / "data" / "train.csv"}
    expected = samples.run(
        p,
        out=tmp_path / "eval.json",
        extractor_weights=tmp_path / "clf.pt",
        cache_dir=tmp_path / "eval_cache",
        samples=ws / "clean" / "samples.npz",
        **data,
    )

    sc, s = p["generator"]["scales"]["S"], p["generator"]["sampling"]
    args = ["sampling-sweep", "--params", str(REPO / "params.yaml"), "--profile", "tiny", "--scale", "S"]
    args += ["--generator", str(ws / "gen.pt"), "--tokenizer", str(ws / "tok.pt")]
    args += ["--classifier", str(tmp_path / "clf.pt"), "--cache-dir", str(tmp_path / "sweep_cache")]
    args += ["--reference-manifest", str(data["reference_manifest"]), "--dataset", str(data["dataset_json"])]
    args += ["--guidance", str(sc["guidance"]), "1.0", "--power", str(sc["guidance_power"]), "none"]
    args += ["--temperature", str(s["temperature"]), "--out", str(tmp_path / "sweep.csv")]
    assert main(args) == 0
    table = pd.read_csv(tmp_path / "sweep.csv")
    assert len(table) == 4 and set(table["num_samples"]) == {s["num_samples"]}
    assert table["guidance_power"].isna().sum() == 2  # 'none': constant guidance
    own = table[(table.guidance == sc["guidance"]) & (table.guidance_power == sc["guidance_power"])]
    assert len(own) == 1 and np.isfinite(own["gfid"].item()) and np.isfinite(own["is"].item())
    assert own["gfid"].item() == pytest.approx(expected["fid"], rel=1e-9)
    assert own["is"].item() == pytest.approx(expected["is"], rel=1e-9)
    assert own["class_consistency"].item() == pytest.approx(expected["class_consistency"], abs=1e-12)
    assert table["gfid"].nunique() > 1  # the other settings draw other samples
    assert (table.gfid_lo <= table.gfid_hi).all() and (table.is_lo <= table.is_hi).all()  # the stage's intervals
    assert (
        (table.class_consistency_lo <= table.class_consistency)
        & (table.class_consistency <= table.class_consistency_hi)
    ).all()
    # the evaluate stage's 95 % intervals: every metric, one set of resamples, Wilson's for class-consistency
    iv = expected["intervals"]
    assert set(iv) == {"fid", "is", "precision", "recall", "class_consistency"}
    assert all(v["lo"] <= v["hi"] for v in iv.values()) and iv["fid"]["hi"] > iv["fid"]["lo"]
    assert iv["class_consistency"]["method"] == "wilson"
    assert iv["class_consistency"]["lo"] <= expected["class_consistency"] <= iv["class_consistency"]["hi"]
    assert iv["precision"]["value"] == pytest.approx(expected["precision"], abs=1 / s["num_samples"])
    assert "bootstrap over" in iv["fid"]["method"] and "bias" in iv["fid"]

    (tmp_path / "sweep.csv").unlink()
    no_classifier = args[: args.index("--classifier")] + args[args.index("--classifier") + 2 :]
    capsys.readouterr()
    assert main(no_classifier) == 2  # the embedded profile's extractor is the classifier: one line, no table
    assert "domain_classifier: --classifier" in capsys.readouterr().err
    args[args.index("S")] = "XL"  # not a tiny scale: one line naming the key, no table
    assert main(args) == 2 and not (tmp_path / "sweep.csv").exists()


@pytest.fixture(scope="module")
def inception_weights(tmp_path_factory):
    return random_inception_weights(tmp_path_factory.mktemp("inception"))


def test_sampling_sweep_at_a_paper_profile_needs_no_classifier(models, inception_weights, tmp_path):
    """With the paper profiles' evaluation (Inception, an ADM reference batch) and no classifier: gFID and IS, no
    class-consistency column."""
    import copy

    import pandas as pd

    from alitok.cli import build_parser
    from alitok.evaluation import sweep

    ws, p = models
    q = copy.deepcopy(p)
    rng = np.random.default_rng(4)
    ref = tmp_path / "VIRTUAL_ref.npz"
    np.savez(
        ref, arr_0=rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8), mu=rng.normal(size=2048), sigma=np.eye(2048)
    )
    q["evaluation"].update(
        extractor="inception-v3-compat",
        extractor_weights=str(inception_weights),
        reference={"kind": "adm_npz", "path": str(ref)},
    )
    args = ["sampling-sweep", "--scale", "S", "--generator", str(ws / "gen.pt"), "--tokenizer", str(ws / "tok.pt")]
    args += ["--cache-dir", str(tmp_path / "cache"), "--num-samples", "8", "--out", str(tmp_path / "sweep.csv")]
    sweep.main(build_parser("sampling-sweep").parse_args(args), q)
    table = pd.read_csv(tmp_path / "sweep.csv")
    assert list(table.columns) == [
        *("guidance", "guidance_power", "temperature", "num_samples", "gfid", "is"),
        *("gfid_lo", "gfid_hi", "is_lo", "is_hi"),  # no class-consistency without a classifier
    ]
    assert len(table) == 1 and table["num_samples"].item() == 8
    assert np.isfinite(table["gfid"].item()) and table["gfid"].item() > 0 and np.isfinite(table["is"].item())
    assert len(list((tmp_path / "cache").glob("reference-*.npz"))) == 1  # the evaluate stage's cache, keyed alike
