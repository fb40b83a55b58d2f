"""Importing LlamaGen's released class-conditional GPTs (c2i_B_256.pt, c2i_L_256.pt; docs/papers/llamagen.md §2).

The imported model's logits are checked against `reference_logits`, a functional re-implementation of LlamaGen's
GPT forward written here from its gpt.py (RMSNorm eps 1e-5, SwiGLU, packed wqkv, 2-D RoPE on interleaved pairs
with the class token first and unrotated, causal attention, null class = row 1000), in float64, on LlamaGen-format
files written from random weights at a small size. Full sizes are checked on the meta device.
"""

import sys

import pytest
import torch
import torch.nn.functional as F

from alitok.generator import release
from alitok.generator.release import (
    ReleaseError,
    detect_size,
    import_release,
    llamagen_geometry,
    load_generator,
    map_llamagen_state,
)
from alitok.generator.sampling import generate
from alitok.models.generator import GeneratorConfig, KVCache

from conftest import REPO, run

CLASSES = 1000  # what the import requires: ImageNet's, plus the null class as row 1000
DIM, LAYERS, HEADS, VOCAB, GRID = 64, 2, 4, 64, 4  # the small size the value tests run at


def llamagen_shapes(dim: int, layers: int, vocab: int = 16384, classes: int = CLASSES) -> dict:
    """A c2i GPT's state dict as LlamaGen's gpt.py builds it: no biases, wqkv (3·dim, dim) with n_kv_head = n_head,
    SwiGLU hidden find_multiple(int(2·4·dim/3), 256), a class table of classes + 1 rows (class dropout > 0)."""
    hidden = -(-int(2 * 4 * dim / 3) // 256) * 256
    shapes = {
        "tok_embeddings.weight": (vocab, dim),
        "cls_embedding.embedding_table.weight": (classes + 1, dim),
        "norm.weight": (dim,),
        "output.weight": (vocab, dim),
    }
    for i in range(layers):
        b = f"layers.{i}."
        shapes |= {
            b + "attention.wqkv.weight": (3 * dim, dim),
            b + "attention.wo.weight": (dim, dim),
            b + "feed_forward.w1.weight": (hidden, dim),
            b + "feed_forward.w3.weight": (hidden, dim),
            b + "feed_forward.w2.weight": (dim, hidden),
            b + "attention_norm.weight": (dim,),
            b + "ffn_norm.weight": (dim,),
        }
    return shapes


def random_weights(seed: int = 0) -> dict:
    """LlamaGen names and shapes at the small size; scales that keep activations and logits of order 1."""
    g = torch.Generator().manual_seed(seed)
    weights = {}
    for name, shape in llamagen_shapes(DIM, LAYERS, VOCAB).items():
        if name.endswith("norm.weight"):
            weights[name] = 1 + 0.1 * torch.randn(shape, generator=g)
        elif "embedding" in name:
            weights[name] = torch.randn(shape, generator=g)
        else:
            weights[name] = torch.randn(shape, generator=g) / shape[1] ** 0.5
    return weights


# ------------------------------------------------------------------------------------ the reference forward


def reference_rope(grid: int, head_dim: int, base: float = 10000.0) -> torch.Tensor:
    """LlamaGen's precompute_freqs_cis_2d with cls_token_num 1, as unit complex numbers per rotation pair:
    position 0 (the class token) is 0 (cos = sin = 0: its q and k vanish); image token (r, c), in raster order,
    turns pair j by r·f_j for j < head_dim/4 and pair head_dim/4 + j by c·f_j, f_j = base^(−4j/head_dim)."""
    f = base ** (-4 * torch.arange(head_dim // 4, dtype=torch.float64) / head_dim)
    turns = [torch.zeros(head_dim // 2, dtype=torch.complex128)]
    for r in range(grid):
        for c in range(grid):
            angle = torch.cat([r * f, c * f])
            turns.append(torch.polar(torch.ones_like(angle), angle))
    return torch.stack(turns)


def rotate(x: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    """x (B, L, H, hd): pairs (2i, 2i+1) are the real and imaginary parts of complex i, times turns (L, hd/2)."""
    xc = torch.view_as_complex(x.reshape(*x.shape[:-1], -1, 2).contiguous())
    return torch.view_as_real(xc * turns[None, :, None, :]).flatten(-2)


def rms(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * weight


def reference_logits(weights: dict, labels, codes, heads: int = HEADS, grid: int = GRID) -> torch.Tensor:
    """LlamaGen's training forward (teacher forcing), float64: inputs [class, c_0 … c_{T-2}], logits (B, T, vocab)
    at position t predicting c_t. The label indexes the class table directly; label 1000 is the null class."""
    w = {k: v.double() for k, v in weights.items()}
    x = torch.cat(
        [w["cls_embedding.embedding_table.weight"][labels][:, None], w["tok_embeddings.weight"][codes[:, :-1]]], 1
    )
    B, L, dim = x.shape
    hd, depth = dim // heads, len({k.split(".")[1] for k in w if k.startswith("layers.")})
    turns = reference_rope(grid, hd)[:L]
    causal = torch.ones(L, L, dtype=torch.bool).tril()
    for i in range(depth):
        p = f"layers.{i}."
        qkv = F.linear(rms(x, w[p + "attention_norm.weight"]), w[p + "attention.wqkv.weight"])
        q, k, v = (t.reshape(B, L, heads, hd) for t in qkv.split(dim, -1))
        q, k = rotate(q, turns), rotate(k, turns)
        scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / hd**0.5
        attn = scores.masked_fill(~causal, float("-inf")).softmax(-1)
        x = x + F.linear(torch.einsum("bhqk,bkhd->bqhd", attn, v).reshape(B, L, dim), w[p + "attention.wo.weight"])
        h = rms(x, w[p + "ffn_norm.weight"])
        gate, up = F.linear(h, w[p + "feed_forward.w1.weight"]), F.linear(h, w[p + "feed_forward.w3.weight"])
        x = x + F.linear(F.silu(gate) * up, w[p + "feed_forward.w2.weight"])
    return F.linear(rms(x, w["norm.weight"]), w["output.weight"])


# ------------------------------------------------------------------------------------ fixtures and helpers


@pytest.fixture
def small(monkeypatch):
    """Shrink LlamaGen's GPT-B and its geometry to the small size; 1000 classes kept (a 1001-row table)."""
    monkeypatch.setitem(release.SIZES["llamagen"], "B", (DIM, LAYERS, HEADS))
    geometry = {"vocab_size": VOCAB, "num_prefix": 0, "grid": GRID, "num_classes": CLASSES}
    monkeypatch.setattr(release, "llamagen_geometry", lambda: geometry)
    return random_weights()


@pytest.fixture
def imported(tmp_path, small):
    src = tmp_path / "c2i_B_256.pt"
    torch.save({"model": small}, src)
    info = import_release(src, tmp_path / "gen.pt")
    assert (info["family"], info["size"], info["tensors"]) == ("llamagen", "B", len(small))
    return load_generator(tmp_path / "gen.pt"), small


def refused(src, out, match: str, **kw) -> None:
    """import_release refuses `src` with one sentence matching `match`, and writes nothing."""
    with pytest.raises(ReleaseError, match=match) as e:
        import_release(src, out, **kw)
    assert "\n" not in str(e.value) and str(e.value).startswith(src.name + ": ")
    assert not out.exists()


# ------------------------------------------------------------------------------------ tests


def test_geometry_is_vq16_at_256_with_imagenet_classes():
    assert llamagen_geometry() == {"vocab_size": 16384, "num_prefix": 0, "grid": 16, "num_classes": 1000}
    cfg = GeneratorConfig.named("llamagen", "B", **llamagen_geometry())
    assert (cfg.null_class, cfg.class_id(torch.tensor([0, 999, 1000])).tolist()) == (1000, [0, 999, 1000])


@pytest.mark.parametrize(
    ("size", "dim", "layers", "tensors", "millions"),
    [("B", 768, 12, 88, 110.89), ("L", 1024, 24, 172, 342.91), ("XL", 1280, 36, 256, 774.70)],
)
def test_released_names_and_shapes_map_strictly(size, dim, layers, tensors, millions):
    state = {k: torch.empty(s, device="meta") for k, s in llamagen_shapes(dim, layers).items()}
    assert len(state) == tensors and detect_size(state, "c2i.pt", "llamagen") == size
    mapped = map_llamagen_state(state, GeneratorConfig.named("llamagen", size, **llamagen_geometry()), "c2i.pt")
    assert len(mapped) == tensors and round(sum(v.numel() for v in mapped.values()) / 1e6, 2) == millions
    assert mapped["class_embeddings.weight"].shape == (1001, dim)
    assert mapped[f"blocks.{layers - 1}.attn.qkv.weight"].shape == (3 * dim, dim)


def test_imported_logits_match_llamagen_forward(imported):
    model, weights = imported
    assert model.config.arch == "llamagen" and model.config.num_prefix == 0
    labels = torch.tensor([3, 999, CLASSES])  # two real classes and the null class
    codes = torch.randint(0, VOCAB, (3, GRID**2), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got = model(labels, codes)
    want = reference_logits(weights, labels, codes)
    assert got.shape == (3, GRID**2, VOCAB) and want.abs().max() > 1  # logits of order 1, not vanishing
    torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-5)
    # the null class is row 1000 of the released table, not a row of ours shifted
    assert not torch.allclose(got[1], got[2], atol=1e-3)


def test_cached_decoding_matches_llamagen_forward(imported):
    model, weights = imported
    labels = torch.tensor([7, CLASSES])
    codes = torch.randint(0, VOCAB, (2, GRID**2), generator=torch.Generator().manual_seed(2))
    cache = KVCache(model.config, 2, GRID**2, "cpu", torch.float32)
    with torch.no_grad():
        steps = [model.step(None, labels, cache)]
        steps += [model.step(codes[:, t : t + 1], None, cache) for t in range(GRID**2 - 1)]
    torch.testing.assert_close(
        torch.stack(steps, 1).double(), reference_logits(weights, labels, codes), atol=1e-5, rtol=1e-5
    )


def test_guided_greedy_sampling_matches_llamagen_cfg(imported):
    """LlamaGen's generate: [cond ; null class 1000] in one batch, logits u + w·(c − u); greedy here."""
    model, weights = imported
    labels, scale = torch.tensor([5, 640]), 2.0
    got = generate(model, labels, torch.arange(2), seed=0, guidance=scale, temperature=0.0)
    codes = torch.empty(2, 0, dtype=torch.long)
    for t in range(GRID**2):
        padded = F.pad(codes, (0, 1))
        cond = reference_logits(weights, labels, padded)[:, t]
        uncond = reference_logits(weights, torch.full_like(labels, CLASSES), padded)[:, t]
        codes = torch.cat([codes, (uncond + scale * (cond - uncond)).argmax(-1)[:, None]], 1)
    assert torch.equal(got, codes)


def test_a_saved_rope_table_is_checked(tmp_path, small):
    turns = reference_rope(GRID, DIM // HEADS)
    table = torch.stack([turns.real, turns.imag], -1).float()  # LlamaGen's (1 + grid², head_dim/2, 2) layout
    src = tmp_path / "c2i_B_256.pt"
    torch.save({"model": small | {"freqs_cis": table}}, src)
    assert import_release(src, tmp_path / "ok.pt")["tensors"] == len(small)
    torch.save({"model": small | {"freqs_cis": table.flip(0)}}, src)
    refused(src, tmp_path / "bad.pt", "freqs_cis differs from the 2-D RoPE table of a 4x4 grid")
    torch.save({"model": small | {"freqs_cis": table[:-1]}}, src)
    refused(src, tmp_path / "bad.pt", r"freqs_cis has shape \(16, 8, 2\), expected \(17, 8, 2\)")


def test_bad_files_get_one_sentence_and_write_nothing(tmp_path, small):
    out, src = tmp_path / "gen.pt", tmp_path / "c2i_B_256.pt"

    def write(model: dict, name: str = "c2i_B_256.pt"):
        torch.save({"model": model}, tmp_path / name)
        return tmp_path / name

    torch.save({"model": small}, src)
    src.write_bytes(src.read_bytes()[:300])
    refused(src, out, "truncated, corrupt or not a tensor file")
    refused(write(small), out, "a LlamaGen GPT file, not an AliTok generator one", family="alitok")
    refused(write({k: v for k, v in small.items() if k != "layers.1.ffn_norm.weight"}), out,
            r"missing tensor layers.1.ffn_norm.weight \(expected shape \(64,\)\)")  # fmt: skip
    refused(write(small | {"output.weight": torch.zeros(VOCAB - 1, DIM)}), out,
            r"output.weight has shape \(63, 64\), expected \(64, 64\)")  # fmt: skip
    refused(write(small | {"layers.0.attention.kv_cache.k_cache": torch.zeros(1)}), out,
            "unexpected tensor layers.0.attention.kv_cache.k_cache")  # fmt: skip
    no_null = small | {"cls_embedding.embedding_table.weight": torch.zeros(CLASSES, DIM)}
    refused(write(no_null), out, "has 1000 rows, no null class")
    refused(write(small, "c2i_B_384.pt"), out, "a 384 px LlamaGen GPT by its name")
    refused(write(small | {"tok_embeddings.weight": torch.zeros(VOCAB, 32)}), out, "match no released size")
    refused(write({"quantize.embedding.weight": torch.zeros(16, 8)}), out, "a tokenizer .*alitok import-tokenizer")
    refused(write({"layers.0.attention.wo.weight": torch.zeros(2, 2)}), out, "no tok_embeddings.weight")
    alitok_bin = tmp_path / "alitok_b.bin"
    torch.save({"embeddings.weight": torch.zeros(10, 8), "blocks.0.norm1.weight": torch.zeros(8)}, alitok_bin)
    refused(alitok_bin, out, "an AliTok generator file, not a LlamaGen GPT one", family="llamagen")


def test_cli_refuses_a_vq16_tokenizer_in_one_line(tmp_path):
    src = tmp_path / "vq_ds16_c2i.pt"
    torch.save({"model": {"quantize.embedding.weight": torch.zeros(16, 8)}}, src)
    r = run(
        [sys.executable, "-m", "alitok", "import-generator", src, "--out", tmp_path / "g.pt"], cwd=REPO, check=False
    )
    assert r.returncode == 2 and not (tmp_path / "g.pt").exists()
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("alitok import-generator: error: vq_ds16_c2i.pt: a tokenizer"), r.stderr


def test_a_training_checkpoint_with_its_args_imports(tmp_path, small):
    """LlamaGen's training checkpoints keep an argparse.Namespace beside the weights: it is allowed, not run."""
    import argparse

    src = tmp_path / "c2i_B_256.pt"
    torch.save({"model": small, "args": argparse.Namespace(gpt_model="GPT-B"), "steps": 7}, src)
    assert import_release(src, tmp_path / "gen.pt")["family"] == "llamagen"
