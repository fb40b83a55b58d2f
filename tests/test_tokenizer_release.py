"""Importing the released AliTok.pth: strict name/shape mapping (on meta tensors at full size) and, at reduced
widths, values against an independent plain-torch implementation of docs/papers/alitok-release.md §1.3-1.6."""

import math
from dataclasses import asdict

import pytest
import torch

from alitok.models.tokenizer import Tokenizer
from alitok.tokenizer.release import ReleaseError, import_release, load_tokenizer, map_release_state, release_config

from fakes import refusal, tiny_tokenizer_config

# ------------------------------------------------------- the released file, per docs/papers/alitok-release.md §6


def release_shapes(
    enc=768, enc_depth=12, dec=1024, dec_depth=24, patch=16, codes=4096, dim=32, prefix=17, grid=16, buffer=32, mlp=4
):
    """Name -> shape of the released tokenizer state dict (the document's table, blocks expanded)."""
    seq = prefix + grid * grid
    shapes = {
        "latent_tokens": (seq, enc),
        "encoder.positional_embedding": (grid * grid, enc),
        "encoder.latent_token_positional_embedding": (seq, enc),
        "encoder.patch_embed.weight": (enc, 3, patch, patch),
        "encoder.patch_embed.bias": (enc,),
        "encoder.ln_pre.weight": (enc,),
        "encoder.ln_pre.bias": (enc,),
        "encoder.ln_post.weight": (enc,),
        "encoder.ln_post.bias": (enc,),
        "encoder.conv_out.weight": (dim, enc, 1, 1),
        "encoder.conv_out.bias": (dim,),
        "decoder.class_embedding": (buffer, dec),
        "decoder.latent_token_positional_embedding": (buffer + seq, dec),
        "decoder.decoder_embed.weight": (dec, dim),
        "decoder.decoder_embed.bias": (dec,),
        "decoder.ln_pre.weight": (dec,),
        "decoder.ln_pre.bias": (dec,),
        "decoder.ln_post.weight": (dec,),
        "decoder.ln_post.bias": (dec,),
        "decoder.ffn.0.weight": (patch * patch * 3, dec, 1, 1),
        "decoder.ffn.0.bias": (patch * patch * 3,),
        "decoder.conv_out.weight": (3, 3, 1, 1),
        "decoder.conv_out.bias": (3,),
        "quantize.embedding.weight": (codes, dim),
    }
    for part, w, depth in (("encoder", enc, enc_depth), ("decoder", dec, dec_depth)):
        for i in range(depth):
            b = f"{part}.transformer.{i}."
            shapes.update(
                {
                    b + "ln_1.weight": (w,),
                    b + "ln_1.bias": (w,),
                    b + "attn.in_proj.weight": (3 * w, w),
                    b + "attn.in_proj.bias": (3 * w,),
                    b + "attn.out_proj.weight": (w, w),
                    b + "attn.out_proj.bias": (w,),
                    b + "ln_2.weight": (w,),
                    b + "ln_2.bias": (w,),
                    b + "mlp.c_fc.weight": (mlp * w, w),
                    b + "mlp.c_fc.bias": (mlp * w,),
                    b + "mlp.c_proj.weight": (w, mlp * w),
                    b + "mlp.c_proj.bias": (w,),
                }
            )
    return shapes


def meta_state(shapes):
    return {k: torch.empty(s, device="meta") for k, s in shapes.items()}


def test_full_release_mapping_on_meta():
    shapes = release_shapes()
    assert len(shapes) == 456
    assert abs(sum(math.prod(s) for s in shapes.values()) / 1e6 - 389.90) < 0.005
    mapped = map_release_state(meta_state(shapes), release_config())
    with torch.device("meta"):
        ours = Tokenizer(release_config(), stage=2)
    params = dict(ours.named_parameters())
    assert set(mapped) == set(params)  # every released tensor used, every parameter filled
    for name, value in mapped.items():
        assert value.shape == params[name].shape, name
    assert mapped["encoder.to_code.weight"].shape == (32, 768)
    assert mapped["decoder.pixel_head.proj.weight"].shape == (768, 1024)


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda s: s.pop("decoder.transformer.23.mlp.c_proj.bias"),
            "AliTok.pth: missing tensor decoder.transformer.23.mlp.c_proj.bias (expected shape (1024,))",
        ),
        (
            lambda s: s.update({"decoder.ffn_aux.0.weight": torch.empty(768, 1024, 1, 1, device="meta")}),
            "AliTok.pth: unexpected tensor decoder.ffn_aux.0.weight; it has no counterpart in the tokenizer",
        ),
        (
            lambda s: s.update({"decoder.ffn.0.weight": torch.empty(768, 512, 1, 1, device="meta")}),
            "AliTok.pth: decoder.ffn.0.weight has shape (768, 512, 1, 1), expected (768, 1024, 1, 1)",
        ),
        (
            lambda s: s.update({"decoder.latent_token_positional_embedding": torch.empty(274, 1024, device="meta")}),
            "AliTok.pth: decoder.latent_token_positional_embedding has shape (274, 1024), expected (305, 1024)",
        ),
        (
            lambda s: s.update({"encoder.transformer.12.ln_1.weight": torch.empty(768, device="meta")}),
            "AliTok.pth: unexpected tensor encoder.transformer.12.ln_1.weight; it has no counterpart in the tokenizer",
        ),
    ],
)
def test_strict_mapping_errors(edit, message):
    state = meta_state(release_shapes())
    edit(state)
    assert refusal(lambda: map_release_state(state, release_config())) == message


