"""Importing released generators: names and shapes at full size on meta tensors, a real round trip at small size."""

import sys

import pytest
import torch

from alitok.generator import release
from alitok.generator.release import ReleaseError, check_state, detect_size, import_release, load_generator
from alitok.models.generator import Generator, GeneratorConfig

from conftest import REPO, run


def released_shapes(width, depth, hd, ffn, codes=4096, classes=1000):
    """docs/papers/alitok-release.md §6, blocks expanded."""
    shapes = {
        "embeddings.weight": (codes + 1 + classes + 1, width),
        "norm.weight": (width,),
        "output.weight": (codes, width),
        "output.bias": (codes,),
    }
    for i in range(depth):
        b = f"blocks.{i}."
        shapes.update(
            {
                b + "norm1.weight": (width,),
                b + "attn.qkv.weight": (3 * width, width),
                b + "attn.qkv.bias": (3 * width,),
                b + "attn.q_norm.weight": (hd,),
                b + "attn.k_norm.weight": (hd,),
                b + "attn.proj.weight": (width, width),
                b + "attn.proj.bias": (width,),
                b + "norm2.weight": (width,),
                b + "mlp.w1.weight": (ffn, width),
                b + "mlp.w3.weight": (ffn, width),
                b + "mlp.w2.weight": (width, ffn),
            }
        )
    return shapes


RELEASED = {
    "B": (released_shapes(768, 24, 48, 2048), 268, 177.05),
    "L": (released_shapes(1024, 24, 64, 2816), 268, 317.85),
    "XL": (released_shapes(1280, 32, 80, 3584), 356, 662.14),
}


def meta_state(shapes):
    return {k: torch.empty(s, device="meta") for k, s in shapes.items()}


@pytest.mark.parametrize("size", ["B", "L", "XL"])
def test_released_names_and_shapes_map_strictly(size):
    shapes, tensors, millions = RELEASED[size]
    state = meta_state(shapes)
    assert len(state) == tensors
    assert detect_size(state, "f.bin") == size
    mapped = check_state(state, GeneratorConfig.named("alitok", size, **release.release_geometry()), "f.bin")
    assert len(mapped) == tensors and round(sum(v.numel() for v in mapped.values()) / 1e6, 2) == millions


def test_mismatches_are_named():
    cfg = GeneratorConfig.named("alitok", "B", **release.release_geometry())
    shapes = RELEASED["B"][0]
    missing = meta_state({k: v for k, v in shapes.items() if k != "blocks.3.attn.q_norm.weight"})
    with pytest.raises(ReleaseError, match="missing tensor blocks.3.attn.q_norm.weight"):
        check_state(missing, cfg, "f.bin")
    with pytest.raises(ReleaseError, match=r"output.bias has shape \(16384,\), expected \(4096,\)"):
        check_state(meta_state(shapes | {"output.bias": (16384,)}), cfg, "f.bin")
    with pytest.raises(ReleaseError, match="unexpected tensor pos_embed"):
        check_state(meta_state(shapes | {"pos_embed": (1, 768)}), cfg, "f.bin")
    with pytest.raises(ReleaseError, match="match no released size"):
        detect_size(meta_state(released_shapes(512, 8, 32, 1536)), "f.bin")


@pytest.fixture
def small_release(monkeypatch):
    """Shrink 'the release' to a size that can be written and read in a test."""
    monkeypatch.setitem(release.SIZES["alitok"], "B", (32, 2, 2))
    monkeypatch.setattr(
        release, "release_geometry", lambda: {"vocab_size": 24, "num_prefix": 3, "grid": 2, "num_classes": 5}
    )
    torch.manual_seed(0)
    model = Generator(GeneratorConfig.named("alitok", "B", **release.release_geometry()))
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.2)
    return model.eval()


def test_import_round_trip_gives_identical_logits(tmp_path, small_release):
    src = tmp_path / "alitok_b.bin"
    torch.save(small_release.state_dict(), src)
    info = import_release(src, tmp_path / "gen.pt")
    assert info["size"] == "B" and info["tensors"] == len(small_release.state_dict())
    loaded = load_generator(tmp_path / "gen.pt")
    labels, codes = torch.tensor([0, 4]), torch.randint(0, 24, (2, 7))
    assert torch.equal(loaded(labels, codes), small_release(labels, codes))


def test_bad_files_get_one_clear_error(tmp_path, small_release):
    src = tmp_path / "alitok_b.bin"
    torch.save(small_release.state_dict(), src)
    src.write_bytes(src.read_bytes()[:200])
    with pytest.raises(ReleaseError, match="truncated, corrupt"):
        import_release(src, tmp_path / "gen.pt")
    assert not (tmp_path / "gen.pt").exists()
    with pytest.raises(ReleaseError, match="does not exist"):
        import_release(tmp_path / "nope.bin", tmp_path / "gen.pt")


def test_cli_reports_a_missing_file_in_one_line(tmp_path):
    cmd = [sys.executable, "-m", "alitok", "import-generator", tmp_path / "alitok_b.bin", "--out", tmp_path / "g.pt"]
    r = run(cmd, cwd=REPO, check=False)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("alitok import-generator: error:")
    assert "does not exist" in r.stderr
