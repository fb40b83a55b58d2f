"""The tokenizer model: geometry, parameter count at paper scale, decoder causality, VQ, pixel head, stage 2 init."""

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from alitok.models.tokenizer import PixelHead, Tokenizer, TokenizerConfig, VectorQuantizer, prefix_target
from alitok.tokenizer.release import release_config

from fakes import tiny_tokenizer_config


def small(**overrides) -> TokenizerConfig:
    return tiny_tokenizer_config(**overrides)


def paper(**overrides) -> TokenizerConfig:
    """The released geometry (what AliTok.pth holds), with overrides; the counts below check it independently."""
    return replace(release_config(), **overrides)


def scramble(model, scale=0.3):
    """Every parameter O(1)-random: at the 0.02 init, cross-token effects are too small to test causality."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            is_norm_gain = ".ln_" in name and name.endswith(".weight")
            p.copy_(float(is_norm_gain) + scale * torch.randn_like(p))
    return model


def scrambled_decoder_case(stage, batch):
    """Seeded: small()'s tokenizer at `stage` with scrambled weights (eval mode), and `batch` random latent maps."""
    torch.manual_seed(0)
    cfg = small()
    model = scramble(Tokenizer(cfg, stage=stage)).eval()
    return cfg, model, torch.randn(batch, cfg.seq_len, cfg.code_dim)


def patch_of(image, k, cfg):
    p, (gh, gw) = cfg.patch_size, divmod(k, cfg.grid)
    return image[:, :, gh * p : (gh + 1) * p, gw * p : (gw + 1) * p]


# ------------------------------------------------------------------------------------------------ geometry


def test_geometry_released():
    cfg = paper()
    assert (cfg.grid, cfg.num_prefix, cfg.num_image_tokens, cfg.seq_len) == (16, 17, 256, 273)
    assert paper(prefix="grid").num_prefix == 16 and paper(prefix="grid").seq_len == 272
    assert paper(prefix="none").seq_len == 256


@pytest.mark.parametrize("patch, prefix, tokens", [(32, 17, 256), (16, 33, 1024)])
def test_geometry_512_choices_build(patch, prefix, tokens):
    cfg = paper(image_size=512, patch_size=patch)
    assert (cfg.num_prefix, cfg.num_image_tokens) == (prefix, tokens)
    with torch.device("meta"):
        model = Tokenizer(cfg, stage=2)
    assert model.latent_tokens.shape == (prefix + tokens, 768)
    assert model.decoder.pos.shape == (32 + prefix + tokens, 1024)
    assert model.encoder.patch_embed.weight.shape == (768, 3, patch, patch)
    assert model.decoder.pixel_head.proj.weight.shape == (patch * patch * 3, 1024)


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(image_size=250), "not divisible by patch_size"),
        (dict(enc_width=770), "enc_width 770 is not divisible by enc_heads"),
        (dict(dec_heads=15), "dec_width 1024 is not divisible by dec_heads 15"),
        (dict(prefix="row"), "prefix must be one of"),
        (dict(buffer_tokens=-1), "buffer_tokens"),
    ],
)
def test_config_validation(bad, match):
    with pytest.raises(ValueError, match=match):
        paper(**bad)


def test_paper_parameter_count_on_meta():
    """Stage 2 holds exactly what AliTok.pth holds: 456 tensors, 389.90M values (no buffers in the release)."""
    with torch.device("meta"):
        stage2 = Tokenizer(paper(), stage=2)
        stage1 = Tokenizer(paper(), stage=1)
    params = list(stage2.parameters())
    assert len(params) == 456
    assert abs(sum(p.numel() for p in params) / 1e6 - 389.90) < 0.005
    assert sum(p.numel() for p in stage2.encoder.parameters()) == 86_079_008
    # stage 1: one start token instead of 32, 274 positions instead of 305, plus the auxiliary head
    diff = sum(p.numel() for p in stage1.parameters()) - sum(p.numel() for p in params)
    assert diff == (1 - 32) * 1024 + (274 - 305) * 1024 + (768 * 1024 + 768 + 9 + 3)


# ------------------------------------------------------------------------------------------------ decoder


