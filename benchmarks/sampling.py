"""The sampler against the peers' own samplers, its step broken down, and its limit: one run, same weights.

    OFFICIAL_ALITOK_DIR=/path/to/ali-vilab/alitok LLAMAGEN_DIR=/path/to/FoundationVision/LlamaGen \\
        python benchmarks/sampling.py [--device cpu|cuda] [--rounds 3]

- Peers: the released AliTok `ARModel.generate` and LlamaGen's `generate`, imported from checkouts the user
  supplies (never vendored here). Each peer model is built by its own code at the benchmark's shape, and its
  weights are loaded into ours (AliTok's names are ours; LlamaGen's through `alitok.generator.release`'s map), so
  both samplers run the same network; a teacher-forced forward checks that the logits agree. Every row samples
  with classifier-free guidance at temperature 1, as the papers' speed tables do. A peer whose directory is
  not given is left out of the table.
- Timing: our sampler, the peer's and the limit probe run in turn, `--rounds` times after a warm-up each; each
  ratio (ours / peer, ours / probe, in images/s) is taken within a round, and its median and range over the rounds
  are printed: on a shared machine the same row moves by tens of per cent between runs.
- The limit probe: the bare forward of the same steps (`model.step` over the same tokens with the same static
  cache, nothing else). `ours / probe` says how close the sampler is to its own limit. Breakdown of our step: the
  probe, the noise (`Noise.gumbel`), the pick, the guidance mix; the rest is Python and bookkeeping.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from peak import sync

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from alitok.generator import release  # noqa: E402
from alitok.generator.sampling import Noise, generate, guidance_scale, pick  # noqa: E402
from alitok.models.generator import Generator, GeneratorConfig, KVCache  # noqa: E402

# (width, depth, heads, batch): the rows; 64-dim heads
ALITOK_ROWS = [(256, 4, 4, 16), (256, 4, 4, 64), (512, 8, 8, 16), (768, 12, 12, 16)]
LLAMAGEN_ROWS = [(256, 6, 4, 16), (512, 8, 8, 16)]
ALITOK_GEOMETRY = {"vocab_size": 4096, "num_classes": 1000, "num_prefix": 17, "grid": 16}  # 273 tokens
LLAMAGEN_GEOMETRY = {"vocab_size": 16384, "num_classes": 1000, "num_prefix": 0, "grid": 16}  # 256 tokens
GUIDANCE = {"alitok": (4.0, 1.0), "llamagen": (2.0, None)}  # the release's ramp; LlamaGen's constant CFG


class _Config(dict):
    """The attribute access and .get() the released AliTok code reads its OmegaConf config with."""

    __getattr__ = dict.__getitem__


def _config(tree: dict) -> _Config:
    return _Config({k: _config(v) if isinstance(v, dict) else v for k, v in tree.items()})


def official_alitok(root: str, width: int, depth: int, heads: int):
    """The released ARModel at this shape (its 17 + 16x16 geometry), dropout off, a non-zero head."""
    sys.path.insert(0, root)
    from modeling.ar import ARModel

    gen = {"hidden_size": width, "num_hidden_layers": depth, "num_attention_heads": heads, "dropout": 0.0,
           "attn_drop": 0.0, "tok_dropout": 0.0, "image_seq_len": 273, "condition_num_classes": 1000}  # fmt: skip
    torch.manual_seed(0)
    model = ARModel(_config({"model": {"vq_model": {"codebook_size": 4096}, "generator": gen}})).eval()
    torch.nn.init.normal_(model.output.weight, std=0.02)
    ours = Generator(GeneratorConfig(arch="alitok", width=width, depth=depth, heads=heads, **ALITOK_GEOMETRY))
    ours.load_state_dict(model.state_dict(), strict=True)  # the release's names are ours
    labels = torch.arange(4)
    codes = torch.randint(0, 4096, (4, 273))

    def theirs(labels, guidance, power):
        return model.generate(labels, guidance_scale=guidance, randomize_temperature=1.0, guidance_scale_pow=power)

    with torch.no_grad():
        same = model.forward_fn(codes, model.preprocess_condition(labels.clone()))[:, :-1]
        agree = (same - ours.eval()(labels, codes)).abs().max().item()
    return ours, theirs, agree


def official_llamagen(root: str, width: int, depth: int, heads: int):
    """LlamaGen's c2i GPT at this shape, dropout off; `generate` from its own module."""
    for name in [m for m in sys.modules if m == "utils" or m.startswith("utils.")]:
        del sys.modules[name]  # LlamaGen's utils/ package, not another checkout's
    sys.path.insert(0, root)
    from autoregressive.models.generate import generate as llamagen_generate
    from autoregressive.models.gpt import ModelArgs, Transformer

    args = ModelArgs(dim=width, n_layer=depth, n_head=heads, vocab_size=16384, block_size=256, cls_token_num=1,
                     token_dropout_p=0.0, resid_dropout_p=0.0, ffn_dropout_p=0.0)  # fmt: skip
    torch.manual_seed(0)
    model = Transformer(args).eval()
    torch.nn.init.normal_(model.output.weight, std=0.02)
    cfg = GeneratorConfig(arch="llamagen", width=width, depth=depth, heads=heads, **LLAMAGEN_GEOMETRY)
    ours = Generator(cfg)
    ours.load_state_dict(release.map_llamagen_state(model.state_dict(), cfg, "benchmark"), strict=True)

    def theirs(labels, guidance, power):
        return llamagen_generate(model, labels, 256, cfg_scale=guidance, temperature=1.0, top_k=0, top_p=1.0)

    labels, codes = torch.arange(4), torch.randint(0, 16384, (4, 256))
    model.cls_embedding.dropout_prob = 0.0  # its null row stays; no label is dropped in the check below
    with torch.no_grad():  # its teacher-forced path is its training mode (every dropout is off here)
        same = model.train()(codes[:, :-1], labels)[0]
        agree = (same - ours.eval()(labels, codes)).abs().max().item()
    model.eval()
    return ours, theirs, agree


