"""The domain classifier: shapes, and a short training run on a tiny embedded dataset."""

import hashlib
import json

import pytest
import torch

from alitok import atomic
from alitok.classifier import train
from alitok.data import synthetic
from alitok.data.manifest import Record, write_manifest
from alitok.models.classifier import Classifier, ClassifierConfig


def _prepare(tmp_path, *, num_classes, image_size, train_per_class, val_per_class):
    """Generate a dataset and write its manifests and dataset.json (stand-in for the data-prep stage)."""
    root = tmp_path / "data"
    summary = synthetic.write_dataset(root, seed=0, num_classes=num_classes, image_size=image_size,
                                      train_per_class=train_per_class, val_per_class=val_per_class)
    for split in ("train", "val"):
        records = [
            Record(p.relative_to(root).as_posix(), label, folder, image_size, image_size,
                   hashlib.sha256(p.read_bytes()).hexdigest())
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
    cfg = {"width": 8, "epochs": 4, "batch_size": 32, "lr": 3e-3, "weight_decay": 0.05, "seed": 0}
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
