"""The embedded dataset: deterministic, ImageFolder-ordered, and with no class signal in the mean colour."""

import numpy as np
import pytest
from PIL import Image

from alitok import config
from alitok.data import synthetic

from conftest import REPO

_EMBEDDED = config.load(REPO / "params.yaml", "smoke")["data"]["embedded"]
SMOKE = synthetic.Variation.from_params(_EMBEDDED["variation"])
SMOKE_CLASSES = _EMBEDDED["classes"]
# The previous smoke dataset: any pose, any colour, mean colour reset per image.
ANY_POSE = synthetic.Variation(
    radius=(0.55, 0.85),
    max_offset=1.0,
    max_rotation_deg=180.0,
    max_texture_angle_deg=90.0,
    texture_cycles=(1.2, 2.0),
    palette=0,
    background_amplitude=30.0,
    mean_reset=True,
    equal_area=False,
)


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.png"))}


def _write(out, seed=0, train=3, val=2, size=32, num_classes=4, variation=SMOKE, **kw):
    per_class = dict(train_per_class=train, val_per_class=val)
    return synthetic.write_dataset(
        out, seed=seed, num_classes=num_classes, image_size=size, variation=variation, **per_class, **kw
    )


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
    img = synthetic.render(0, "val", 1, 0, size, SMOKE)
    assert img.dtype == np.uint8 and img.shape == (size, size, 3)


def test_png_matches_render(tmp_path):
    _write(tmp_path / "d", train=1, val=1, num_classes=2)
    with Image.open(tmp_path / "d" / "val" / synthetic.folder_name(1) / "00000.png") as im:
        assert np.array_equal(np.asarray(im), synthetic.render(0, "val", 1, 0, 32, SMOKE))


def test_num_classes_out_of_range_and_unknown_class_set(tmp_path):
    with pytest.raises(ValueError):
        _write(tmp_path / "d", num_classes=len(synthetic.CLASSES) + 1)
    with pytest.raises(ValueError, match="for glyphs"):
        _write(tmp_path / "g", num_classes=len(synthetic.GLYPHS) + 1, train=1, val=1, classes="glyphs")
    with pytest.raises(ValueError, match="data.embedded.classes"):
        _write(tmp_path / "x", num_classes=2, train=1, val=1, classes="letters")


def test_glyphs_are_distinct_equal_area_and_drawn_on_the_patch_grid(tmp_path):
    """Every glyph fills 12 of its 6x6 cells (equal area: no mean-colour cue) and no two are alike; at 32 px with
    half-width 0.75, centred and upright, a cell is exactly one 4-px tokenizer patch, uniform in colour, and
    the filled patches spell the glyph."""
    from dataclasses import replace

    bitmaps = {name: np.array([[c == "#" for c in row] for row in rows]) for name, rows in synthetic.GLYPHS.items()}
    assert all(b.shape == (6, 6) and b.sum() == 12 for b in bitmaps.values())
    assert len({b.tobytes() for b in bitmaps.values()}) == len(bitmaps)
    aligned = replace(SMOKE, radius=(0.75, 0.75), max_offset=0.0, max_rotation_deg=0.0, background_amplitude=0.0)
    for label, bitmap in enumerate(bitmaps.values()):
        img = synthetic.render(0, "val", label, 0, 32, aligned, "glyphs").astype(int)
        patches = img.reshape(8, 4, 8, 4, 3).transpose(0, 2, 1, 3, 4).reshape(8, 8, 16, 3)
        assert (patches.max(axis=2) - patches.min(axis=2)).max() == 0, "a patch holds two colours"
        background = img[0, 0]
        filled = (patches[:, :, 0] != background).any(-1)
        assert np.array_equal(filled[1:7, 1:7], bitmap) and filled.sum() == 12
    summary = _write(tmp_path / "g", num_classes=10, train=1, val=1, classes="glyphs")
    assert summary["classes"][0] == "c00_ring" and summary["class_set"] == "glyphs"


@pytest.mark.parametrize("variation,classes", [(SMOKE, SMOKE_CLASSES), (ANY_POSE, "shapes")], ids=["smoke", "any_pose"])
def test_mean_colour_carries_no_class_information(variation, classes):
    """Nearest-centroid and 15-NN on the mean RGB alone stay near chance on held-out images."""
    num_classes, n_train, n_val, size = 10, 100, 40, 32

    def mean_rgb(split, n):
        x = np.array(
            [
                synthetic.render(0, split, c, i, size, variation, classes).mean(axis=(0, 1))
                for c in range(num_classes)
                for i in range(n)
            ]
        )
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


def _edge_map(img):
    """Unit-norm gradient magnitude of the luminance: where the shape's outline is, whatever its colours."""
    lum = img.astype(np.float64).mean(axis=-1)
    g = np.hypot(*np.gradient(lum))
    return (g - g.mean()) / (np.linalg.norm(g - g.mean()) + 1e-9)


@pytest.mark.parametrize("label", [1, 4, 7])  # square, cross, square_checker
def test_narrow_variation_gives_alike_outlines(label):
    """The variation params are honoured: at the smoke ranges, two images of one class have outlines more alike
    than at any pose; and the seed still makes every image different."""

    def mean_pair_correlation(variation):
        maps = [_edge_map(synthetic.render(0, "train", label, i, 32, variation)) for i in range(24)]
        return np.mean([(a * b).sum() for j, a in enumerate(maps) for b in maps[j + 1 :]])

    assert mean_pair_correlation(SMOKE) > mean_pair_correlation(ANY_POSE) + 0.1
    first = synthetic.render(0, "train", label, 0, 32, SMOKE)
    assert not np.array_equal(first, synthetic.render(0, "train", label, 1, 32, SMOKE))


def test_palette_colours_and_equal_areas():
    """palette k: a plain-background solid shape shows only table colours; equal_area: a disk drawn at the same
    radius covers about the triangle's area, not its own 2.4x."""
    from dataclasses import replace

    plain = replace(SMOKE, background_amplitude=0.0, max_rotation_deg=0.0, radius=(0.8, 0.8))
    img = synthetic.render(0, "train", 0, 0, 32, plain)
    corner = img[0, 0].astype(float)
    assert np.min(np.linalg.norm(synthetic.PALETTE[: SMOKE.palette] - corner, axis=1)) < 1.0
    areas = {}
    for label in (0, 2):  # disk, triangle
        img = synthetic.render(0, "train", label, 0, 32, plain).astype(float)
        areas[label] = (np.linalg.norm(img - img[0, 0], axis=-1) > 60).mean()
    assert abs(areas[0] / areas[2] - 1) < 0.15
    unequal = replace(plain, equal_area=False)
    disk = synthetic.render(0, "train", 0, 0, 32, unequal).astype(float)
    assert (np.linalg.norm(disk - disk[0, 0], axis=-1) > 60).mean() > 1.8 * areas[2]


def test_variation_rejects_bad_ranges():
    from dataclasses import asdict

    bad = asdict(SMOKE) | {"radius": [0.8, 0.6]}
    with pytest.raises(ValueError, match="radius"):
        synthetic.Variation.from_params(bad)
    with pytest.raises(ValueError, match="palette"):
        synthetic.Variation.from_params(asdict(SMOKE) | {"palette": 2})
