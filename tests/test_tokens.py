"""Token extraction: released ten-crop order, uint16 shards + manifest read memory-mapped, resume after a kill."""

import json

import numpy as np
import pytest
import torch

from alitok import config
from alitok.data import manifest, transforms
from alitok.models.tokenizer import Tokenizer
from alitok.tokenizer.train import model_config
from alitok.tokens import extract
from alitok.tokens.store import TokenShards, TokenStoreError

from conftest import REPO, make_tiny_data, save_random_tokenizer


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    ws = tmp_path_factory.mktemp("tokens")
    save_random_tokenizer(ws / "tok.pt", make_tiny_data(ws, train_per_class=3, val_per_class=1))
    return ws


def extract_split(ws, split, out, ten_crop=True, shard_images=7):
    return extract.run(
        tokenizer_path=ws / "tok.pt",
        split_csv=ws / "data" / f"{split}.csv",
        dataset_json=ws / "data" / "dataset.json",
        out_dir=ws / out,
        work_dir=ws / f"work_{out}",
        ten_crop=ten_crop,
        crop_scale=1.1,
        shard_images=shard_images,
        batch=4,
        workers=0,
    )


def test_train_tokens_are_the_ten_crops_in_released_order(ws):
    summary = extract_split(ws, "train", "train_tokens")
    records = manifest.read_manifest(ws / "data" / "train.csv")
    n = len(records)
    assert summary["crops"] == 10 and summary["images"] == n
    assert [s["count"] for s in summary["shards"]] == [7] * (n // 7) + ([n % 7] if n % 7 else [])
    shards = TokenShards(ws / "train_tokens")
    assert len(shards) == n and shards.codes[0].dtype == np.uint16 and isinstance(shards.codes[0], np.memmap)
    tok = Tokenizer(model_config(config.load(REPO / "params.yaml", "tiny")), stage=2)
    tok.load_state_dict(torch.load(ws / "tok.pt")["model"])
    root = manifest.read_dataset_info(ws / "data" / "dataset.json")["root"]
    for i in (0, n - 1):  # first and last image: direct encoding of each crop, in order
        crops = transforms.ten_crop(manifest.open_image(root, records[i]), 32, 1.1)
        x = torch.stack([transforms.to_uint8_chw(c) for c in crops]).float() / 255
        with torch.no_grad():
            want = tok.encode(x)[1].numpy()
        codes, label = shards[i]
        assert np.array_equal(codes.astype(np.int64), want) and label == records[i].label
    info = json.loads((ws / "train_tokens" / "manifest.json").read_text())
    assert info["seq_len"] == tok.config.seq_len and info["num_prefix"] == tok.config.num_prefix
    assert not any((ws / "work_train_tokens").glob("*.npy"))  # shards moved out of the work dir


def test_val_tokens_use_one_centre_crop(ws):
    summary = extract_split(ws, "val", "val_tokens", ten_crop=False, shard_images=100)
    assert summary["crops"] == 1 and len(summary["shards"]) == 1
    assert TokenShards(ws / "val_tokens")[0][0].shape == (1, summary["seq_len"])


def test_killed_extraction_resumes_at_the_first_unfinished_shard(ws, monkeypatch):
    clean = TokenShards(ws / "train_tokens") if (ws / "train_tokens").exists() else None
    if clean is None:
        extract_split(ws, "train", "train_tokens")
        clean = TokenShards(ws / "train_tokens")
    calls, real = [], extract.encode_shard

    def dies_on_second(*args, **kw):
        calls.append(args[2])
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        return real(*args, **kw)

    monkeypatch.setattr(extract, "encode_shard", dies_on_second)
    with pytest.raises(KeyboardInterrupt):
        extract_split(ws, "train", "resumed")
    assert not (ws / "resumed").exists()  # no half-written output
    assert sorted(p.name for p in (ws / "work_resumed").glob("*.npy")) == ["codes-00000.npy", "labels-00000.npy"]
    calls.clear()
    monkeypatch.setattr(extract, "encode_shard", lambda *a, **k: (calls.append(a[2]), real(*a, **k))[1])
    extract_split(ws, "train", "resumed")
    assert calls[0] == 7  # shard 0 was not redone
    got = TokenShards(ws / "resumed")
    assert all(np.array_equal(a, b) for a, b in zip(got.codes, clean.codes))


def test_broken_stores_are_named(ws, tmp_path):
    with pytest.raises(TokenStoreError, match="run the token extraction stage"):
        TokenShards(tmp_path)
    import shutil

    shutil.copytree(ws / "val_tokens", tmp_path / "v")
    info = json.loads((tmp_path / "v" / "manifest.json").read_text())
    info["seq_len"] += 1
    (tmp_path / "v" / "manifest.json").write_text(json.dumps(info))
    with pytest.raises(TokenStoreError, match="codes-00000.npy: shape"):
        TokenShards(tmp_path / "v")
