"""The machine's matmul peak, measured in the benchmark's own process so ratios to it are side by side."""

from __future__ import annotations

import time

import torch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int, seconds: float = 2.0) -> float:
    """FLOP/s of an n x n x n matmul, best of repeated timed bursts."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    best, start = 0.0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        sync(device)
        t = time.perf_counter()
        for _ in range(4):
            a @ b
        sync(device)
        best = max(best, 4 * 2 * n**3 / (time.perf_counter() - t))
    return best


def sustained_matmul(n: int = 512, seconds: float = 2.0, workers: int = 2) -> float:
    """FLOP/s per core of one-thread n x n x n float32 matmuls on the CPU, `workers` of them side by side for
    `seconds`: all the work done over all the time, not the best burst. A best burst fits between a shared
    machine's stalls (a neighbour, a CPU quota); the throughput with every core busy sees them, as a 2-core
    pipeline run does."""
    import threading

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # each worker's matmul then runs on its own thread (the GIL is released)
    done = [0] * workers

    def work(i: int) -> None:
        a, b = torch.randn(n, n), torch.randn(n, n)
        a @ b  # warm
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            a @ b
            done[i] += 1

    pool = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    try:
        start = time.perf_counter()
        for w in pool:
            w.start()
        for w in pool:
            w.join()
        elapsed = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    return 2 * n**3 * sum(done) / elapsed / workers
