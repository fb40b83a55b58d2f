"""One command that checks a GPU machine before a paper-scale run: training MFU, sampling speed, fast paths
against the reference, the release import path, and the two-process launch. Needs torch and einops only (the
`alitok` model, sampling and import modules; not the workflow stack), and a few minutes on one CUDA device.

    python benchmarks/gpu.py                 # on the GPU machine: B, L and XL at the released shapes
    python benchmarks/gpu.py --tiny          # anywhere: tiny shapes on the CPU, as the test suite runs it

What it does, each in the same process so its ratios are side by side:
1. Training: a few bf16 steps of AliTok-B, -L and -XL (the released shapes, batch 32 sequences of 273 tokens),
   each one's MFU by the benchmarks' convention (6 N T + 12 L T^2 d, alitok/plan.py) over the datasheet peak of
   the named GPU and over the bf16 matmul peak measured here.
   One size (L) also trains under torch.compile, beside its eager row.
2. Sampling images/s at batch 64 (guidance on, as the paper's speed table): fp32, fp32 with TF32 matmuls (as the
   release's sampler) and bf16 autocast, next to the paper's A800 figures
   (AliTok-L 10.1, XL 6.3 images/s; it gives none for B). Ours are codes only, without the tokenizer's decoding.
3. Agreement, the check that fails the run: the next-token distributions of each fast path (TF32, bf16,
   compiled) against fp32 eager on the same inputs, mean total-variation distance within TOLERANCE.
4. The release import path: a random-weight generator written in the release's format (a plain state dict,
   `alitok_<size>.bin`), imported by `alitok.generator.release`, must give logits equal to the original's.
5. The two-process path: torchrun with two gloo ranks on the CPU (a lent machine has one GPU), one DDP step,
   must equal one process's step on the whole batch.

Prints a markdown table per part; exits 1 on any mismatch of 3-5.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from peak import matmul_peak, sync

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's alitok, installed or not
from alitok.generator import release  # noqa: E402
from alitok.generator.sampling import generate  # noqa: E402
from alitok.models.generator import SIZES, Generator, GeneratorConfig  # noqa: E402
from alitok.plan import PEAK_BF16, sequence_train_flops  # noqa: E402

PAPER_IMAGES_PER_S = {"L": 10.1, "XL": 6.3}  # one A800, fp32, batch 64 [docs/papers/alitok.md §3.4]
# The imagenet256 profile's guidance per size (params.yaml; tests/test_benchmarks.py keeps them equal).
GUIDANCE = {"B": (16.0, 1.8), "L": (6.0, 0.7), "XL": (13.0, 1.4)}
TOLERANCE = {"tf32": 0.01, "bf16": 0.05, "compiled": 0.01}  # mean total-variation distance to fp32 eager [ours]
TINY = {"sizes": {"B": (32, 2, 2), "L": (48, 2, 2), "XL": (64, 2, 2)}, "geometry": {
    "vocab_size": 64, "num_prefix": 3, "grid": 3, "num_classes": 10}}  # fmt: skip


def geometry(tiny: bool) -> dict:
    return TINY["geometry"] if tiny else release.release_geometry()


def model_of(size: str, tiny: bool, device) -> Generator:
    torch.manual_seed(0)
    if tiny:
        width, depth, heads = TINY["sizes"][size]
        cfg = GeneratorConfig(arch="alitok", width=width, depth=depth, heads=heads, **geometry(tiny))
    else:
        cfg = GeneratorConfig.named("alitok", size, **geometry(tiny))
    model = Generator(cfg)
    # The head starts at zero (as the release's): every logit 0 and nothing to compare. Logits of std ~3 instead,
    # as a trained model's, so the fast paths' distributions are compared where they are peaked.
    torch.nn.init.normal_(model.output.weight, std=3 / cfg.width**0.5)
    return model.to(device)


def gpu_peak(device) -> tuple[str, float | None]:
    if device.type != "cuda":
        return platform.processor() or platform.machine(), None
    name = torch.cuda.get_device_name(device)
    return name, next((v for k, v in PEAK_BF16.items() if k in name), None)


def train_row(size: str, tiny: bool, device, batch: int, steps: int, net=None) -> dict:
    """`net`: the model under torch.compile (its weights are the module's); None: eager."""
    model = model_of(size, tiny, device).train() if net is None else net._orig_mod.train()
    net = model if net is None else net
    opt = torch.optim.AdamW(
        model.parameters(), lr=1e-4, betas=(0.9, 0.96), weight_decay=0.03, fused=device.type == "cuda"
    )
    cfg = model.config
    labels = torch.randint(0, cfg.num_classes, (batch,), device=device)
    codes = torch.randint(0, cfg.vocab_size, (batch, cfg.seq_len), device=device)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16):
            logits = net(labels, codes)
        loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), codes.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    for _ in range(2):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    seconds = (time.perf_counter() - start) / steps
    out = {"size": size, "params_M": model.num_params() / 1e6, "seconds": seconds}
    out["flops"] = batch * sequence_train_flops(model, cfg.seq_len) / seconds
    return out


