"""LlamaGen's VQ-16 tokenizer: its size on the meta device, the strict import of `vq_ds16_c2i.pt` (names and shapes
at full size on meta tensors, files at a small config), values against an independent functional implementation
of LlamaGen's numerics (docs/papers/llamagen.md §1), and both tokenizer families through the pipeline's interface."""

import math
from dataclasses import asdict

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from alitok.models.vq16 import VQ16, VQ16Config
from alitok.tokenizer.release import ReleaseError, import_release, load_tokenizer, map_vq16_state, vq16_release_config

from fakes import refusal, tiny_tokenizer_config

# ------------------------------------------------------- the released file, per docs/papers/llamagen.md §1


def llamagen_shapes(base=128, ch_mult=(1, 1, 2, 2, 4), z=256, codes=16384, dim=8, blocks=2):
    """Name -> shape of LlamaGen's VQ-16 state dict (`VQ_16` in tokenizer/tokenizer_image/vq_model.py), the usage
    buffer `quantize.codebook_used` included."""
    shapes = {}

    def conv(name, c_in, c_out, k=3):
        shapes.update({f"{name}.weight": (c_out, c_in, k, k), f"{name}.bias": (c_out,)})

    def gn(name, c):
        shapes.update({f"{name}.weight": (c,), f"{name}.bias": (c,)})

    def res(name, c_in, c_out):
        gn(f"{name}.norm1", c_in), conv(f"{name}.conv1", c_in, c_out)
        gn(f"{name}.norm2", c_out), conv(f"{name}.conv2", c_out, c_out)
        if c_in != c_out:
            conv(f"{name}.nin_shortcut", c_in, c_out, k=1)

    def attn(name, c):
        gn(f"{name}.norm", c)
        for part in ("q", "k", "v", "proj_out"):
            conv(f"{name}.{part}", c, c, k=1)

    def mid(name, c):
        res(f"{name}.0", c, c), attn(f"{name}.1", c), res(f"{name}.2", c, c)

    widths, last = [base * m for m in ch_mult], len(ch_mult) - 1
    conv("encoder.conv_in", 3, base)
    c = base
    for i, w in enumerate(widths):
        for j in range(blocks):
            res(f"encoder.conv_blocks.{i}.res.{j}", c, w)
            c = w
            if i == last:
                attn(f"encoder.conv_blocks.{i}.attn.{j}", c)
        if i != last:
            conv(f"encoder.conv_blocks.{i}.downsample.conv", c, c)
    mid("encoder.mid", c)
    gn("encoder.norm_out", c), conv("encoder.conv_out", c, z)
    conv("decoder.conv_in", z, c)
    mid("decoder.mid", c)
    for i, w in enumerate(widths[::-1]):
        for j in range(blocks + 1):
            res(f"decoder.conv_blocks.{i}.res.{j}", c, w)
            c = w
            if i == 0:
                attn(f"decoder.conv_blocks.{i}.attn.{j}", c)
        if i != last:
            conv(f"decoder.conv_blocks.{i}.upsample.conv", c, c)
    gn("decoder.norm_out", c), conv("decoder.conv_out", c, 3)
    shapes["quantize.embedding.weight"] = (codes, dim)
    shapes["quantize.codebook_used"] = (65536,)
    conv("quant_conv", z, dim, k=1), conv("post_quant_conv", dim, z, k=1)
    return shapes


def meta_state(shapes):
    return {k: torch.empty(s, device="meta") for k, s in shapes.items()}


def test_paper_size_on_meta():
    """71.88M parameters at 256 px, no usage buffer; a 16x16 grid of 16384 codes, no prefix, images in [-1, 1]."""
    cfg = VQ16Config(image_size=256)
    with torch.device("meta"):
        model = VQ16(cfg)
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 2) == 71.88
    assert not list(model.buffers()) and len(model.state_dict()) == 343
    g = model.geometry
    assert (g.codebook_size, g.code_dim, g.grid, g.num_prefix, g.seq_len) == (16384, 8, 16, 0, 256)
    assert g.pixel_range == (-1.0, 1.0) and g.image_size == 256