def test_stage1_decoder_is_causal():
    cfg, model, z = scrambled_decoder_case(stage=1, batch=2)
    with torch.no_grad():
        image, aux = model.decoder(z)
        for k in (0, 5, cfg.num_image_tokens - 1):
            z2 = z.clone()
            z2[:, cfg.num_prefix + k] += 1.0
            image2, aux2 = model.decoder(z2)
            for j in range(k):
                torch.testing.assert_close(patch_of(image2, j, cfg), patch_of(image, j, cfg), rtol=0, atol=1e-6)
            assert (patch_of(image2, k, cfg) - patch_of(image, k, cfg)).abs().max() > 1e-3
            torch.testing.assert_close(aux2, aux, rtol=0, atol=1e-6)  # prefix outputs never see image latents
        # a prefix latent feeds every patch
        z3 = z.clone()
        z3[:, 0] += 1.0
        image3, aux3 = model.decoder(z3)
        assert (patch_of(image3, 0, cfg) - patch_of(image, 0, cfg)).abs().max() > 1e-3
        assert (aux3 - aux).abs().max() > 1e-3


def test_stage2_decoder_is_bidirectional():
    cfg, model, z = scrambled_decoder_case(stage=2, batch=1)
    with torch.no_grad():
        image, aux = model.decoder(z)
        z2 = z.clone()
        z2[:, -1] += 1.0
        image2, _ = model.decoder(z2)
    assert aux is None
    assert (patch_of(image2, 0, cfg) - patch_of(image, 0, cfg)).abs().max() > 1e-3


def test_forward_shapes_and_aux_target():
    torch.manual_seed(0)
    for prefix, stage in (("grid_plus_one", 1), ("grid", 1), ("none", 1), ("grid_plus_one", 2)):
        cfg = small(prefix=prefix)
        model = Tokenizer(cfg, stage=stage)
        x = torch.rand(2, 3, 32, 32)
        out = model(x)
        assert out["image"].shape == x.shape and out["indices"].shape == (2, cfg.seq_len)
        assert out["z"].shape == (2, cfg.seq_len, cfg.code_dim)
        if stage == 1 and cfg.num_prefix:
            target = prefix_target(x, cfg)
            assert out["aux"].shape == target.shape == (2, 3, 8, 8 * cfg.num_prefix)
        else:
            assert out["aux"] is None
    x = torch.rand(1, 3, 32, 32)
    strip = prefix_target(x, small())
    torch.testing.assert_close(strip[..., :8], x[:, :, :8, :8])
    torch.testing.assert_close(strip[..., 8:], x[:, :, :8, :])
    torch.testing.assert_close(prefix_target(x, small(prefix="grid")), x[:, :, :8, :])
    with pytest.raises(ValueError):
        prefix_target(x, small(prefix="none"))


def test_decode_tokens_uses_exact_codebook_rows():
    torch.manual_seed(0)
    cfg = small()
    model = Tokenizer(cfg, stage=2).eval()
    idx = torch.randint(0, cfg.codebook_size, (2, cfg.seq_len))
    with torch.no_grad():
        torch.testing.assert_close(
            model.decode_tokens(idx), model.decode(model.quantizer.codebook[idx]), rtol=0, atol=0
        )


# ------------------------------------------------------------------------------------------------ quantizer


def test_vq_expanded_distance_and_first_index_ties():
    vq = VectorQuantizer(4, 2)
    with torch.no_grad():
        vq.codebook.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [-1.0, 0.0]]))
    z = torch.tensor([[[0.0, 2.0], [0.5, 0.5], [3.0, -1.0]]])  # row 1: tie between 0, 1 and 2
    d = vq.distances(z[0])
    manual = (z[0].pow(2).sum(1, keepdim=True) + vq.codebook.pow(2).sum(1)) - 2 * z[0] @ vq.codebook.t()
    torch.testing.assert_close(d, manual, rtol=0, atol=0)
    torch.testing.assert_close(d, torch.cdist(z[0], vq.codebook) ** 2, rtol=0, atol=1e-5)
    _, idx, _ = vq(z)
    assert idx.tolist() == [[1, 0, 0]]


def test_vq_losses_and_straight_through():
    torch.manual_seed(0)
    vq = VectorQuantizer(16, 4)
    z = torch.randn(2, 5, 4, requires_grad=True)
    z_q, idx, losses = vq(z)
    e = vq.codebook[idx]
    torch.testing.assert_close(z_q, e, rtol=0, atol=1e-6)
    expected = ((z - e) ** 2).mean()
    torch.testing.assert_close(losses["commitment"], expected)
    torch.testing.assert_close(losses["codebook"], expected)
    # commitment pulls only the encoder side, codebook only the codes
    g_z, g_e = torch.autograd.grad(losses["commitment"], [z, vq.codebook], allow_unused=True, materialize_grads=True)
    assert g_z.abs().sum() > 0 and g_e.abs().sum() == 0
    g_z, g_e = torch.autograd.grad(losses["codebook"], [z, vq.codebook], allow_unused=True, materialize_grads=True)
    assert g_z.abs().sum() == 0 and g_e.abs().sum() > 0
    # straight through: d z_q / d z is the identity
    (g,) = torch.autograd.grad(z_q.sum(), z)
    torch.testing.assert_close(g, torch.ones_like(z))


