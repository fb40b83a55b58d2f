"""Atomic writes: a failure mid-write leaves the previous artifact intact and no temp file behind."""

import errno
import os

import pytest

from alitok import atomic


def test_replaces_whole_file(tmp_path):
    p = tmp_path / "a" / "b.json"
    atomic.write_json(p, {"x": 1})
    atomic.write_json(p, {"x": 2})
    assert p.read_text().strip().endswith("}") and '"x": 2' in p.read_text()
    assert [f.name for f in p.parent.iterdir()] == ["b.json"]


def test_crash_mid_write_keeps_previous(tmp_path):
    p = tmp_path / "out.txt"
    atomic.write_text(p, "old")
    with pytest.raises(KeyboardInterrupt):
        with atomic.atomic_path(p) as tmp:
            tmp.write_text("half")
            raise KeyboardInterrupt
    assert p.read_text() == "old" and len(list(tmp_path.iterdir())) == 1


def test_disk_full_is_a_clear_error(tmp_path, monkeypatch):
    p = tmp_path / "ckpt.bin"
    atomic.write_bytes(p, b"previous")

    def full(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(atomic.OutputError, match="no space left.*ckpt.bin"):
        atomic.write_bytes(p, b"new")
    monkeypatch.undo()
    assert p.read_bytes() == b"previous"
    assert len(list(tmp_path.iterdir())) == 1


def test_file_where_directory_should_be(tmp_path):
    (tmp_path / "blocker").write_text("x")
    with pytest.raises(atomic.OutputError, match="a file stands where a directory should be"):
        atomic.write_text(tmp_path / "blocker" / "out.txt", "y")


def test_atomic_dir_all_or_nothing(tmp_path):
    d = tmp_path / "images"
    with atomic.atomic_dir(d) as tmp:
        (tmp / "a.png").write_bytes(b"1")
    with pytest.raises(RuntimeError):
        with atomic.atomic_dir(d) as tmp:
            (tmp / "b.png").write_bytes(b"2")
            raise RuntimeError("killed")
    assert sorted(f.name for f in d.iterdir()) == ["a.png"]
    assert sorted(f.name for f in tmp_path.iterdir()) == ["images"]


def test_a_checkpoint_streamed_onto_a_full_device_is_a_clear_error(tmp_path, monkeypatch):
    """A real ENOSPC from the kernel: the temp file is swapped for a link to /dev/full mid-write."""
    import torch

    p = tmp_path / "model.pt"
    atomic.torch_save(p, {"w": torch.ones(3)})
    real_open = open

    def open_full(file, mode="r", *args, **kwargs):
        if "w" in mode and str(file).endswith(".tmp"):
            return real_open("/dev/full", mode, *args, **kwargs)
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", open_full)
    with pytest.raises(atomic.OutputError, match="no space left on device while writing .*model.pt"):
        atomic.torch_save(p, {"w": torch.zeros(100_000)})
    monkeypatch.undo()
    assert torch.equal(torch.load(p)["w"], torch.ones(3)), "the previous checkpoint is intact"
    assert [f.name for f in tmp_path.iterdir()] == ["model.pt"], "no temp file left behind"
