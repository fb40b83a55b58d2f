"""ImageFolder scanning and the data-prep stage on small fake ImageNet trees."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil

import numpy as np
import pytest
from PIL import Image

from alitok.data import imagefolder, prepare
from alitok.data.imagefolder import DataError
from alitok.data.manifest import read_dataset_info, read_manifest

from fakes import make_fake_imagenet, write_corrupt, write_jpeg, write_truncated_jpeg

CFG = {
    "source": "imagefolder",
    "image_size": 32,
    "root": None,
    "val_labels": None,
    "val_meta": None,
    "check": "decode",
    "workers": 1,
}


def cfg(**over):
    return {**CFG, **over}


def by_name(records):
    """val file name -> (label, sha256): layout-independent identity of a val set."""
    return {r.path.rsplit("/", 1)[-1]: (r.label, r.sha256) for r in records}


# ----------------------------------------------------------------------------------- labels, manifest


def test_class_index_is_sorted_wnid_order(tmp_path):
    # Given out of order; the label must be the position in sorted folder order, not creation order.
    fake = make_fake_imagenet(tmp_path, classes=("n09999999", "n01440764", "n05555555"))
    result = imagefolder.scan(fake.root)
    assert result.classes == ["n01440764", "n05555555", "n09999999"]
    for r in result.train + result.val:
        assert r.label == result.classes.index(r.wnid)
        assert r.path.split("/")[1] == r.wnid


def test_manifest_rows_describe_the_files(tmp_path):
    fake = make_fake_imagenet(tmp_path)
    result = imagefolder.scan(fake.root)
    assert len(result.train) == 9 and len(result.val) == 6 and not result.bad
    for split, records in (("train", result.train), ("val", result.val)):
        assert [r.path for r in records] == sorted(r.path for r in records)
        for r in records:
            assert r.path.startswith(f"{split}/") and "\\" not in r.path
            data = (fake.root / r.path).read_bytes()
            assert r.sha256 == hashlib.sha256(data).hexdigest()
            with Image.open(fake.root / r.path) as im:
                assert (r.width, r.height) == im.size
    assert {(r.width, r.height) for r in result.train} >= {(48, 36), (36, 50), (150, 90)}


def test_hidden_and_non_image_files_ignored_extensions_case_insensitive(tmp_path):
    fake = make_fake_imagenet(tmp_path, train_per_class=1, val_per_class=1)
    cls = fake.root / "train" / fake.classes[0]
    rng = np.random.default_rng(1)
    write_jpeg(cls / "lower.jpg", (20, 20), rng)
    Image.new("RGB", (8, 8)).save(cls / "upper.PNG")
    write_corrupt(cls / "._hidden.JPEG")  # macOS resource fork: would be "corrupt" if scanned
    (cls / "notes.txt").write_text("not an image")
    (fake.root / "train" / ".cache").mkdir()  # hidden folder is not a class
    result = imagefolder.scan(fake.root)
    names = sorted(r.path.rsplit("/", 1)[-1] for r in result.train if r.wnid == fake.classes[0])
    assert names == sorted([f"{fake.classes[0]}_1.JPEG", "lower.jpg", "upper.PNG"])
    assert result.classes == list(fake.classes) and not result.bad


# ----------------------------------------------------------------------------------------- bad images


def _add_bad_images(fake):
    corrupt = f"train/{fake.classes[0]}/corrupt.JPEG"
    truncated = f"val/{fake.classes[1]}/truncated.JPEG"
    write_corrupt(fake.root / corrupt)
    write_truncated_jpeg(fake.root / truncated)
    return corrupt, truncated


def test_bad_images_are_reported_and_excluded_with_decode_check(tmp_path, caplog):
    fake = make_fake_imagenet(tmp_path / "data")
    corrupt, truncated = _add_bad_images(fake)
    with caplog.at_level(logging.WARNING, logger="alitok.data"):
        summary = prepare.run(cfg(workers=2), fake.root, tmp_path / "out")  # workers=2: the pool path
    assert summary["bad"] == 2 and summary["train"] == 9 and summary["val"] == 6

    report = json.loads((tmp_path / "out" / "report.json").read_text())
    listed = {(b["split"], b["path"]) for b in report["bad_images"]}
    assert listed == {("train", corrupt), ("val", truncated)}
    assert all(b["error"] for b in report["bad_images"])
    assert report["counts"]["train"] == {"scanned": 10, "kept": 9, "bad": 1}
    assert report["counts"]["val"] == {"scanned": 7, "kept": 6, "bad": 1}

    kept = {r.path for r in read_manifest(tmp_path / "out" / "train.csv") + read_manifest(tmp_path / "out" / "val.csv")}
    assert corrupt not in kept and truncated not in kept
    assert read_dataset_info(tmp_path / "out" / "dataset.json")["bad"] == 2
    assert any("2 of 17 images" in rec.getMessage() for rec in caplog.records)


def test_header_check_catches_corrupt_but_not_truncated_files(tmp_path):
    # Documented trade-off: `header` (open + verify) is fast but only `decode` notices a truncated JPEG.
    fake = make_fake_imagenet(tmp_path)
    corrupt, truncated = _add_bad_images(fake)
    result = imagefolder.scan(fake.root, check="header")
    assert [(b.split, b.path) for b in result.bad] == [("train", corrupt)]
    assert truncated in {r.path for r in result.val}


def test_unknown_check_is_an_error(tmp_path):
    fake = make_fake_imagenet(tmp_path / "data", train_per_class=1, val_per_class=1)
    with pytest.raises(DataError, match="data.check"):
        prepare.run(cfg(check="full"), fake.root, tmp_path / "out")


# ---------------------------------------------------------------------------------------- tree errors


def test_missing_or_wrong_root_names_the_path(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match=f"{missing}.*does not exist"):
        imagefolder.scan(missing)
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(DataError, match=f"{a_file}.*not a directory"):
        imagefolder.scan(a_file)


@pytest.mark.parametrize("split", ["train", "val"])
def test_missing_split_names_the_path(tmp_path, split):
    fake = make_fake_imagenet(tmp_path, train_per_class=1, val_per_class=1)
    shutil.rmtree(fake.root / split)
    with pytest.raises(DataError, match=f"no {split}/ directory.*{fake.root / split}"):
        imagefolder.scan(fake.root)


@pytest.mark.parametrize("split", ["train", "val"])
def test_empty_class_folder_names_the_folder(tmp_path, split):
    fake = make_fake_imagenet(tmp_path, train_per_class=1, val_per_class=1)
    empty = fake.root / split / fake.classes[0]
    shutil.rmtree(empty)
    empty.mkdir()
    (empty / "readme.txt").write_text("no images here")
    with pytest.raises(DataError, match=f"class folder {empty} contains no images"):
        imagefolder.scan(fake.root)


def test_val_class_folder_not_in_train(tmp_path):
    fake = make_fake_imagenet(tmp_path, train_per_class=1, val_per_class=1)
    write_jpeg(fake.root / "val" / "n07777777" / "x.JPEG", (20, 20), np.random.default_rng(0))
    with pytest.raises(DataError, match="n07777777 is not a class folder"):
        imagefolder.scan(fake.root)


def test_flat_val_without_label_file(tmp_path):
    fake = make_fake_imagenet(tmp_path, flat_val=True)
    with pytest.raises(DataError, match=f"{fake.root / 'val'} is flat.*data.val_labels"):
        imagefolder.scan(fake.root)


# ------------------------------------------------------------------------------------------ flat val


@pytest.mark.parametrize("fmt", ["pairs", "devkit"])
def test_flat_val_labels_match_class_folder_val(tmp_path, fmt):
    folders = make_fake_imagenet(tmp_path / "folders")
    flat = make_fake_imagenet(tmp_path / "flat", flat_val=True, val_label_format=fmt)
    ref = imagefolder.scan(folders.root)
    got = imagefolder.scan(flat.root, val_labels=flat.val_labels, val_meta=flat.val_meta)
    assert got.val_layout == "flat" and ref.val_layout == "folders"
    assert by_name(got.val) == by_name(ref.val)
    assert {n: got.classes[lbl] for n, (lbl, _) in by_name(got.val).items()} == flat.val_wnid
    # The devkit's integer IDs are not sorted-wnid positions: a naive id-1 mapping would be wrong.
    if fmt == "devkit":
        ids = [int(x) for x in flat.val_labels.read_text().split()]
        assert [i - 1 for i in ids] != [r.label for r in got.val]


def test_devkit_labels_without_meta(tmp_path):
    flat = make_fake_imagenet(tmp_path, flat_val=True, val_label_format="devkit")
    with pytest.raises(DataError, match=f"{flat.val_labels}.*set data.val_meta"):
        imagefolder.scan(flat.root, val_labels=flat.val_labels)


def test_devkit_line_count_mismatch(tmp_path):
    flat = make_fake_imagenet(tmp_path, flat_val=True, val_label_format="devkit")
    lines = flat.val_labels.read_text().splitlines()
    flat.val_labels.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(DataError, match=f"{flat.val_labels} has 5 labels but val/ has 6 images"):
        imagefolder.scan(flat.root, val_labels=flat.val_labels, val_meta=flat.val_meta)


def test_devkit_id_missing_from_meta(tmp_path):
    flat = make_fake_imagenet(tmp_path, flat_val=True, val_label_format="devkit")
    flat.val_labels.write_text("999\n" + "".join(f"{x}\n" for x in flat.val_labels.read_text().split()[1:]))
    with pytest.raises(DataError, match="ILSVRC2012_ID 999"):
        imagefolder.scan(flat.root, val_labels=flat.val_labels, val_meta=flat.val_meta)


def _rewrite_pairs(fake, edit):
    lines = fake.val_labels.read_text().splitlines()
    fake.val_labels.write_text("\n".join(edit(lines)) + "\n")


def test_pairs_missing_file(tmp_path):
    flat = make_fake_imagenet(tmp_path, flat_val=True)
    first = flat.val_labels.read_text().split()[0]
    _rewrite_pairs(flat, lambda lines: lines[1:])
    with pytest.raises(DataError, match=f"val image {first}.*missing from label file {flat.val_labels}"):
        imagefolder.scan(flat.root, val_labels=flat.val_labels)


def test_pairs_extra_line(tmp_path):
    flat = make_fake_imagenet(tmp_path, flat_val=True)
    _rewrite_pairs(flat, lambda lines: lines + [f"ILSVRC2012_val_00099999.JPEG {flat.classes[0]}"])
    with pytest.raises(DataError, match="ILSVRC2012_val_00099999.JPEG is not in val/"):
        imagefolder.scan(flat.root, val_labels=flat.val_labels)


def test_pairs_unknown_wnid(tmp_path):
    flat = make_fake_imagenet(tmp_path, flat_val=True)
    _rewrite_pairs(flat, lambda lines: [lines[0].split()[0] + " n07777777"] + lines[1:])
    with pytest.raises(DataError, match=f"{flat.val_labels} labels .* as n07777777, which is not a train class"):
        imagefolder.scan(flat.root, val_labels=flat.val_labels)


def test_unrecognised_label_format(tmp_path):
    flat = make_fake_imagenet(tmp_path, flat_val=True)
    flat.val_labels.write_text("a b c\n")
    with pytest.raises(DataError, match=f"{flat.val_labels} is neither"):
        imagefolder.scan(flat.root, val_labels=flat.val_labels)


# -------------------------------------------------------------------------------------- prepare.run


def test_prepare_writes_all_outputs(tmp_path):
    fake = make_fake_imagenet(tmp_path / "data", flat_val=True, val_label_format="devkit")
    out = tmp_path / "out"
    summary = prepare.run(cfg(val_labels=str(fake.val_labels), val_meta=str(fake.val_meta)), fake.root, out)
    assert summary == {"classes": 3, "train": 9, "val": 6, "bad": 0, "val_layout": "flat", "out_dir": str(out)}
    assert sorted(p.name for p in out.iterdir()) == [
        "dataset.json",
        "preview.png",
        "report.json",
        "train.csv",
        "val.csv",
    ]  # and no temporary files left behind
    info = read_dataset_info(out / "dataset.json")
    assert info == {
        "root": str(fake.root),
        "classes": list(fake.classes),
        "counts": {"train": 9, "val": 6},
        "bad": 0,
        "source": "imagefolder",
        "check": "decode",
    }
    assert json.loads((out / "report.json").read_text())["bad_images"] == []
    val = read_manifest(out / "val.csv")
    assert {r.path.rsplit("/", 1)[-1]: r.wnid for r in val} == fake.val_wnid
    with Image.open(out / "preview.png") as im:
        # 3 class rows x 4 columns of 32 px tiles with 2 px gaps
        assert im.size == (4 * 34 - 2, 3 * 34 - 2)


def test_prepare_reruns_are_byte_identical(tmp_path):
    fake = make_fake_imagenet(tmp_path / "data")
    _add_bad_images(fake)
    prepare.run(cfg(), fake.root, tmp_path / "a")
    prepare.run(cfg(workers=2), fake.root, tmp_path / "b")
    prepare.run(cfg(), fake.root, tmp_path / "a")  # overwrite in place
    for name in ("train.csv", "val.csv", "dataset.json", "report.json", "preview.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


# ------------------------------------------------------------------------- any labelled folder (issue 30)


def test_one_class_folder_names_the_split(tmp_path):
    fake = make_fake_imagenet(tmp_path, train_per_class=1, val_per_class=1)
    for wnid in fake.classes[1:]:
        shutil.rmtree(fake.root / "train" / wnid)
        shutil.rmtree(fake.root / "val" / wnid, ignore_errors=True)
    with pytest.raises(DataError, match=f"train split {fake.root / 'train'} has one class folder"):
        imagefolder.scan(fake.root)


def test_a_folder_smaller_than_a_batch_names_the_manifest_and_the_key(tmp_path):
    from alitok.data.loader import check_batch

    check_batch(32, 32, tmp_path / "train.csv", "tokenizer.training.global_batch")  # one batch exactly: fine
    with pytest.raises(DataError, match=r"train.csv: 20 training items, fewer than one batch of 32 \(classifier"):
        check_batch(20, 32, tmp_path / "train.csv", "classifier.batch_size")


def test_greyscale_palette_rgba_and_odd_sizes_become_rgb_crops(tmp_path):
    """Any mode and size a folder holds: converted to RGB and cropped to data.image_size as every image is."""
    from alitok.data.loader import TrainImages

    root = tmp_path / "folder"
    modes = {"grey": ("L", (8, 8)), "palette": ("P", (37, 23)), "rgba": ("RGBA", (50, 70)), "cmyk": ("CMYK", (9, 40))}
    for split in ("train", "val"):
        for name, (mode, size) in modes.items():
            for cls in ("a", "b"):
                d = root / split / cls
                d.mkdir(parents=True, exist_ok=True)
                Image.new(mode, size, 7).save(d / f"{name}.{'jpg' if mode == 'CMYK' else 'png'}")
    result = imagefolder.scan(root, workers=1)
    assert result.classes == ["a", "b"] and len(result.train) == 8 and not result.bad
    images = TrainImages(result.train, root, 32, seed=0)
    for i in range(len(images)):
        x, _ = images[(i, i)]  # (stream position, index)
        assert tuple(x.shape) == (3, 32, 32)


def test_export_digits_writes_a_real_labelled_folder(tmp_path):
    """scikit-learn's bundled digits (no download): 10 class folders per split, a seeded per-class split, greyscale
    8 x 8 PNGs that the data stage scans like any folder."""
    from alitok.data import digits

    counts = digits.export(tmp_path / "digits", val_share=0.2, seed=0)
    assert counts["train"] + counts["val"] == 1797 and 340 <= counts["val"] <= 380
    result = imagefolder.scan(tmp_path / "digits", workers=1)
    assert result.classes == [str(d) for d in range(10)] and len(result.val) == counts["val"] and not result.bad
    with Image.open(tmp_path / "digits" / result.train[0].path) as im:
        assert im.mode == "L" and im.size == (8, 8)
    again = digits.export(tmp_path / "again", val_share=0.2, seed=0)
    assert again == counts and sorted(p.name for p in (tmp_path / "again" / "val" / "3").iterdir()) == sorted(
        p.name for p in (tmp_path / "digits" / "val" / "3").iterdir()
    )