def test_straight_through_reaches_encoder():
    torch.manual_seed(0)
    model = Tokenizer(small(), stage=1)
    out = model(torch.rand(2, 3, 32, 32))
    (out["image"].mean() + out["aux"].mean()).backward()
    assert model.encoder.patch_embed.weight.grad.abs().sum() > 0
    assert model.latent_tokens.grad.abs().sum() > 0
    assert model.quantizer.codebook.grad is None  # only the codebook loss trains the codes


def test_revival_moves_dead_code_and_keeps_used_code():
    vq = VectorQuantizer(3, 2, decay=0.99)
    with torch.no_grad():
        vq.codebook.copy_(torch.tensor([[0.0, 0.0], [10.0, 10.0], [-10.0, 10.0]]))
        vq.usage.copy_(torch.tensor([1.0, 0.0, 0.0]))
    feats = torch.tensor([[0.1, 0.0], [0.0, 0.2], [0.3, 0.3], [-0.2, 0.1]])
    before = vq.codebook.detach().clone()
    vq.revive(feats)
    after = vq.codebook.detach()
    torch.testing.assert_close(after[0], before[0], rtol=0, atol=0)  # well used: alpha = exp(-huge) = 0
    alpha = torch.exp(torch.tensor(-1e-3))  # dead: usage stays 0
    torch.testing.assert_close(after[1], before[1] * (1 - alpha) + feats[2] * alpha)  # closest to (10, 10)
    torch.testing.assert_close(after[2], before[2] * (1 - alpha) + feats[3] * alpha)  # closest to (-10, 10)
    torch.testing.assert_close(vq.usage, torch.tensor([1.0, 0.0, 0.0]))  # every feature chose code 0
    stats = vq.usage_stats()
    assert stats["codebook_used"] == pytest.approx(1 / 3) and stats["codebook_perplexity"] == pytest.approx(1.0)


def test_revival_chunks_match_one_pass():
    torch.manual_seed(0)
    a, b = VectorQuantizer(32, 4), VectorQuantizer(32, 4)
    b.load_state_dict(a.state_dict())
    feats = torch.randn(100, 4) * 0.05
    a.revive(feats)
    b.revive(feats, chunk=7)
    torch.testing.assert_close(a.codebook, b.codebook, rtol=0, atol=0)
    torch.testing.assert_close(a.usage, b.usage, rtol=0, atol=0)


# ------------------------------------------------------------------------------------------------ pixel head


@pytest.mark.parametrize("patch", [16, 4])
def test_pixel_head_layout_channel_fastest(patch):
    """A single-token probe: channel 3·patch·p1 + 3·p2 + c (48·p1 + 3·p2 + c at patch 16) lands at pixel (p1, p2),
    channel c."""
    head = PixelHead(width=2, patch=patch)
    n = patch * patch * 3
    with torch.no_grad():
        head.proj.weight.zero_()
        head.proj.bias.copy_(torch.linspace(-4, 4, n))
        head.colour.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
        head.colour.bias.zero_()
        pre = torch.logit(head(torch.zeros(1, 1, 2), 1, 1)[0].double())
    v = head.proj.bias.double()
    for p1 in range(patch):
        for p2 in range(patch):
            for c in range(3):
                assert abs(pre[c, p1, p2] - v[3 * patch * p1 + 3 * p2 + c]) < 1e-4
    # one-hot probe at channel 48·2 + 3·5 + 1 (patch 16) / analogous at patch 4
    j = 3 * patch * 2 + 3 * 1 + 1
    with torch.no_grad():
        head.proj.bias.zero_()
        head.proj.bias[j] = 10.0
        out = head(torch.zeros(1, 1, 2), 1, 1)[0]
    assert (out > 0.5).nonzero().tolist() == [[1, 2, 1]]


