"""The AR generator: paper sizes on the meta device, the release's numerics, KV cache, reproducible sampling."""

import math

import pytest
import torch

from alitok import config, geometry
from alitok.generator.sampling import filter_logits, generate, guidance_scale, sample_uniform
from alitok.models.generator import Generator, GeneratorConfig, KVCache, apply_rope, rope_table
from alitok.tokenizer.train import model_config


def paper_geometry(profile: str = "imagenet256") -> dict:
    return geometry.from_params(config.load("params.yaml", profile)).generator(1000)


@pytest.mark.parametrize(
    "arch,size,millions",
    [
        ("alitok", "B", 177.05),
        ("alitok", "L", 317.85),
        ("alitok", "XL", 662.14),  # docs/papers/alitok.md §2.1
        ("llamagen", "B", 110.89),
        ("llamagen", "L", 342.91),
        ("llamagen", "XL", 774.70),  # docs/papers/llamagen.md §2, 16384 codes
    ],
)
def test_paper_sizes_on_meta(arch, size, millions):
    geo = paper_geometry()
    if arch == "llamagen":  # LlamaGen VQ-16: 16384 codes, 16x16 grid, no prefix
        geo.update(vocab_size=16384, num_prefix=0)
    with torch.device("meta"):
        model = Generator(GeneratorConfig.named(arch, size, **geo))
    assert round(model.num_params() / 1e6, 2) == millions


def test_alitok_geometry_comes_from_the_tokenizer():
    g = paper_geometry()
    assert (g["num_prefix"], g["grid"], g["vocab_size"]) == (17, 16, 4096)
    cfg = GeneratorConfig.named("alitok", "B", **g)
    assert cfg.seq_len == 273 and cfg.ffn_hidden == 2048
    assert GeneratorConfig.named("alitok", "L", **g).ffn_hidden == 2816
    assert GeneratorConfig.named("alitok", "XL", **g).ffn_hidden == 3584
    with torch.device("meta"):
        model = Generator(cfg)
    assert model.embeddings.weight.shape == (5098, 768)  # 4096 + 1 + 1000 + 1
    assert cfg.class_id(torch.tensor([0, 999, 1000])).tolist() == [4097, 5096, 5097]


def test_rope_table_spot_values():
    """docs/papers/alitok-release.md §2.5, B (head dim 48)."""
    t = rope_table(GeneratorConfig.named("alitok", "B", **paper_geometry()))
    assert t.shape == (274, 24, 2) and t.dtype == torch.float32
    assert torch.equal(t[0], torch.zeros(24, 2))
    assert torch.equal(t[1], torch.stack([torch.ones(24), torch.zeros(24)], -1))  # prefix position 0: identity
    close = lambda a, angle: torch.allclose(a, torch.tensor([math.cos(angle), math.sin(angle)]), atol=1e-6)
    assert close(t[2, 0], 1.0)
    assert close(t[18, 0], 17.0) and close(t[18, 12], 17.0)
    assert torch.allclose(t[18, 0], torch.tensor([-0.27516, -0.96140]), atol=1e-5)
    assert close(t[19, 12], 18.0) and close(t[19, 0], 17.0)
    assert close(t[18 + 16, 0], 18.0) and close(t[18 + 16, 12], 17.0)  # second row, first column
    # the 2-D bands use every other 1-D frequency
    assert close(t[18, 1], 17 * 10000 ** (-4 / 48)) and close(t[2, 2], 10000 ** (-4 / 48))


def test_rope_pairs_are_interleaved():
    table = torch.zeros(1, 2, 2)
    table[0, 0] = torch.tensor([0.0, 1.0])  # pair 0 rotated by 90 degrees
    table[0, 1] = torch.tensor([1.0, 0.0])  # pair 1 unchanged
    x = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 1, 4)
    assert apply_rope(x, table).flatten().tolist() == [-2.0, 1.0, 3.0, 4.0]


def small(arch: str = "alitok") -> Generator:
    cfg = GeneratorConfig(arch=arch, width=32, depth=2, heads=2, vocab_size=20, num_classes=5, num_prefix=3, grid=3)
    torch.manual_seed(0)
    model = Generator(cfg)
    torch.nn.init.normal_(model.output.weight, std=0.5)  # the zero-initialised head would make every test trivial
    return model.eval()


@pytest.mark.parametrize("arch", ["alitok", "llamagen"])
def test_class_token_has_zero_query_and_key(arch):
    model = small(arch)
    attn = model.blocks[0].attn
    x = torch.randn(2, 6, 32)
    from einops import rearrange

    q, k, _ = rearrange(attn.qkv(x), "b l (t h d) -> t b h l d", t=3, h=2)
    if attn.q_norm is not None:
        q, k = attn.q_norm(q), attn.k_norm(k)
    q, k = apply_rope(q, model.rope[:6]), apply_rope(k, model.rope[:6])
    assert torch.equal(q[:, :, 0], torch.zeros_like(q[:, :, 0])) and torch.equal(
        k[:, :, 0], torch.zeros_like(k[:, :, 0])
    )
    assert q[:, :, 1:].abs().sum() > 0


def test_norm_eps_and_switches():
    a, ll = small("alitok"), small("llamagen")
    assert all(m.eps == 1e-5 for m in a.modules() if type(m).__name__ == "RMSNorm")
    assert a.blocks[0].attn.qkv.bias is not None and a.output.bias is not None and a.blocks[0].attn.q_norm is not None
    assert ll.blocks[0].attn.qkv.bias is None and ll.output.bias is None and ll.blocks[0].attn.q_norm is None
    assert ll.class_embeddings.weight.shape == (6, 32) and ll.embeddings.weight.shape == (20, 32)
    assert a.blocks[0].mlp.w1.bias is None