def test_full_release_mapping_on_meta():
    shapes = llamagen_shapes()
    assert len(shapes) == 344
    learned = sum(math.prod(s) for k, s in shapes.items() if k != "quantize.codebook_used")
    assert round(learned / 1e6, 2) == 71.88
    mapped = map_vq16_state(meta_state(shapes), vq16_release_config())
    with torch.device("meta"):
        params = dict(VQ16(vq16_release_config()).named_parameters())
    assert set(mapped) == set(params) == set(shapes) - {"quantize.codebook_used"}  # the identity, buffer ignored
    for name, value in mapped.items():
        assert value.shape == params[name].shape, name


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda s: s.pop("decoder.conv_blocks.4.res.2.conv2.bias"),
            "vq_ds16_c2i.pt: missing tensor decoder.conv_blocks.4.res.2.conv2.bias (expected shape (128,))",
        ),
        (
            lambda s: s.update({"encoder.conv_blocks.3.attn.0.q.weight": torch.empty(256, 256, 1, 1, device="meta")}),
            "vq_ds16_c2i.pt: unexpected tensor encoder.conv_blocks.3.attn.0.q.weight; "
            "it has no counterpart in the tokenizer",
        ),
        (
            lambda s: s.update({"quantize.embedding.weight": torch.empty(16384, 32, device="meta")}),
            "vq_ds16_c2i.pt: quantize.embedding.weight has shape (16384, 32), expected (16384, 8)",
        ),
    ],
    ids=["missing", "unexpected", "wrong-shape"],
)
def test_strict_mapping_errors(edit, message):
    state = meta_state(llamagen_shapes())
    edit(state)
    assert refusal(lambda: map_vq16_state(state, vq16_release_config())) == message


# ------------------------------------------------- values at a small config against LlamaGen's numerics

SMALL = VQ16Config(image_size=16, codebook_size=64, code_dim=8, base_channels=32, ch_mult=(1, 2), z_channels=16)
SMALL_SHAPES = dict(base=32, ch_mult=(1, 2), z=16, codes=64, dim=8)