def next_token_probs(model: Generator, labels, codes, mode: str) -> torch.Tensor:
    with torch.no_grad(), torch.autocast(model.output.weight.device.type, dtype=torch.bfloat16, enabled=mode == "bf16"):
        return model(labels, codes).float().softmax(-1)


def sampling_rows(size: str, tiny: bool, device, batch: int) -> tuple[list[dict], list[dict]]:
    """images/s per mode, and each fast mode's distance to fp32 eager."""
    model = model_of(size, tiny, device).eval()
    cfg = model.config
    guidance, power = GUIDANCE[size]
    labels = torch.arange(batch, device=device) % cfg.num_classes
    ids = torch.arange(batch, device=device)
    codes = torch.randint(0, cfg.vocab_size, (batch, cfg.seq_len), device=device)
    modes = ["fp32", "tf32", "bf16"]
    reference = next_token_probs(model, labels[:8], codes[:8], "fp32")
    speed, agreement = [], []
    for mode in modes:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = mode == "tf32"
        if mode != "fp32":
            probs = next_token_probs(model, labels[:8], codes[:8], mode)
            tv = 0.5 * (probs - reference).abs().sum(-1).mean().item()
            agreement.append({"size": size, "mode": mode, "tv": tv, "ok": tv <= TOLERANCE[mode]})
        autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=mode == "bf16")
        with autocast:
            generate(model, labels[:2], ids[:2], seed=0, guidance=guidance, power=power)  # warm-up (and compile)
            sync(device)
            start = time.perf_counter()
            generate(model, labels, ids, seed=0, guidance=guidance, power=power)
            sync(device)
        speed.append({"size": size, "mode": mode, "images_per_s": batch / (time.perf_counter() - start), "note": ""})
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    return speed, agreement


def compiled_row(size: str, tiny: bool, device, batch: int, steps: int) -> tuple[dict, dict]:
    """The bf16 training step with the model under torch.compile, and the compiled forward's distance to fp32
    eager. (The sampler is not compiled: its cache grows by one position a step and is indexed per layer, so
    torch.compile recompiles past its limit; docs/generator.md.)"""
    model = model_of(size, tiny, device).eval()
    labels = torch.arange(8, device=device) % model.config.num_classes
    codes = torch.randint(0, model.config.vocab_size, (8, model.config.seq_len), device=device)
    reference = next_token_probs(model, labels, codes, "fp32")
    compiled = torch.compile(model)
    tv = 0.5 * (next_token_probs(compiled, labels, codes, "fp32") - reference).abs().sum(-1).mean().item()
    return train_row(size, tiny, device, batch, steps, compiled), {
        "size": size, "mode": "compiled", "tv": tv, "ok": tv <= TOLERANCE["compiled"]}  # fmt: skip


def import_check(tiny: bool) -> dict:
    """Write AliTok-B at random weights as the release does (a plain state dict), import it, compare logits."""
    size, saved = "B", (release.SIZES["alitok"], release.release_geometry)
    if tiny:  # shrink "the release" to the tiny shapes, as tests/test_generator_release.py does; restored below
        release.SIZES["alitok"] = {**SIZES["alitok"], size: TINY["sizes"][size]}
        release.release_geometry = lambda: TINY["geometry"]  # noqa: E731 - a stand-in for the released geometry
    try:
        original = model_of(size, tiny, torch.device("cpu")).eval()
        with tempfile.TemporaryDirectory() as tmp:
            src, out = Path(tmp) / f"alitok_{size.lower()}.bin", Path(tmp) / "gen.pt"
            torch.save(original.state_dict(), src)
            info = release.import_release(src, out)
            loaded = release.load_generator(out).eval()
    finally:
        release.SIZES["alitok"], release.release_geometry = saved
    cfg = original.config
    labels, codes = torch.tensor([0, 1]), torch.randint(0, cfg.vocab_size, (2, cfg.seq_len))
    with torch.no_grad():
        same = torch.equal(loaded(labels, codes), original(labels, codes))
    return {"size": info["size"], "tensors": info["tensors"], "ok": same}


def ddp_worker(out: Path) -> None:
    """One rank of the two-process check: a DDP step on its half of the batch; rank 0 saves the weights."""
    import torch.distributed as dist

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    model, labels, codes = _ddp_problem()
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    half = slice(rank * 4, rank * 4 + 4)
    _one_step(ddp, model, labels[half], codes[half])
    if rank == 0:
        torch.save(model.state_dict(), out)
    dist.destroy_process_group()


def _ddp_problem():
    torch.manual_seed(0)
    cfg = GeneratorConfig(arch="alitok", width=32, depth=2, heads=2, **TINY["geometry"])
    labels = torch.arange(8) % cfg.num_classes
    codes = torch.randint(0, cfg.vocab_size, (8, cfg.seq_len))
    return Generator(cfg).train(), labels, codes


def _one_step(net, model, labels, codes) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = torch.nn.functional.cross_entropy(net(labels, codes).flatten(0, 1), codes.flatten())
    loss.backward()
    opt.step()


