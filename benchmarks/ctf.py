"""CTF against plain AR sampling (docs/papers/ctf.md §3.2, Table 2): images/s at batch 64, measured side by side
in one run.

Plain: a LlamaGen-shaped generator over all codes, 256 steps with guidance (2 x batch rows).
CTF: the same stage-1 shape over K coarse labels (a K-way head instead of a codebook-wide one), the same 256
guided steps, then one bidirectional stage-2 pass that draws every fine label. Codes only (no decoding), as the
paper does not say whether its figure includes decoding (docs/papers/ctf.md §3.2).
Default: narrow models at LlamaGen's VQ-16 geometry (16x16 tokens, 16384 codes, K = 512) that run on a CPU.
`--paper` times LlamaGen-B/L/XL against CTF with the paper's 343M (L-shaped) stage 2: a GPU figure.
Imports only torch, einops and the model and sampling modules.

    python benchmarks/ctf.py [--device cpu|cuda] [--paper]
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
from peak import sync

from alitok.ctf.sampling import generate_ctf
from alitok.generator.sampling import generate
from alitok.models.generator import SIZES, Generator, GeneratorConfig

VQ16 = dict(arch="llamagen", vocab_size=16384, num_prefix=0, grid=16, num_classes=1000)
CLUSTERS = 512  # the paper's default K [docs/papers/ctf.md §3.3, Table 3a]
NARROW = dict(width=128, depth=4, heads=4)  # stage 1 and the plain model on a CPU
NARROW_STAGE2 = dict(width=256, depth=4, heads=4)  # wider, as the paper's stage 2 is wider than its B stage 1
GUIDANCE = 2.0  # constant, the paper's B setting [docs/papers/ctf.md §1.5]


def build(shape: dict, **kw) -> Generator:
    torch.manual_seed(0)
    model = Generator(GeneratorConfig(**{**VQ16, **shape, **kw})).eval()
    torch.nn.init.normal_(model.output.weight, std=0.02)  # not the zero init: every logit path is exercised
    return model


def timed(fn, device, repeats: int) -> float:
    fn(2)  # warm-up on 2 samples
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        n = fn(None)
    sync(device)
    return n * repeats / (time.perf_counter() - start)


def compare(stage1_shape: dict, stage2_shape: dict, batch: int, device, dtype, repeats: int) -> dict:
    plain = build(stage1_shape).to(device, dtype)
    stage1 = build(stage1_shape, vocab_size=CLUSTERS).to(device, dtype)
    stage2 = build(stage2_shape, input_vocab=CLUSTERS, causal=False).to(device, dtype)
    f2c = torch.arange(VQ16["vocab_size"], device=device) % CLUSTERS
    labels = torch.arange(batch, device=device) % VQ16["num_classes"]
    ids = torch.arange(batch, device=device)

    def run_plain(n):
        n = n or batch
        generate(plain, labels[:n], ids[:n], seed=0, guidance=GUIDANCE, power=None)
        return n

    def run_ctf(n):
        n = n or batch
        generate_ctf(
            stage1,
            stage2,
            f2c,
            labels[:n],
            ids[:n],
            seed=0,
            guidance=GUIDANCE,
            power=None,
            tau1=1.0,
            tau2=1.0,
            top_k=0,
            restrict=False,
        )
        return n

    return {
        "plain_M": plain.num_params() / 1e6,
        "stage1_M": stage1.num_params() / 1e6,
        "stage2_M": stage2.num_params() / 1e6,
        "plain": timed(run_plain, device, repeats),
        "ctf": timed(run_ctf, device, repeats),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--paper", action="store_true", help="LlamaGen-B/L/XL vs CTF with the 343M stage 2 (GPU)")
    args = ap.parse_args()
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    dtype = torch.bfloat16 if gpu else torch.float32
    where = torch.cuda.get_device_name() if gpu else (platform.processor() or platform.machine())
    rows = [("narrow", NARROW, NARROW_STAGE2)]
    if args.paper:
        shape = lambda size: dict(zip(("width", "depth", "heads"), SIZES["llamagen"][size]))
        rows = [(size, shape(size), shape("L")) for size in ("B", "L", "XL")]

    print(
        f"# CTF vs plain AR sampling, {device.type} ({where}, {torch.get_num_threads()} threads), "
        f"torch {torch.__version__}, {str(dtype).removeprefix('torch.')}"
    )
    print()
    print(
        f"Batch {args.batch}, 256 tokens over {VQ16['vocab_size']} codes, K = {CLUSTERS}, constant guidance "
        f"{GUIDANCE}, codes only (no decoding). Paper (A100): B x0.93, L x1.16, XL x1.18 (docs/papers/ctf.md §3.2)."
    )
    print()
    print(
        "| stage-1 shape | plain params | CTF params (stage 1 + stage 2) | plain images/s | CTF images/s "
        "| CTF / plain |"
    )
    print("|---|---|---|---|---|---|")
    for name, s1, s2 in rows:
        r = compare(s1, s2, args.batch, device, dtype, args.repeats)
        print(
            f"| {name} ({s1['width']}x{s1['depth']}) | {r['plain_M']:.2f}M | {r['stage1_M']:.2f}M + "
            f"{r['stage2_M']:.2f}M | {r['plain']:.2f} | {r['ctf']:.2f} | x{r['ctf'] / r['plain']:.2f} |"
        )


if __name__ == "__main__":
    main()