def random_release(seed=0, **shape_kw):
    """Random weights in LlamaGen's names and shapes at O(1) scale (norm gains and biases matter, the codebook
    is far from normalised), with the usage buffer as LlamaGen saves it."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in llamagen_shapes(**{**SMALL_SHAPES, **shape_kw}).items():
        x = torch.randn(shape, generator=g)
        if name == "quantize.codebook_used":
            x = torch.zeros(shape)
        elif name == "quantize.embedding.weight":
            x = x * (1 + torch.rand(shape[0], 1, generator=g) * 3)  # norms from 1 to 4: normalising changes codes
        elif len(shape) == 4:
            x = x / math.sqrt(math.prod(shape[1:]))
        elif name.endswith("weight"):  # GroupNorm gains
            x = 1 + 0.2 * x
        else:
            x = 0.1 * x
        state[name] = x
    return state


def swish(x):
    return x * torch.sigmoid(x)


def ref_norm(x, s, name):
    return F.group_norm(x, 32, s[f"{name}.weight"], s[f"{name}.bias"], eps=1e-6)


def ref_conv(x, s, name, stride=1, padding=1):
    return F.conv2d(x, s[f"{name}.weight"], s[f"{name}.bias"], stride=stride, padding=padding)


def ref_res(x, s, name):
    h = ref_conv(swish(ref_norm(x, s, f"{name}.norm1")), s, f"{name}.conv1")
    h = ref_conv(swish(ref_norm(h, s, f"{name}.norm2")), s, f"{name}.conv2")
    if f"{name}.nin_shortcut.weight" in s:
        x = ref_conv(x, s, f"{name}.nin_shortcut", padding=0)
    return x + h


def ref_attn(x, s, name):
    """softmax(q·k/√c)·v over the h·w positions, one head."""
    b, c, hh, ww = x.shape
    h = ref_norm(x, s, f"{name}.norm")
    q, k, v = (ref_conv(h, s, f"{name}.{p}", padding=0).reshape(b, c, hh * ww) for p in "qkv")
    w = torch.softmax(torch.bmm(q.transpose(1, 2), k) * c**-0.5, dim=2)  # (b, query, key)
    out = torch.bmm(v, w.transpose(1, 2)).reshape(b, c, hh, ww)
    return x + ref_conv(out, s, f"{name}.proj_out", padding=0)


def ref_mid(h, s, name):
    return ref_res(ref_attn(ref_res(h, s, f"{name}.0"), s, f"{name}.1"), s, f"{name}.2")


def ref_encode(x, s, levels=2, blocks=2):
    """x in [-1, 1] -> quant_conv features (B, D, h, w)."""
    h = ref_conv(x, s, "encoder.conv_in")
    for i in range(levels):
        for j in range(blocks):
            h = ref_res(h, s, f"encoder.conv_blocks.{i}.res.{j}")
            if i == levels - 1:
                h = ref_attn(h, s, f"encoder.conv_blocks.{i}.attn.{j}")
        if i != levels - 1:  # pad one zero row and column at the bottom and right, then a stride-2 conv
            h = ref_conv(F.pad(h, (0, 1, 0, 1)), s, f"encoder.conv_blocks.{i}.downsample.conv", stride=2, padding=0)
    h = ref_mid(h, s, "encoder.mid")
    h = ref_conv(swish(ref_norm(h, s, "encoder.norm_out")), s, "encoder.conv_out")
    return ref_conv(h, s, "quant_conv", padding=0)


def ref_codebook(s):
    return F.normalize(s["quantize.embedding.weight"], p=2, dim=-1)


def ref_quantize(z, s):
    """Nearest code between normalised features and normalised codes; raster order (B, h·w)."""
    b, d, hh, ww = z.shape
    flat = F.normalize(z.permute(0, 2, 3, 1).reshape(-1, d), p=2, dim=-1)
    e = ref_codebook(s)
    dist = flat.pow(2).sum(1, keepdim=True) + e.pow(2).sum(1) - 2 * flat @ e.T
    return dist.argmin(1).view(b, hh * ww)


def ref_decode(codes, s, grid, levels=2, blocks=2):
    """Codes -> LlamaGen's decoder output in about [-1, 1], via get_codebook_entry's normalised vectors."""
    b = codes.shape[0]
    z = ref_codebook(s)[codes.flatten()].reshape(b, grid, grid, -1).permute(0, 3, 1, 2)
    h = ref_conv(ref_conv(z, s, "post_quant_conv", padding=0), s, "decoder.conv_in")
    h = ref_mid(h, s, "decoder.mid")
    for i in range(levels):
        for j in range(blocks + 1):
            h = ref_res(h, s, f"decoder.conv_blocks.{i}.res.{j}")
            if i == 0:
                h = ref_attn(h, s, f"decoder.conv_blocks.{i}.attn.{j}")
        if i != levels - 1:
            h = F.interpolate(h, scale_factor=2.0, mode="nearest")
            h = ref_conv(h, s, f"decoder.conv_blocks.{i}.upsample.conv")
    return ref_conv(swish(ref_norm(h, s, "decoder.norm_out")), s, "decoder.conv_out")


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vq16")
    state = random_release()
    torch.save({"model": state}, tmp / "vq_ds16_c2i.pt")  # LlamaGen's layout: the state dict under "model"
    summary = import_release(tmp / "vq_ds16_c2i.pt", tmp / "tokenizer.pt", SMALL)
    return state, summary, tmp


def test_import_writes_a_vq16_checkpoint_that_loads(imported):
    state, summary, tmp = imported
    ckpt = torch.load(tmp / "tokenizer.pt", map_location="cpu", weights_only=True)
    assert ckpt["format"] == "alitok-tokenizer/1" and ckpt["family"] == "vq16" and "stage" not in ckpt
    assert ckpt["config"] == asdict(SMALL) and ckpt["source"]["file"] == "vq_ds16_c2i.pt"
    assert "quantize.codebook_used" not in ckpt["model"]
    assert summary["family"] == "vq16" and summary["tensors"] == len(state) - 1
    model = load_tokenizer(tmp / "tokenizer.pt")
    assert isinstance(model, VQ16) and not model.training and model.config == SMALL
    for name, value in model.state_dict().items():
        assert torch.equal(value, state[name]), name


def test_imported_model_matches_llamagen_numerics(imported):
    state, _, tmp = imported
    model = load_tokenizer(tmp / "tokenizer.pt")
    torch.manual_seed(1)
    x = torch.rand(2, 3, 16, 16)  # the interface's [0, 1]; LlamaGen's network sees 2x - 1
    with torch.no_grad():
        codes = model.encode_codes(x)
        images = model.decode_codes(codes)
        z = model.quant_conv(model.encoder(x * 2 - 1))
        book = model.codebook_vectors()
        lookup = F.embedding(codes, book).transpose(1, 2).reshape(2, 8, 8, 8)
        raw = model.decoder(model.post_quant_conv(lookup))
    z_ref = ref_encode(x * 2 - 1, state)
    torch.testing.assert_close(z, z_ref, rtol=0, atol=1e-5)
    codes_ref = ref_quantize(z_ref, state)
    assert codes.shape == (2, 64) and codes.dtype == torch.long and torch.equal(codes, codes_ref)
    # the lookup is by normalised vectors: the nearest raw codebook row would differ
    raw_nearest = torch.cdist(z_ref.permute(0, 2, 3, 1).reshape(-1, 8), state["quantize.embedding.weight"]).argmin(1)
    assert not torch.equal(raw_nearest.view(2, 64), codes_ref)
    torch.testing.assert_close(book, ref_codebook(state), rtol=0, atol=1e-6)
    torch.testing.assert_close(book.norm(dim=1), torch.ones(64), rtol=0, atol=1e-6)
    out_ref = ref_decode(codes_ref, state, grid=8)
    torch.testing.assert_close(raw, out_ref, rtol=0, atol=1e-5)
    assert images.shape == (2, 3, 16, 16) and images.min() >= 0 and images.max() <= 1
    torch.testing.assert_close(images, ((out_ref + 1) / 2).clamp(0, 1), rtol=0, atol=1e-5)
    assert ((out_ref > -1) & (out_ref < 1)).float().mean() > 0.5  # mostly inside the clamp: the values are compared


# ---------------------------------------------------------------------- refused files: one sentence, no output


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda s: s.update({"decoder.conv_out.weight": torch.zeros(3, 32, 1, 1)}),
            "bad.pt: decoder.conv_out.weight has shape (3, 32, 1, 1), expected (3, 32, 3, 3)",
        ),
        (
            lambda s: s.pop("encoder.conv_blocks.1.attn.1.proj_out.bias"),
            "bad.pt: missing tensor encoder.conv_blocks.1.attn.1.proj_out.bias (expected shape (64,))",
        ),
        (
            lambda s: s.update({"encoder.conv_blocks.1.downsample.conv.weight": torch.zeros(64, 64, 3, 3)}),
            "bad.pt: unexpected tensor encoder.conv_blocks.1.downsample.conv.weight; "
            "it has no counterpart in the tokenizer",
        ),
        (
            lambda s: (s.clear(), s.update({"tok_embeddings.weight": torch.zeros(64, 32)})),
            "bad.pt: holds a generator (tok_embeddings.weight), not a tokenizer; use alitok import-generator",
        ),
        (
            lambda s: (s.clear(), s.update({"net.weight": torch.zeros(4)})),
            "bad.pt: not a released tokenizer of a known family (AliTok's AliTok.pth has latent_tokens and "
            "encoder.transformer.*, LlamaGen's vq_ds16_c2i.pt has encoder.conv_blocks.*)",
        ),
    ],
    ids=["wrong-shape", "missing", "extra", "generator", "unknown"],
)
def test_refused_release_gets_one_sentence_and_no_file(tmp_path, edit, message):
    state = random_release()
    edit(state)
    torch.save({"model": state}, tmp_path / "bad.pt")
    with pytest.raises(ReleaseError) as e:
        import_release(tmp_path / "bad.pt", tmp_path / "out.pt", SMALL)
    assert str(e.value) == message
    assert not (tmp_path / "out.pt").exists()


def test_truncated_and_reduced_releases_are_refused(imported, tmp_path):
    _, _, tmp = imported
    data = (tmp / "vq_ds16_c2i.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ReleaseError, match=r"^cut.pt: released tokenizer .* is truncated, corrupt"):
        import_release(tmp_path / "cut.pt", tmp_path / "out.pt")
    # without a config the import is LlamaGen's c2i tokenizer at 256 px: a reduced file names its first mismatch
    reduced = r"^vq_ds16_c2i.pt: encoder.conv_in.weight has shape \(32, 3, 3, 3\), expected \(128, 3, 3, 3\)$"
    with pytest.raises(ReleaseError, match=reduced):
        import_release(tmp / "vq_ds16_c2i.pt", tmp_path / "out.pt")
    with pytest.raises(ReleaseError, match=r"^vq_ds16_c2i.pt: holds a vq16 tokenizer, not one for TokenizerConfig$"):
        import_release(tmp / "vq_ds16_c2i.pt", tmp_path / "out.pt", tiny_tokenizer_config())
    assert not (tmp_path / "out.pt").exists()
    ckpt = torch.load(tmp / "tokenizer.pt", weights_only=True)
    torch.save({**ckpt, "family": "maskgit"}, tmp_path / "odd.pt")
    with pytest.raises(ReleaseError, match=r"^odd.pt: unknown tokenizer family 'maskgit' \(known: alitok, vq16\)$"):
        load_tokenizer(tmp_path / "odd.pt")


# ------------------------------------------------- both families through the interface, at tiny scale


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from conftest import make_tiny_data

    ws = tmp_path_factory.mktemp("families")
    return ws, make_tiny_data(ws, train_per_class=2, val_per_class=1)


def save_tiny_vq16(path):
    """A random 32 px VQ-16 (ch_mult (1, 2, 2): an 8x8 grid, 128 codes) imported as LlamaGen's file would be."""
    cfg = VQ16Config(image_size=32, codebook_size=128, code_dim=8, base_channels=32, ch_mult=(1, 2, 2), z_channels=16)
    release = path.with_name("vq16_release.pt")
    torch.save({"model": random_release(ch_mult=(1, 2, 2), codes=128)}, release)
    import_release(release, path, cfg)