def ddp_check() -> dict:
    """torchrun, two gloo ranks on the CPU, against one process on the whole batch."""
    torchrun = Path(sys.executable).parent / "torchrun"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "ddp.pt"
        cmd = [str(torchrun), "--standalone", "--nproc_per_node=2", __file__, "--ddp-worker", str(out)]
        env = os.environ | {"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
        if proc.returncode != 0:
            return {"ok": False, "max_diff": None, "note": proc.stderr[-500:]}
        two = torch.load(out)
    model, labels, codes = _ddp_problem()
    _one_step(model, model, labels, codes)
    diff = max((two[k] - v).abs().max().item() for k, v in model.state_dict().items())
    return {"ok": diff <= 1e-5, "max_diff": diff, "note": ""}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="tiny shapes (the test suite's CPU run)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--sizes", nargs="+", default=["B", "L", "XL"], choices=["B", "L", "XL"])
    ap.add_argument("--train-batch", type=int, default=32)
    ap.add_argument("--train-steps", type=int, default=3)
    ap.add_argument("--sample-batch", type=int, default=64)
    ap.add_argument("--compile-size", default="L", help="the size whose training step is also compiled ('none': skip)")
    ap.add_argument("--ddp-worker", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.ddp_worker:
        ddp_worker(args.ddp_worker)
        return 0
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu.py: no CUDA device here; run with --device cpu --tiny for the CPU check", file=sys.stderr)
        return 2
    name, datasheet = gpu_peak(device)
    started = time.perf_counter()
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    measured = matmul_peak(device, dtype, 256 if args.tiny else 8192)
    print(f"# GPU check: {device.type} ({name}), torch {torch.__version__}{', tiny shapes' if args.tiny else ''}")
    print()
    print(f"## 1. Training, bf16, batch {args.train_batch}")
    print()
    print("| model | mode | params (M) | s / step | model TFLOP/s | MFU (datasheet peak) | MFU (measured peak) |")
    print("|---|---|---|---|---|---|---|")
    agreement = []
    for size in args.sizes:
        rows = [("eager", train_row(size, args.tiny, device, args.train_batch, args.train_steps))]
        if size == args.compile_size:
            compiled, agree = compiled_row(size, args.tiny, device, args.train_batch, args.train_steps)
            rows.append(("compiled", compiled))
            agreement.append(agree)
        for mode, r in rows:
            sheet = f"{r['flops'] / datasheet:.1%}" if datasheet else "–"
            print(
                f"| {size} | {mode} | {r['params_M']:.1f} | {r['seconds']:.3f} | {r['flops'] / 1e12:.3f} | {sheet} | "
                f"{r['flops'] / measured:.1%} |"
            )
        if device.type == "cuda":
            torch.cuda.empty_cache()
    sheet = f"; datasheet {datasheet / 1e12:.0f}" if datasheet else ""
    print(f"\nMeasured matmul peak ({dtype}): {measured / 1e12:.3f} TFLOP/s{sheet}.")
    print()
    print(f"## 2. Sampling, batch {args.sample_batch}, guidance on (the imagenet256 settings), codes only")
    print()
    print("| model | mode | images/s | paper (one A800, fp32) | note |")
    print("|---|---|---|---|---|")
    for size in args.sizes:
        speed, agree = sampling_rows(size, args.tiny, device, args.sample_batch)
        agreement += agree
        for r in speed:
            ips = "–" if r["images_per_s"] is None else f"{r['images_per_s']:.2f}"
            print(f"| {size} | {r['mode']} | {ips} | {PAPER_IMAGES_PER_S.get(size, '–')} | {r['note']} |")
    print()
    print("## 3. Fast paths against fp32 eager (mean total-variation distance of next-token distributions)")
    print()
    print("| model | mode | distance | tolerance | agrees |")
    print("|---|---|---|---|---|")
    for r in agreement:
        print(f"| {r['size']} | {r['mode']} | {r['tv']:.2e} | {TOLERANCE[r['mode']]} | {'yes' if r['ok'] else 'NO'} |")
    imported = import_check(args.tiny)
    ddp = ddp_check()
    print()
    print("## 4-5. Release import and two-process launch")
    print()
    print("| check | result |")
    print("|---|---|")
    print(
        f"| release import (random AliTok-{imported['size']}, {imported['tensors']} tensors): logits equal | "
        f"{'yes' if imported['ok'] else 'NO'} |"
    )
    diff = "–" if ddp["max_diff"] is None else f"{ddp['max_diff']:.1e}"
    verdict = "yes" if ddp["ok"] else "NO " + ddp["note"]
    print(f"| torchrun, 2 gloo ranks vs 1 process: max weight difference {diff} | {verdict} |")
    ok = all(r["ok"] for r in agreement) and imported["ok"] and ddp["ok"]
    print()
    print(f"{'All checks agree' if ok else 'MISMATCH: see the rows marked NO'}; {time.perf_counter() - started:.0f} s.")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
