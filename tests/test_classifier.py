"""The domain classifier: shapes, and a short training run on a tiny embedded dataset."""

import hashlib
import json

import pytest
import torch

from alitok import atomic, config
from alitok.classifier import train
from alitok.data import synthetic
from alitok.data.manifest import Record, write_manifest
from alitok.models.classifier import Classifier, ClassifierConfig

from conftest import REPO


def _prepare(tmp_path, *, num_classes, image_size, train_per_class, val_per_class):
    """Generate a dataset and write its manifests and dataset.json (stand-in for the data-prep stage)."""
    root = tmp_path / "data"
    summary = synthetic.write_dataset(
        root,
        seed=0,
        num_classes=num_classes,
        image_size=image_size,
        train_per_class=train_per_class,
        val_per_class=val_per_class,
        variation=synthetic.Variation.from_params(
            config.load(REPO / "params.yaml", "smoke")["data"]["embedded"]["variation"]
        ),
    )
    for split in ("train", "val"):
        records = [
            Record(
                p.relative_to(root).as_posix(),
                label,
                folder,
                image_size,
                image_size,
                hashlib.sha256(p.read_bytes()).hexdigest(),
            )
            for label, folder in enumerate(summary["classes"])
            for p in sorted((root / split / folder).glob("*.png"))
        ]
        write_manifest(tmp_path / f"{split}.csv", records)
    atomic.write_json(tmp_path / "dataset.json", {"root": str(root), "classes": summary["classes"]})
    return tmp_path / "train.csv", tmp_path / "val.csv", tmp_path / "dataset.json"


@pytest.mark.parametrize("size", [32, 64])
def test_shapes(size):
    model = Classifier(ClassifierConfig(num_classes=7, width=8)).eval()
    x = torch.rand(3, 3, size, size)
    feats, logits = model.features(x)
    assert feats.shape == (3, model.feature_dim) and logits.shape == (3, 7)
    assert torch.allclose(model(x), logits)


def test_tiny_training_run(tmp_path):
    paths = _prepare(tmp_path, num_classes=10, image_size=32, train_per_class=24, val_per_class=6)
    cfg = {
        "width": 8,
        "epochs": 4,
        "batch_size": 32,
        "lr": 3e-3,
        "weight_decay": 0.05,
        "seed": 0,
        "degrade": {"pool_factors": [1, 2], "noise": 0.05},
    }
    metrics = train.run(cfg, 32, *paths, tmp_path / "out")

    for name in ("model.pt", "metrics.json", "curve.png", "confusion.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    assert json.loads((tmp_path / "out" / "metrics.json").read_text()) == json.loads(json.dumps(metrics))
    assert len(metrics["train_loss"]) == 4
    assert metrics["train_loss"][-1] < metrics["train_loss"][0]
    assert len(metrics["per_class_accuracy"]) == 10

    model, ckpt = train.load_classifier(tmp_path / "out" / "model.pt")
    assert not model.training
    assert ckpt["image_size"] == 32 and ckpt["classes"] == [synthetic.folder_name(label) for label in range(10)]
    val_x, val_y = train.load_images(paths[1], tmp_path / "data", 32)
    accuracy = (train.predict(model, val_x, 64) == val_y).float().mean().item()
    assert accuracy == pytest.approx(metrics["val_accuracy"])


def test_degrade_removes_detail_below_the_pool_factor_and_keeps_colour():
    torch.manual_seed(0)
    fine = (torch.arange(32)[:, None] + torch.arange(32)[None, :]) % 2  # 1-px checkerboard
    x = torch.stack([fine * 0.8 + 0.1] * 3)[None].expand(4, -1, -1, -1).float()
    out = train.degrade(x, [2], noise=0.0)
    assert torch.allclose(out, torch.full_like(out, 0.5), atol=1e-6)  # the pattern is gone, its mean stays
    assert torch.equal(train.degrade(x, [1], noise=0.0), x)  # factor 1: untouched


def test_degrade_noise_is_smooth_bounded_and_random_in_strength():
    torch.manual_seed(0)
    x = torch.full((64, 3, 32, 32), 0.5)
    out = train.degrade(x, [1, 4], noise=0.1)
    assert out.min() >= 0 and out.max() <= 1
    strength = (out - x).std(dim=(1, 2, 3))
    assert strength.max() > 0.03 and strength.min() < 0.02  # up to `noise`, not always the same
    # smooth at the coarsest factor's scale: neighbouring pixels differ far less than the field itself
    assert (out[..., 1:] - out[..., :-1]).abs().mean() < 0.5 * (out - x).abs().mean()  # white noise: ~1.1x