# ---------------------------------------------------------------- values at reduced widths, real 256/16 geometry

SMALL = tiny_tokenizer_config(256, 16, enc_width=64, dec_width=96, dec_heads=4, buffer_tokens=32)


def random_release(seed=0):
    """Random released-format weights at O(1) scale, so LN gains, biases and positions all matter."""
    g = torch.Generator().manual_seed(seed)
    shapes = release_shapes(enc=64, enc_depth=2, dec=96, dec_depth=2, codes=64, dim=8)
    state = {}
    for name, shape in shapes.items():
        x = torch.randn(shape, generator=g)
        if name.endswith("weight") and len(shape) >= 2 and "embedding" not in name:
            x = x / math.sqrt(math.prod(shape[1:]))
        elif name.endswith("weight") and ".ln_" in name:
            x = 1 + 0.2 * x
        elif name.endswith("bias"):
            x = 0.1 * x
        state[name] = x
    return state


def ref_ln(x, w, b):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + 1e-5) * w + b


def ref_block(x, s, p, heads):
    """§1.2 with explicit softmax attention; f = t·D + n·hd + d in the packed in-projection."""
    B, L, D = x.shape
    hd = D // heads
    h = ref_ln(x, s[p + "ln_1.weight"], s[p + "ln_1.bias"])
    qkv = h @ s[p + "attn.in_proj.weight"].T + s[p + "attn.in_proj.bias"]
    q, k, v = (qkv[..., t * D : (t + 1) * D].reshape(B, L, heads, hd).transpose(1, 2) for t in range(3))
    att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd), dim=-1) @ v
    x = x + att.transpose(1, 2).reshape(B, L, D) @ s[p + "attn.out_proj.weight"].T + s[p + "attn.out_proj.bias"]
    h = ref_ln(x, s[p + "ln_2.weight"], s[p + "ln_2.bias"]) @ s[p + "mlp.c_fc.weight"].T + s[p + "mlp.c_fc.bias"]
    h = 0.5 * h * (1 + torch.erf(h / math.sqrt(2)))
    return x + h @ s[p + "mlp.c_proj.weight"].T + s[p + "mlp.c_proj.bias"]


def ref_encode(img, s, heads=2, depth=2):
    B, P = img.shape[0], 16
    G = img.shape[-1] // P
    # patch p = G·gh + gw, flattened in (c, a, b) order
    patches = img.reshape(B, 3, G, P, G, P).permute(0, 2, 4, 1, 3, 5).reshape(B, G * G, 3 * P * P)
    W = s["encoder.patch_embed.weight"]
    tok = patches @ W.reshape(W.shape[0], -1).T + s["encoder.patch_embed.bias"] + s["encoder.positional_embedding"]
    lat = (s["latent_tokens"] + s["encoder.latent_token_positional_embedding"]).expand(B, -1, -1)
    x = ref_ln(torch.cat([tok, lat], 1), s["encoder.ln_pre.weight"], s["encoder.ln_pre.bias"])
    for i in range(depth):
        x = ref_block(x, s, f"encoder.transformer.{i}.", heads)
    x = ref_ln(x[:, G * G :], s["encoder.ln_post.weight"], s["encoder.ln_post.bias"])
    Wc = s["encoder.conv_out.weight"]
    return x @ Wc.reshape(Wc.shape[0], -1).T + s["encoder.conv_out.bias"]


def ref_quantize(z, s):
    E = s["quantize.embedding.weight"]
    zf = z.reshape(-1, z.shape[-1])
    d = (zf.pow(2).sum(1, keepdim=True) + E.pow(2).sum(1)) - 2 * torch.einsum("bd,dn->bn", zf, E.T)
    return d.argmin(1).reshape(z.shape[:2])


def ref_decode(idx, s, heads=4, depth=2):
    E = s["quantize.embedding.weight"]
    u = E[idx] @ s["decoder.decoder_embed.weight"].T + s["decoder.decoder_embed.bias"]
    B = u.shape[0]
    x = (
        torch.cat([s["decoder.class_embedding"].expand(B, -1, -1), u], 1)
        + s["decoder.latent_token_positional_embedding"]
    )
    assert x.shape[1] == 305
    x = ref_ln(x, s["decoder.ln_pre.weight"], s["decoder.ln_pre.bias"])
    for i in range(depth):
        x = ref_block(x, s, f"decoder.transformer.{i}.", heads)
    x = ref_ln(x[:, 49:], s["decoder.ln_post.weight"], s["decoder.ln_post.bias"])  # rows 49..304 = codes 17..272
    Wf = s["decoder.ffn.0.weight"]
    v = x @ Wf.reshape(Wf.shape[0], -1).T + s["decoder.ffn.0.bias"]  # (B, 256, 768)
    # pre[c, 16 gh + p1, 16 gw + p2] = v[16 gh + gw, 48 p1 + 3 p2 + c]
    pre = v.reshape(B, 16, 16, 16, 16, 3).permute(0, 5, 1, 3, 2, 4).reshape(B, 3, 256, 256)
    mix = torch.einsum("oc,bchw->bohw", s["decoder.conv_out.weight"][:, :, 0, 0], pre)
    return torch.sigmoid(mix + s["decoder.conv_out.bias"].view(1, 3, 1, 1))


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("release")
    state = random_release()
    src = tmp / "AliTok.pth"
    torch.save(state, src)
    summary = import_release(src, tmp / "tokenizer.pt", SMALL)
    return state, summary, tmp


