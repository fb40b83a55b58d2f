"""Sampling stage: class-conditional samples of one generator, decoded by the tokenizer, as an ADM archive and
a per-class grid.

Sample k has label `labels[k]` (the released layout in the paper profiles) and its own noise stream keyed by
(seed, k) (alitok/generator/sampling.py), so the archive is the same for any batch size or process count.
Under torchrun rank r generates the contiguous block r·n/W..(r+1)·n/W into a memory-mapped .npy in the work
directory, recording finished batches; a killed run resumes at the first unfinished batch.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from alitok import atomic, cliargs, joblog, plots
from alitok.config import ParamsError
from alitok.ctf.clusters import read_map
from alitok.ctf.sampling import generate_ctf
from alitok.generator.archive import sample_labels, to_uint8, write_npz
from alitok.generator.release import load_generator
from alitok.generator.runs import at_ctf_protocol
from alitok.generator.sampling import generate
from alitok.tokenizer.release import ReleaseError, load_tokenizer
from alitok.training import distributed

log = logging.getLogger("alitok.generator")


def load_models(p: dict, generator_path, device, ctf_stage2=None, coarse_map=None):
    """(model, ctf): the generator, or CTF's stage 1 plus `ctf` = its stage 2, map and `ctf.sampling` settings."""
    model = load_generator(generator_path).to(device)
    if ctf_stage2 is None:
        return model, None
    stage2 = load_generator(ctf_stage2).to(device)
    cmap = read_map(coarse_map)
    k = cmap["clusters"]
    if model.config.vocab_size != k or stage2.config.in_vocab != k or stage2.config.causal:
        raise ReleaseError(
            f"CTF models {generator_path} (emits {model.config.vocab_size}) and {ctf_stage2} (reads "
            f"{stage2.config.in_vocab}, causal={stage2.config.causal}) do not fit the {k} clusters "
            f"of {coarse_map}"
        )
    return model, {"stage2": stage2, "f2c": torch.tensor(cmap["fine_to_coarse"], device=device), **p["ctf"]["sampling"]}


