"""Tokenizer training throughput: images/s and achieved FLOP/s over this machine's matmul peak, one run.

Why: the smoke tokenizer must train in minutes on 2 cores, and at paper scale the step time decides the
cluster bill. A training step here is what `alitok train-tokenizer` does per step in stage 1 without the
perceptual and GAN terms (forward, pixel + prefix + VQ losses, backward, clipping, AdamW, codebook
revival). Its FLOPs are counted by torch's FlopCounterMode on the real step (matmuls, convolutions and
attention), not estimated from a formula. The peak is a large square matmul timed in the same process, so
the ratio is measured, not quoted from a datasheet. Imports only torch, einops and the model module, so it also
runs on a GPU machine without the workflow stack; `SMOKE` must equal params.yaml's smoke tokenizer
(tests/test_benchmarks.py checks).

    python benchmarks/tokenizer_train.py [--steps 20] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
import torch.nn.functional as F
from peak import matmul_peak, sync
from torch.utils.flop_counter import FlopCounterMode

from alitok.models.tokenizer import Tokenizer, TokenizerConfig, prefix_target

# params.yaml, profile smoke: tokenizer.model at data.image_size, and the training values the step uses.
_SMOKE_SHAPE = dict(image_size=32, patch_size=4, codebook_size=1024, code_dim=16, mlp_ratio=4, prefix="grid_plus_one")
_SMOKE_STACKS = dict(enc_width=128, enc_depth=2, enc_heads=4, dec_width=128, dec_depth=3, dec_heads=4, buffer_tokens=8)
SMOKE_MODEL = _SMOKE_SHAPE | _SMOKE_STACKS
SMOKE_STEP = dict(
    batch=32, init_std=0.25, usage_decay=0.99, commitment=0.25, aux=0.6640625, grad_clip=1.0, betas=(0.9, 0.999)
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    cfg, s = TokenizerConfig(**SMOKE_MODEL), SMOKE_STEP
    device = torch.device(args.device)
    amp = device.type == "cuda"
    dtype = torch.bfloat16 if amp else torch.float32
    batch = s["batch"]

    torch.manual_seed(0)
    model = Tokenizer(cfg, 1, usage_decay=s["usage_decay"], codebook_init_std=s["init_std"]).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=s["betas"])
    x = torch.rand(batch, 3, cfg.image_size, cfg.image_size, device=device)

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=amp):
            out = model(x)
            loss = (
                F.mse_loss(out["image"].float(), x)
                + s["aux"] * F.mse_loss(out["aux"].float(), prefix_target(x, cfg))
                + s["commitment"] * out["commitment"]
                + out["codebook"]
            )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), s["grad_clip"])
        opt.step()
        model.quantizer.revive(out["z"])

    counter = FlopCounterMode(display=False)
    with counter:
        step()
    flops_per_step = counter.get_total_flops()
    for _ in range(2):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync(device)
    seconds = (time.perf_counter() - start) / args.steps
    peak = matmul_peak(device, dtype, 4096 if device.type == "cuda" else 1024)

    params = sum(q.numel() for q in model.parameters())
    print(
        f"# tokenizer training step, smoke config, {device.type} "
        f"({torch.cuda.get_device_name() if device.type == 'cuda' else platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads), torch {torch.__version__}"
    )
    print(
        f"stage-1 model {params / 1e6:.2f}M params, image {cfg.image_size}px, {cfg.seq_len} tokens, batch {batch}, "
        f"{'bf16 autocast' if amp else 'fp32'}"
    )
    print()
    print("| figure | value |")
    print("|---|---|")
    print(f"| step time | {seconds * 1e3:.1f} ms |")
    print(f"| training images/s | {batch / seconds:.1f} |")
    print(f"| FLOPs per step (counted) | {flops_per_step / 1e9:.2f} GFLOP |")
    print(f"| achieved FLOP/s | {flops_per_step / seconds / 1e9:.2f} GFLOP/s |")
    print(f"| matmul peak, same run | {peak / 1e9:.2f} GFLOP/s |")
    print(f"| achieved / peak | {flops_per_step / seconds / peak:.1%} |")


if __name__ == "__main__":
    main()