def test_import_writes_project_checkpoint(imported):
    state, summary, tmp = imported
    ckpt = torch.load(tmp / "tokenizer.pt", map_location="cpu", weights_only=True)
    released_attention = {"encoder_attention": "bidirectional", "stage1_decoder": "causal"}
    assert (
        ckpt["format"] == "alitok-tokenizer/1"
        and ckpt["stage"] == 2
        and ckpt["config"] == asdict(SMALL) | released_attention
    )
    assert ckpt["source"]["file"] == "AliTok.pth" and len(ckpt["source"]["sha256"]) == 64
    assert summary["tensors"] == len(state) == 24 + 2 * 12 * 2
    assert summary["values"] == sum(v.numel() for v in state.values())
    model = load_tokenizer(tmp / "tokenizer.pt")
    assert not model.training and model.stage == 2 and model.config == SMALL
    torch.testing.assert_close(
        model.encoder.to_code.weight, state["encoder.conv_out.weight"][:, :, 0, 0], rtol=0, atol=0
    )


def test_imported_model_matches_plain_reference(imported):
    state, _, tmp = imported
    model = load_tokenizer(tmp / "tokenizer.pt")
    torch.manual_seed(1)
    x = torch.rand(2, 3, 256, 256)  # [0, 1], fed as is: no normalisation anywhere
    seen = []
    model.encoder.patch_embed.register_forward_hook(lambda m, inp, out: seen.append(inp[0]))
    with torch.no_grad():
        z = model.encoder(x, model.latent_tokens)
        z_q, idx, _ = model.encode(x)
        image = model.decode_tokens(idx)
        forward = model(x)
    assert seen[0] is x
    z_ref = ref_encode(x, state)
    torch.testing.assert_close(z, z_ref, rtol=0, atol=1e-5)
    idx_ref = ref_quantize(z_ref, state)
    assert torch.equal(idx, idx_ref) and idx.shape == (2, 273)
    torch.testing.assert_close(z_q, state["quantize.embedding.weight"][idx], rtol=0, atol=1e-6)
    image_ref = ref_decode(idx_ref, state)
    torch.testing.assert_close(image, image_ref, rtol=0, atol=1e-5)
    torch.testing.assert_close(forward["image"], image_ref, rtol=0, atol=1e-5)  # straight-through: ulp-close
    assert image.shape == (2, 3, 256, 256) and image.min() > 0 and image.max() < 1


def test_imported_quantizer_breaks_ties_to_first_index(imported):
    _, _, tmp = imported
    model = load_tokenizer(tmp / "tokenizer.pt")
    with torch.no_grad():
        model.quantizer.codebook[9] = model.quantizer.codebook[3]
        _, idx, _ = model.quantizer(model.quantizer.codebook[9].view(1, 1, -1).clone())
    assert idx.item() == 3


def test_import_unwraps_and_names_file_in_errors(tmp_path):
    state = random_release()
    src = tmp_path / "wrapped.pth"
    torch.save({"state_dict": state}, src)
    import_release(src, tmp_path / "a.pt", SMALL)
    state.pop("quantize.embedding.weight")
    bad = tmp_path / "AliTok_broken.pth"
    torch.save({"model": state}, bad)
    with pytest.raises(ReleaseError, match=r"^AliTok_broken.pth: missing tensor quantize.embedding.weight"):
        import_release(bad, tmp_path / "b.pt", SMALL)
    assert not (tmp_path / "b.pt").exists()
    # the default config is the released one: a reduced file is refused, naming its first mismatch
    torch.save(random_release(), src)
    with pytest.raises(
        ReleaseError, match=r"^wrapped.pth: latent_tokens has shape \(273, 64\), expected \(273, 768\)$"
    ):
        import_release(src, tmp_path / "c.pt")


def test_load_tokenizer_refuses_corrupt_and_foreign_files(imported, tmp_path):
    _, _, tmp = imported
    data = (tmp / "tokenizer.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ReleaseError, match="cut.pt: .* truncated, corrupt"):
        load_tokenizer(tmp_path / "cut.pt")
    torch.save(random_release(), tmp_path / "raw.pth")
    with pytest.raises(ReleaseError, match="raw.pth: not an alitok-tokenizer/1 checkpoint"):
        load_tokenizer(tmp_path / "raw.pth")
    with pytest.raises(ReleaseError, match="does not exist"):
        load_tokenizer(tmp_path / "missing.pt")