def probe(model: Generator, lab: torch.Tensor, codes: torch.Tensor) -> None:
    """The limit: the model's decoding steps alone, on the same tokens and cache, nothing around them."""
    cfg = model.config
    param = next(model.parameters())
    cache = KVCache(cfg, lab.shape[0], cfg.seq_len, param.device, param.dtype)
    with torch.no_grad():
        model.step(None, lab, cache)
        for t in range(1, cfg.seq_len):
            model.step(codes[:, t - 1 : t], None, cache)


def timed(fn, device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def breakdown(model: Generator, labels, ids, guidance, power, device) -> dict:
    """Seconds per image-batch of the parts of our sampler around the forward, each run alone over the same steps."""
    cfg, T = model.config, model.config.seq_len
    logits = torch.randn(labels.shape[0], cfg.vocab_size, device=device)
    noise = Noise(0, ids, cfg.vocab_size)
    g = noise.gumbel(0)
    scales = [guidance_scale(t, T, guidance, power) for t in range(T)]
    parts = {
        "noise (hash, Gumbel)": lambda: [noise.gumbel(t) for t in range(T)],
        "pick": lambda: [pick(logits, g, 1.0) for _ in range(T)],
        "guidance mix": lambda: [logits + (logits - logits) * scales[t] for t in range(T)],
    }
    with torch.no_grad():
        return {name: timed(fn, device) for name, fn in parts.items()}


def row(peer: str, make, width, depth, heads, batch, device, rounds) -> dict:
    """Our sampler, the peer's and the limit probe, timed in turn every round, so a slow spell of a shared machine
    falls on all three; each ratio is taken within a round (paired), and its median and range over the rounds kept.
    """
    ours, theirs, agree = make(width, depth, heads)
    ours = ours.to(device).eval()
    guidance, power = GUIDANCE[peer]
    labels, ids = torch.arange(batch, device=device) % 1000, torch.arange(batch, device=device)
    lab = torch.cat([labels, torch.full_like(labels, ours.config.null_class)]) if guidance != 1.0 else labels
    with torch.no_grad():
        mine = lambda: generate(ours, labels, ids, seed=0, guidance=guidance, power=power)  # noqa: E731
        both = mine().repeat(lab.shape[0] // batch, 1)  # the tokens our sampler draws, fed to the bare forward
        runs = {
            "ours": mine,
            "peer": lambda: theirs(labels, guidance, power),
            "probe": lambda: probe(ours, lab, both),
        }
        for fn in runs.values():  # warm-up
            fn()
        times = {name: [] for name in runs}
        for _ in range(rounds):
            for name, fn in runs.items():
                times[name].append(timed(fn, device))
    seconds = {name: statistics.median(t) for name, t in times.items()}
    vs_peer = [p / o for o, p in zip(times["ours"], times["peer"])]
    of_probe = [b / o for o, b in zip(times["ours"], times["probe"])]
    return {
        "peer": peer, "shape": f"{width} / {depth} / {heads}", "batch": batch, "seconds": seconds,
        "ours": batch / seconds["ours"], "theirs": batch / seconds["peer"], "probe": batch / seconds["probe"],
        "ratio": (statistics.median(vs_peer), min(vs_peer), max(vs_peer)),
        "of_probe": (statistics.median(of_probe), min(of_probe), max(of_probe)),
        "parts": breakdown(ours, labels, ids, guidance, power, device), "agree": agree,
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--alitok-dir", default=os.environ.get("OFFICIAL_ALITOK_DIR"))
    ap.add_argument("--llamagen-dir", default=os.environ.get("LLAMAGEN_DIR"))
    args = ap.parse_args()
    device = torch.device(args.device)
    where = torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or platform.machine()
    makers = []
    if args.alitok_dir:
        alitok = lambda w, d, h: official_alitok(args.alitok_dir, w, d, h)  # noqa: E731
        makers += [("alitok", alitok, r) for r in ALITOK_ROWS]
    if args.llamagen_dir:
        llamagen = lambda w, d, h: official_llamagen(args.llamagen_dir, w, d, h)  # noqa: E731
        makers += [("llamagen", llamagen, r) for r in LLAMAGEN_ROWS]
    print(f"# Sampling against the peers, {device.type} ({where}, {torch.get_num_threads()} threads), torch "
          f"{torch.__version__}; median of {args.rounds} alternating rounds, guidance on, temperature 1")  # fmt: skip
    print()
    print("| peer | width / depth / heads | batch | ours (images/s) | peer's own sampler | ours / peer [range] "
          "| limit probe | ours / probe [range] | logits agree (max diff) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|", flush=True)
    rows = []
    for peer, make, shape in makers:  # each row printed as it is measured: a long run shows its progress
        r = row(peer, make, *shape, device, args.rounds)
        rows.append(r)
        agree = "–" if r["agree"] is None else f"{r['agree']:.1e}"
        (vp, vp_lo, vp_hi), (op, op_lo, op_hi) = r["ratio"], r["of_probe"]
        print(f"| {r['peer']} | {r['shape']} | {r['batch']} | {r['ours']:.2f} | {r['theirs']:.2f} | "
              f"**{vp:.2f}x** [{vp_lo:.2f}, {vp_hi:.2f}] | {r['probe']:.2f} | **{op:.0%}** [{op_lo:.0%}, {op_hi:.0%}] "
              f"| {agree} |", flush=True)  # fmt: skip
    print()
    print("## Where a step's time goes (ours, ms per decoding step)")
    print()
    print(
        "The sampler and the bare forward are the rows' medians; noise, pick and guidance mix are each run alone "
        "over the same steps; the rest (the sampler less all of them) is Python and bookkeeping."
    )
    print()
    names = list(rows[0]["parts"]) if rows else []
    print("| peer | width / depth / heads | batch | sampler | forward (limit probe) | "
          + " | ".join(names) + " | rest |")  # fmt: skip
    print("|---|---|---|---|---|" + "---|" * (len(names) + 1))
    for r in rows:
        steps = 273 if r["peer"] == "alitok" else 256
        ms = {n: 1000 * v / steps for n, v in r["parts"].items()}
        sampler, forward = (1000 * r["seconds"][k] / steps for k in ("ours", "probe"))
        rest = sampler - forward - sum(ms.values())
        print(f"| {r['peer']} | {r['shape']} | {r['batch']} | {sampler:.2f} | {forward:.2f} | "
              + " | ".join(f"{ms[n]:.2f}" for n in names) + f" | {rest:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