@pytest.mark.parametrize("family", ["alitok", "vq16"])
def test_families_through_the_interface(tiny_data, family):
    """Tokens from either family feed the generator and CTF's clustering; sampled codes decode to images."""
    from alitok.ctf import clusters
    from alitok.generator.config import model_config
    from alitok.generator.sampling import generate
    from alitok.generator.train import next_token_stats, optimizer
    from alitok.models.generator import Generator
    from alitok.tokens.store import TokenShards

    from conftest import extract_tiny_tokens, save_random_tokenizer

    data, p = tiny_data
    ws = data.parent / family
    ws.mkdir(exist_ok=True)
    (ws / "data").symlink_to(data / "data")
    if family == "vq16":
        save_tiny_vq16(ws / "tok.pt")
    else:
        save_random_tokenizer(ws / "tok.pt", p)
    tokenizer = load_tokenizer(ws / "tok.pt")
    geometry = tokenizer.geometry
    extract_tiny_tokens(ws)
    train = TokenShards(ws / "tokens" / "train")
    assert train.info["seq_len"] == geometry.seq_len and train.info["vocab_size"] == geometry.codebook_size
    codes, _ = train[0]
    assert codes.shape == (1, geometry.seq_len) and int(codes.max()) < geometry.codebook_size

    cmap = clusters.run(
        tokenizer_path=ws / "tok.pt",
        train_tokens=ws / "tokens" / "train",
        clusters={"count": 8, "normalisation": "none", "codes": "all", "seed": 0, "iters": 20},
        out=ws / "clusters.json",
    )
    assert cmap["codebook_size"] == geometry.codebook_size and sum(cmap["sizes"]) == geometry.codebook_size

    torch.manual_seed(0)
    model = Generator(model_config(p, "S", train.info["num_classes"], train.info))
    opt = optimizer(model, p["generator"]["optimizer"])
    batch = torch.from_numpy(np.stack([train[i][0][0] for i in range(8)]).astype(np.int64))
    labels = torch.tensor([train[i][1] for i in range(8)])
    loss, _ = next_token_stats(model(labels, batch), batch)
    loss.backward()
    opt.step()
    sampled = generate(model, labels[:2], torch.arange(2), seed=0)
    with torch.no_grad():
        images = tokenizer.decode_codes(sampled)
    assert sampled.shape == (2, geometry.seq_len) and int(sampled.max()) < geometry.codebook_size
    assert images.shape == (2, 3, geometry.image_size, geometry.image_size)
    assert images.min() >= 0 and images.max() <= 1