def drawer(p: dict, scale: str, model, ctf):
    """(labels, sample ids) -> codes with the run's own settings: one function for sampling and for timing it."""
    s, sc = p["generator"]["sampling"], p["generator"]["scales"][scale]

    def draw(labels: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        if ctf is None:
            plain = {k: s[k] for k in ("temperature", "top_k", "top_p")}
            return generate(model, labels, ids, **seeded(sc["guidance"], sc["guidance_power"]), **plain)
        two_stage = {k: ctf[k] for k in ("tau1", "tau2", "top_k", "restrict")}
        guided = seeded(ctf["guidance"], ctf["guidance_power"])
        return generate_ctf(model, ctf["stage2"], ctf["f2c"], labels, ids, **guided, **two_stage)[1]

    def seeded(guidance, power) -> dict:
        return {"seed": sc["sample_seed"], "guidance": guidance, "power": power}

    return draw


def run(
    p: dict,
    *,
    scale: str,
    generator_path,
    tokenizer_path,
    work_dir,
    out_archive,
    out_grid,
    ctf_stage2=None,
    coarse_map=None,
) -> dict:
    """With `ctf_stage2` and `coarse_map`, `generator_path` is CTF's stage 1 and samples follow `ctf.sampling`."""
    d = distributed.setup()
    s, sc = p["generator"]["sampling"], p["generator"]["scales"][scale]
    model, ctf = load_models(p, generator_path, d.device, ctf_stage2, coarse_map)
    cfg = model.config if ctf is None else ctf["stage2"].config  # the model that emits codebook codes
    tokenizer = load_tokenizer(tokenizer_path).to(d.device)
    geo = tokenizer.geometry
    size = geo.image_size
    if (cfg.seq_len, cfg.vocab_size) != (geo.seq_len, geo.codebook_size):
        raise ReleaseError(
            f"generator {ctf_stage2 or generator_path} emits {cfg.seq_len} codes over {cfg.vocab_size}, "
            f"tokenizer {tokenizer_path} decodes {geo.seq_len} over {geo.codebook_size}"
        )
    n = s["num_samples"]
    labels = sample_labels(n, cfg.num_classes, s["labels"])
    if n % d.world_size:
        raise ParamsError(f"generator.sampling.num_samples {n} is not divisible by {d.world_size} processes")
    per = n // d.world_size
    lo, hi = d.rank * per, (d.rank + 1) * per
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    key = {
        "generator": atomic.sha256_file(generator_path),
        "tokenizer": atomic.sha256_file(tokenizer_path),
        "sampling": s,
        "scale": sc,
        "world": d.world_size,
        "ctf": None
        if ctf is None
        else {
            "stage2": atomic.sha256_file(ctf_stage2),
            "map": atomic.sha256_file(coarse_map),
            "sampling": p["ctf"]["sampling"],
        },
    }
    block, progress = work_dir / f"block-{d.rank:03d}.npy", work_dir / f"progress-{d.rank:03d}.json"
    done = 0
    if progress.exists() and block.exists():
        state = json.loads(progress.read_text())
        if state["key"] == key:
            done = state["done"]
    images = np.lib.format.open_memmap(block, mode="r+" if done else "w+", dtype=np.uint8, shape=(per, size, size, 3))

    draw = drawer(p, scale, model, ctf)
    name = joblog.label(p, Path(out_archive).parent.name or scale)  # the run's folder: S, S-untrained, ctf-S ...
    bar = tqdm(total=per, initial=done, desc=f"sample {name}", unit="img", file=sys.stderr, disable=not d.is_main)
    for start in range(lo + done, hi, s["batch"]):
        stop = min(start + s["batch"], hi)
        batch_labels, ids = (
            torch.as_tensor(labels[start:stop], device=d.device),
            torch.arange(start, stop, device=d.device),
        )
        codes = draw(batch_labels, ids)
        with torch.no_grad():
            images[start - lo : stop - lo] = to_uint8(tokenizer.decode_codes(codes).float(), s["uint8"])
        images.flush()
        atomic.write_json(progress, {"key": key, "done": stop - lo})
        bar.update(stop - start)
    bar.close()
    del images
    distributed.barrier()

    if d.is_main:
        blocks = [work_dir / f"block-{r:03d}.npy" for r in range(d.world_size)]
        write_npz(out_archive, blocks, labels)
        rows = (cfg.num_classes, s["grid_per_class"], s["grid_classes"], class_names(p, cfg.num_classes))
        write_grid(out_grid, blocks, labels, *rows, header=f"{name}: samples, one row per class")
        for f in work_dir.glob("*"):
            f.unlink()
    distributed.teardown()
    return {"run": name, "scale": scale, "num_samples": n, "world_size": d.world_size}


def class_names(p: dict, num_classes: int) -> list[str]:
    """Row labels of the grid: "class 3: rows" where the params name the classes (the embedded dataset), else
    "class 3" (an ImageFolder tree's names are in dataset.json, which sampling does not read)."""
    if p["data"]["source"] == "embedded":
        from alitok.data.synthetic import class_names as embedded

        names = embedded(p["data"]["embedded"]["classes"])
        return [f"class {c}: {names[c]}" if c < len(names) else f"class {c}" for c in range(num_classes)]
    return [f"class {c}" for c in range(num_classes)]


def write_grid(
    out,
    blocks: list[Path],
    labels: np.ndarray,
    num_classes: int,
    per_class: int,
    classes: int,
    names: list[str] | None = None,
    header: str = "",
) -> None:
    """One row per class (the first `classes`), its first `per_class` samples left to right, the class's name
    (`names[c]`, default "class c") left of its row and `header` above."""
    arrays = [np.load(b, mmap_mode="r") for b in blocks]
    offsets = np.cumsum([0] + [len(a) for a in arrays])

    def image(k):
        r = int(np.searchsorted(offsets, k, side="right") - 1)
        return arrays[r][k - offsets[r]]

    rows, row_labels = [], []
    for c in range(min(classes, num_classes)):
        ks = np.flatnonzero(labels == c)[:per_class]
        if len(ks) == 0:
            continue
        row = [image(k) for k in ks] + [np.zeros_like(image(ks[0]))] * (per_class - len(ks))
        rows.append(np.concatenate(row, axis=1))
        row_labels.append(names[c] if names else f"class {c}")
    with atomic.atomic_path(out) as tmp:
        plots.label_rows(np.concatenate(rows, axis=0), row_labels, header).save(tmp, format="PNG")


def add_arguments(parser) -> None:
    parser.add_argument("--scale", required=True, help="a key of generator.scales (its guidance and seed)")
    parser.add_argument("--generator", type=Path, required=True, help="generator checkpoint (trained or imported)")
    parser.add_argument("--tokenizer", type=Path, required=True, help="tokenizer checkpoint that decodes its codes")
    parser.add_argument("--work-dir", type=Path, required=True, help="per-process blocks in progress (resume here)")
    parser.add_argument("--out-archive", type=Path, required=True, help="samples.npz: arr_0 NHWC uint8, arr_1 labels")
    parser.add_argument("--out-grid", type=Path, required=True, help="per-class sample grid (PNG)")
    cliargs.ctf_pair(parser)
    cliargs.sampling_protocol(parser)


def main(args, p: dict) -> None:
    cliargs.together(args, "ctf_stage2", "coarse_map")
    if args.protocol == "ctf":
        p = at_ctf_protocol(p, args.scale)
    names = ("scale", "work_dir", "out_archive", "out_grid", "ctf_stage2", "coarse_map")
    summary = run(p, **cliargs.passed(args, *names, generator_path="generator", tokenizer_path="tokenizer"))
    log.info("sampled %s: %s", summary["run"], summary)
