"""The embedded dataset: deterministic, ImageFolder-ordered, and with no class signal in the mean colour."""

import numpy as np
import pytest
from PIL import Image

from alitok.data import synthetic


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.png"))}


def _write(out, seed=0, train=3, val=2, size=32, num_classes=4):
    return synthetic.write_dataset(out, seed=seed, num_classes=num_classes, image_size=size,
                                   train_per_class=train, val_per_class=val)


def test_same_seed_is_byte_identical_other_seed_differs(tmp_path):
    _write(tmp_path / "a")
    _write(tmp_path / "b")
    _write(tmp_path / "c", seed=1)
    a, b, c = (_files(tmp_path / d) for d in "abc")
    assert len(a) == 4 * (3 + 2)
    assert a == b
    assert a.keys() == c.keys()
    assert all(a[k] != c[k] for k in a)


def test_adding_images_keeps_existing_ones(tmp_path):
    _write(tmp_path / "small", train=2, val=1, num_classes=3)
    _write(tmp_path / "large", train=4, val=3, num_classes=5)
    small, large = _files(tmp_path / "small"), _files(tmp_path / "large")
    assert all(large[k] == v for k, v in small.items())


def test_sorted_folders_follow_label_order(tmp_path):
    summary = _write(tmp_path / "d", num_classes=12)
    assert summary["counts"] == {"train": 36, "val": 24}
    for split in ("train", "val"):
        folders = sorted(p.name for p in (tmp_path / "d" / split).iterdir())
        assert folders == summary["classes"]
        assert [synthetic.folder_name(label) for label in range(12)] == folders
        assert [f.split("_", 1)[1] for f in folders] == synthetic.CLASS_NAMES


@pytest.mark.parametrize("size", [32, 64])
def test_image_size(tmp_path, size):
    _write(tmp_path / "d", size=size, train=1, val=1, num_classes=2)
    for p in (tmp_path / "d").rglob("*.png"):
        with Image.open(p) as im:
            assert im.mode == "RGB" and im.size == (size, size)
    img = synthetic.render(0, "val", 1, 0, size)
    assert img.dtype == np.uint8 and img.shape == (size, size, 3)


def test_png_matches_render(tmp_path):
    _write(tmp_path / "d", train=1, val=1, num_classes=2)
    with Image.open(tmp_path / "d" / "val" / synthetic.folder_name(1) / "00000.png") as im:
        assert np.array_equal(np.asarray(im), synthetic.render(0, "val", 1, 0, 32))


def test_num_classes_out_of_range(tmp_path):
    with pytest.raises(ValueError):
        _write(tmp_path / "d", num_classes=len(synthetic.CLASSES) + 1)


def test_mean_colour_carries_no_class_information():
    """Nearest-centroid and 15-NN on the mean RGB alone stay near chance on held-out images."""
    num_classes, n_train, n_val, size = 10, 100, 40, 32

    def mean_rgb(split, n):
        x = np.array([synthetic.render(0, split, c, i, size).mean(axis=(0, 1)) for c in range(num_classes) for i in range(n)])
        return x, np.repeat(np.arange(num_classes), n)

    train_x, train_y = mean_rgb("train", n_train)
    val_x, val_y = mean_rgb("val", n_val)
    chance = 1 / num_classes

    centroids = np.stack([train_x[train_y == c].mean(0) for c in range(num_classes)])
    nearest = np.linalg.norm(val_x[:, None] - centroids[None], axis=-1).argmin(1)
    assert (nearest == val_y).mean() <= 2 * chance

    dist = np.linalg.norm(val_x[:, None] - train_x[None], axis=-1)
    neighbours = train_y[np.argsort(dist, axis=1)[:, :15]]
    votes = np.stack([(neighbours == c).sum(1) for c in range(num_classes)], axis=1)
    assert (votes.argmax(1) == val_y).mean() <= 2 * chance
