"""AR generator: training MFU and KV-cache sampling speed-up, each measured side by side in one run.

(1) Training: model FLOP/s over the matmul peak measured in the same process. Model FLOPs follow nanoGPT's
    convention, 6N + 12·L·T·d per token with N the parameters without embedding tables, for a full step
    (forward, backward, AdamW). Goal on 2 CPU cores at the smoke config: >= 50 %.
(2) Sampling: images/s (codes only) at batch 64 with the KV cache and with full recompute, at the paper's
    273-token length (17 prefix + 16x16) on a narrow model, with classifier-free guidance as sampled for
    evaluation. Goal: >= 10x.
Imports only torch, einops and the model modules, so it also runs on a GPU machine without the workflow stack.
`SMOKE` must equal params.yaml's smoke S scale (tests/test_benchmarks.py checks).

    python benchmarks/generator.py [--device cpu|cuda] [--steps 10]
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
from peak import matmul_peak, sync

from alitok.generator.sampling import generate
from alitok.models.generator import Generator, GeneratorConfig

# The smoke profile's generator (params.yaml: generator.scales.S; geometry of the smoke tokenizer, 10 classes).
SMOKE = dict(arch="alitok", width=128, depth=4, heads=4, vocab_size=1024, num_prefix=9, grid=8, num_classes=10)
# Sampling benchmark model: narrow, at the released sequence geometry (17 + 256 tokens, 4096 codes).
NARROW = dict(arch="alitok", width=128, depth=4, heads=4, vocab_size=4096, num_prefix=17, grid=16, num_classes=1000)


def train_mfu(cfg: GeneratorConfig, batch: int, steps: int, device, amp: bool) -> dict:
    torch.manual_seed(0)
    model = Generator(cfg).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.96), weight_decay=0.03)
    labels = torch.randint(0, cfg.num_classes, (batch,), device=device)
    codes = torch.randint(0, cfg.vocab_size, (batch, cfg.seq_len), device=device)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(labels, codes)
        loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), codes.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    for _ in range(3):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    seconds = (time.perf_counter() - start) / steps
    n, T = model.num_params(embeddings=False), cfg.seq_len
    flops_per_token = 6 * n + 12 * cfg.depth * T * cfg.width
    tokens_per_s = batch * T / seconds
    return {
        "params_M": model.num_params() / 1e6,
        "tokens_per_s": tokens_per_s,
        "model_flops": flops_per_token * tokens_per_s,
    }


def sampling(cfg: GeneratorConfig, batch: int, device, kv_cache: bool, repeats: int = 1) -> float:
    torch.manual_seed(0)
    model = Generator(cfg).to(device).eval()
    torch.nn.init.normal_(model.output.weight, std=0.02)
    labels = torch.arange(batch, device=device) % cfg.num_classes
    ids = torch.arange(batch, device=device)
    generate(model, labels[:2], ids[:2], seed=0, guidance=4.0, power=1.0, kv_cache=kv_cache)  # warm-up
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        generate(model, labels, ids, seed=0, guidance=4.0, power=1.0, kv_cache=kv_cache)
    sync(device)
    return batch * repeats / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=32, help="training sequences per step")
    ap.add_argument("--sample-batch", type=int, default=64)
    args = ap.parse_args()
    device = torch.device(args.device)
    amp = device.type == "cuda"
    dtype = torch.bfloat16 if amp else torch.float32
    where = torch.cuda.get_device_name() if amp else (platform.processor() or platform.machine())

    train = train_mfu(GeneratorConfig(**SMOKE), args.batch, args.steps, device, amp)
    peak = matmul_peak(device, dtype, 4096 if amp else 1024)
    narrow = GeneratorConfig(**NARROW)
    cached = sampling(narrow, args.sample_batch, device, kv_cache=True)
    full = sampling(narrow, args.sample_batch, device, kv_cache=False)

    print(
        f"# AR generator benchmarks, {device.type} ({where}, {torch.get_num_threads()} threads), "
        f"torch {torch.__version__}"
    )
    print()
    print(
        f"## Training MFU, smoke config ({train['params_M']:.2f}M params, {SMOKE['num_prefix']}+{SMOKE['grid']}² "
        f"tokens, batch {args.batch}, {'bf16 autocast' if amp else 'fp32'})"
    )
    print("| figure | value |")
    print("|---|---|")
    print(f"| tokens/s | {train['tokens_per_s']:.0f} |")
    print(f"| model FLOP/s (6N + 12LTd) | {train['model_flops'] / 1e9:.2f} GFLOP/s |")
    print(f"| matmul peak, same run | {peak / 1e9:.2f} GFLOP/s |")
    print(f"| MFU | {train['model_flops'] / peak:.1%} (goal >= 50 %) |")
    print()
    print(
        f"## Sampling, narrow model (width {NARROW['width']}, depth {NARROW['depth']}), "
        f"{narrow.seq_len} tokens, batch {args.sample_batch}, guidance on (2 x batch rows), fp32"
    )
    print("| sampler | images/s |")
    print("|---|---|")
    print(f"| KV cache | {cached:.2f} |")
    print(f"| full recompute | {full:.3f} |")
    print(f"| speed-up | {cached / full:.1f}x (goal >= 10x) |")


if __name__ == "__main__":
    main()