def test_pixel_head_colour_mix_and_range():
    torch.manual_seed(0)
    head = PixelHead(width=8, patch=2)
    tokens = torch.randn(2, 4, 8)
    out = head(tokens, 2, 2)
    v = head.proj(tokens)  # (2, 4, 12)
    pre = torch.zeros(2, 3, 4, 4)
    for i in range(4):
        gh, gw = divmod(i, 2)
        for p1 in range(2):
            for p2 in range(2):
                for c in range(3):
                    pre[:, c, 2 * gh + p1, 2 * gw + p2] = v[:, i, 6 * p1 + 3 * p2 + c]
    mixed = torch.einsum("oc,bchw->bohw", head.colour.weight[:, :, 0, 0], pre) + head.colour.bias.view(1, 3, 1, 1)
    torch.testing.assert_close(out, torch.sigmoid(mixed))
    model = Tokenizer(small(), stage=2)
    image = model(torch.rand(2, 3, 32, 32))["image"]
    assert image.min() > 0 and image.max() < 1


# ------------------------------------------------------------------------------------------------ stage 2 init


def test_init_stage2_from_copies_matching_and_freezes():
    torch.manual_seed(0)
    cfg = small()
    stage1, stage2 = Tokenizer(cfg, stage=1), Tokenizer(cfg, stage=2)
    fresh_before = {k: v.clone() for k, v in stage2.state_dict().items()}
    report = stage2.init_stage2_from(stage1.state_dict())
    s1, s2 = stage1.state_dict(), stage2.state_dict()
    assert set(report["fresh"]) == {"decoder.lead_tokens", "decoder.pos"}  # (1 vs 3, W) and (1+21 vs 3+21, W)
    assert set(report["unused"]) == {"decoder.lead_tokens", "decoder.pos"} | {k for k in s1 if ".aux_head." in k}
    assert set(report["copied"]) | set(report["fresh"]) == set(s2)
    for k in report["copied"]:
        torch.testing.assert_close(s2[k], s1[k], rtol=0, atol=0)
    for k in report["fresh"]:
        torch.testing.assert_close(s2[k], fresh_before[k], rtol=0, atol=0)
    frozen = [p for m in (stage2.encoder, stage2.quantizer) for p in m.parameters()] + [stage2.latent_tokens]
    assert not any(p.requires_grad for p in frozen)
    assert all(p.requires_grad for p in stage2.decoder.parameters())
    trainable = {id(p) for p in stage2.trainable_parameters()}
    assert trainable == {id(p) for p in stage2.decoder.parameters()}
    # a stage-2 step leaves the codes alone
    out = stage2(torch.rand(2, 3, 32, 32))
    F.mse_loss(out["image"], torch.rand(2, 3, 32, 32)).backward()
    assert stage2.encoder.patch_embed.weight.grad is None and stage2.quantizer.codebook.grad is None
    with pytest.raises(ValueError):
        stage1.init_stage2_from(s1)


def test_stage2_can_take_the_code_positions_from_stage1():
    torch.manual_seed(0)
    cfg = small()
    stage1, stage2 = Tokenizer(cfg, stage=1), Tokenizer(cfg, stage=2)
    fresh = stage2.decoder.pos.detach().clone()
    stage2.init_stage2_from(stage1.state_dict(), code_positions="from_stage1")
    n = cfg.seq_len
    assert torch.equal(stage2.decoder.pos[-n:], stage1.decoder.pos[-n:])  # codes: stage 1's rows
    assert torch.equal(stage2.decoder.pos[:-n], fresh[:-n])  # buffer rows stay fresh
    with pytest.raises(ValueError, match="code_positions"):
        Tokenizer(cfg, stage=2).init_stage2_from(stage1.state_dict(), code_positions="copy")


def _revive_worker(rank, world, init_file, feats, out_dir):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.manual_seed(0)  # the same initial codebook on every rank, as DDP guarantees
    vq = VectorQuantizer(16, 4)
    vq.revive(feats.chunk(world)[rank])
    torch.save({"codebook": vq.codebook.detach(), "usage": vq.usage}, f"{out_dir}/rank{rank}.pt")
    dist.destroy_process_group()


def test_revival_under_distributed_equals_one_process(tmp_path):
    """Two gloo ranks with different features end with identical codebooks: those of one process on all features."""
    import torch.multiprocessing as mp

    torch.manual_seed(1)
    feats = torch.randn(40, 4) * 0.05
    mp.spawn(_revive_worker, args=(2, str(tmp_path / "store"), feats, str(tmp_path)), nprocs=2, join=True)
    torch.manual_seed(0)
    single = VectorQuantizer(16, 4)
    single.revive(feats)
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        torch.testing.assert_close(got["codebook"], single.codebook.detach(), rtol=0, atol=0)
        torch.testing.assert_close(got["usage"], single.usage, rtol=0, atol=0)