def test_guidance_schedule_matches_release():
    """docs/papers/alitok-release.md §2.7, at 273 steps."""
    facts = {
        (16.0, 1.8): {1: 1.0, 100: 1.9739, 136: 3.8159, 200: 10.1628, 272: 15.9984},
        (6.0, 0.7): {1: 1.0048, 100: 3.4615, 200: 5.5421, 272: 5.9999},
        (13.0, 1.4): {100: 2.6928, 200: 9.6712, 272: 12.9992},
    }
    for (g, p), values in facts.items():
        assert guidance_scale(0, 273, g, p) == 1.0
        for step, w in values.items():
            assert abs(guidance_scale(step, 273, g, p) - w) < 6e-5, (g, p, step)
    assert guidance_scale(100, 273, 2.0, None) == 2.0


def test_training_forward_is_causal():
    model = small()
    labels, codes = torch.tensor([1, 2]), torch.randint(0, 20, (2, 12))
    logits = model(labels, codes)
    assert logits.shape == (2, 12, 20)
    changed = codes.clone()
    changed[:, 5] = (changed[:, 5] + 1) % 20
    other = model(labels, changed)
    assert torch.equal(logits[:, :6], other[:, :6]) and not torch.allclose(logits[:, 6:], other[:, 6:])


@pytest.mark.parametrize("arch", ["alitok", "llamagen"])
def test_kv_cache_logits_equal_full_recompute(arch):
    model = small(arch)
    labels, codes = torch.tensor([0, 3, 5]), torch.randint(0, 20, (3, 12))
    full = model(labels, codes)
    cache = KVCache(model.config, 3, 12, "cpu", torch.float32)
    for t in range(12):
        step = model.step(codes[:, t - 1 : t] if t else None, None if t else labels, cache)
        torch.testing.assert_close(step, full[:, t], atol=1e-4, rtol=0)


def test_samples_do_not_depend_on_batching_or_world_size():
    model = small()
    labels = torch.arange(6) % 5
    ids = torch.arange(6)
    kw = dict(seed=7, guidance=3.0, power=1.0, temperature=1.0)
    whole = generate(model, labels, ids, **kw)
    assert whole.shape == (6, 12)
    for batch in (1, 4):  # one process, two batch sizes
        parts = [generate(model, labels[i : i + batch], ids[i : i + batch], **kw) for i in range(0, 6, batch)]
        assert torch.equal(torch.cat(parts), whole)
    for world in (2, 3):  # rank r takes samples r, r + W, ...: reassemble by global index
        got = torch.empty_like(whole)
        for rank in range(world):
            got[ids[rank::world]] = generate(model, labels[rank::world], ids[rank::world], **kw)
        assert torch.equal(got, whole)
    assert torch.equal(generate(model, labels, ids, kv_cache=False, **kw), whole)
    assert not torch.equal(generate(model, labels, ids, **(kw | {"seed": 8})), whole)


def test_gumbel_draws_follow_the_softmax():
    logits = torch.tensor([[0.0, 1.0, 2.0, -1.0]])
    probs = logits.softmax(-1)[0]
    n = 20000
    u = torch.cat([sample_uniform(0, torch.arange(n), 0, 4)])
    draws = (logits.double() - torch.log(-torch.log(u))).argmax(-1)
    freq = torch.bincount(draws, minlength=4).double() / n
    assert torch.allclose(freq, probs.double(), atol=0.015)
    assert sample_uniform(0, torch.arange(3), 1, 4).min() > 0 and sample_uniform(0, torch.arange(3), 1, 4).max() < 1


def test_top_k_and_top_p_filters():
    logits = torch.tensor([[1.0, 3.0, 2.0, 0.0]])
    assert torch.isinf(filter_logits(logits, top_k=2)).tolist() == [[True, False, False, True]]
    p = logits.softmax(-1)[0]  # 0.665, 0.245, 0.090, 0.032 in sorted order
    assert torch.isinf(filter_logits(logits, top_p=float(p[1]) - 0.01)).tolist() == [[True, False, True, True]]
    assert torch.isinf(filter_logits(logits, top_p=float(p[1] + p[2]) + 0.01)).tolist() == [[False, False, False, True]]
    assert not torch.isinf(filter_logits(logits)).any()


@pytest.mark.parametrize("profile", ["smoke", "tiny", "imagenet256", "imagenet512"])
def test_every_profile_builds_its_scales_on_meta(profile):
    from alitok.generator.config import model_config as generator_config
    from alitok.generator.runs import embedded_classes

    p = config.load("params.yaml", profile)
    tok = model_config(p)
    for scale in p["generator"]["scales"]:
        cfg = generator_config(p, scale, embedded_classes(p) or 1000)
        assert (cfg.num_prefix, cfg.grid, cfg.vocab_size) == (tok.num_prefix, tok.grid, tok.codebook_size)
        with torch.device("meta"):
            Generator(cfg)
    if profile.startswith("imagenet"):  # 512 keeps 17 + 256 tokens, so the same sizes
        with torch.device("meta"):
            counts = {s: round(Generator(generator_config(p, s, 1000)).num_params() / 1e6, 2) for s in ("B", "L", "XL")}
        assert counts == {"B": 177.05, "L": 317.85, "XL": 662.14}
