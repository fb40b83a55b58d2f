"""AR generator training on extracted tokens: next-token cross-entropy, one run per scale.

AdamW (no decay on norms, biases and embedding tables), linear warm-up then cosine to a floor, gradient
clipping, bf16 autocast on GPU, DDP under torchrun. `global_batch` is the param; the per-device batch and
the number of accumulation steps follow from it, the world size and the scale's `micro_batch` cap, so a
run has the same optimisation whatever hardware it lands on. Checkpoints are atomic, self-describing and
live in a work directory outside the rule's outputs; a rerun resumes exactly.

CTF's two models train here too (`ctf_stage`, with the coarse map of alitok/ctf/clusters.py): stage 1 reads and
predicts coarse labels; stage 2 reads the ground-truth coarse map and predicts every fine label
(docs/papers/ctf.md §1.3-1.4).

Two controls for the evaluation's class-consistency share this code: `untrained` (the seeded initial weights,
no step taken) and `shuffled_labels` (the same recipe on labels permuted across images). Both should give
samples that the classifier assigns to their class at about chance; if not, the instrument is at fault.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from alitok import atomic, cliargs, joblog, plots, reads
from alitok.config import ParamsError, section_hash
from alitok.ctf.clusters import read_map
from alitok.data.loader import train_loader
from alitok.generator.config import ctf_config, model_config
from alitok.generator.release import FORMAT
from alitok.generator.runs import CONTROLS, run_name, scale_params, training_steps
from alitok.models.generator import Generator
from alitok.tokens.store import TokenShards, TokenStoreError, TrainTokens
from alitok.training import checkpoint, distributed, schedule
from alitok.training.precision import Precision
from alitok.training.preemption import Preemption

log = logging.getLogger("alitok.generator")

# (label, log keys, log scale) of the training-curve figure
CURVES = [
    ("cross-entropy", ["loss", "val_loss"], True),
    ("next-token accuracy", ["acc", "val_acc"], False),
    ("class gain (nats/token, null - true label)", ["val_class_gain"], False),
    ("throughput (tokens/s)", ["tokens_per_s"], False),
]


def batch_split(global_batch: int, world: int, micro_batch: int) -> tuple[int, int]:
    """(per-device batch per forward, accumulation steps) with per_device·accum·world == global_batch."""
    if global_batch % world:
        raise ParamsError(f"generator.training.global_batch {global_batch} is not divisible by {world} processes")
    local = global_batch // world
    accum = math.ceil(local / micro_batch)
    while local % accum:
        accum += 1
    return local // accum, accum


def optimizer(model: Generator, opt: dict) -> torch.optim.AdamW:
    """No weight decay on norms and biases; none on the embedding tables either unless `decay_embeddings`:
    AliTok's release exempts them (docs/papers/alitok.md §2.3), LlamaGen's recipe decays every tensor of two or
    more dimensions (docs/papers/llamagen.md §3)."""
    exempt = not opt["decay_embeddings"]
    tables = {id(m.weight) for m in model.modules() if exempt and isinstance(m, torch.nn.Embedding)}
    decay = [q for q in model.parameters() if q.dim() >= 2 and id(q) not in tables]
    rest = [q for q in model.parameters() if q.dim() < 2 or id(q) in tables]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": opt["weight_decay"]}, {"params": rest, "weight_decay": 0.0}],
        lr=0.0,
        betas=tuple(opt["betas"]),
    )


def next_token_stats(logits: torch.Tensor, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy and accuracy ("AR Acc." of the ablations) over every position."""
    logits = logits.float().flatten(0, 1)
    target = codes.flatten()
    return F.cross_entropy(logits, target), (logits.argmax(-1) == target).float().mean()


class Targets:
    """(inputs, targets) of a batch of codes: the codes themselves, or through CTF's fine -> coarse map."""

    def __init__(self, ctf_stage: int | None, fine_to_coarse: torch.Tensor | None):
        self.stage, self.f2c = ctf_stage, fine_to_coarse

    def __call__(self, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.stage is None:
            return codes, codes
        coarse = self.f2c.to(codes.device)[codes]
        return (coarse, coarse) if self.stage == 1 else (coarse, codes)


def held_out_batches(val: TokenShards, batch: int, count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The first `count` batches of held-out (labels, codes), centre crop, no label dropout: a fixed set."""
    n = min(len(val), batch * count)
    items = [val[i] for i in range(n)]
    return [
        (
            torch.tensor([lab for _, lab in items[s : s + batch]]),
            torch.stack([torch.from_numpy(c[0].astype("int64")) for c, _ in items[s : s + batch]]),
        )
        for s in range(0, n, batch)
    ]


@torch.no_grad()
def evaluate(model, batches, device, autocast, targets: Targets = Targets(None, None), intervals=None) -> dict:
    """Held-out loss and accuracy, and the class gain: the loss with the null class minus the loss with the
    true one, in nats per token. Near 0, the model ignores its label and guidance has nothing to amplify.
    `intervals` (params evaluation.intervals) adds the accuracy's 95 % interval over the held-out sequences, with
    its draws: the ablations pair two generators' accuracies sequence by sequence (the same images' tokens)."""
    model.eval()
    loss = acc = null_loss = 0.0
    per_sequence = []
    for labels, codes in batches:
        labels = labels.to(device)
        inputs, codes = targets(codes.to(device))
        with autocast():
            logits = model(labels, inputs)
            lv, a = next_token_stats(logits, codes)
            n, _ = next_token_stats(model(torch.full_like(labels, model.config.null_class), inputs), codes)
        loss, acc, null_loss = loss + lv.item(), acc + a.item(), null_loss + n.item()
        if intervals is not None:
            per_sequence.append((logits.argmax(-1) == codes).double().mean(1).cpu())
    model.train()
    k = len(batches)
    out = {"val_loss": loss / k, "val_acc": acc / k, "val_class_gain": (null_loss - loss) / k}
    if intervals is not None:
        from alitok.metrics.intervals import bootstrap_mean

        iv = bootstrap_mean(torch.cat(per_sequence).numpy(), **intervals, unit="held-out sequences", keep=True)
        out["val_acc_interval"] = iv.as_dict()
    return out


def run(
    p: dict,
    *,
    scale: str | None,
    train_dir,
    val_dir,
    work_dir,
    out,
    log_out,
    curve_out=None,
    control: str | None = None,
    ctf_stage: int | None = None,
    coarse_map=None,
) -> dict:
    """Scale None only for CTF's stage 2, whose shape and schedule are `ctf.stage2`."""
    d = distributed.setup()
    g, tr, opt_p = p["generator"], p["generator"]["training"], p["generator"]["optimizer"]
    if control not in (None,) + CONTROLS:
        raise ParamsError(f"generator control must be one of {', '.join(CONTROLS)}, got {control!r}")
    if (scale is None) != (ctf_stage == 2):
        raise ParamsError("CTF's stage 2 takes its shape from ctf.stage2, every other generator from a scale")
    train = TokenShards(train_dir)
    val = TokenShards(val_dir)
    num_classes = train.info["num_classes"]
    # The geometry is the tokens' (their manifest records the tokenizer's), not re-derived from params.
    vocab = train.info["vocab_size"]  # the codebook's size, whatever the model's own vocabulary
    ctf = None
    if ctf_stage is None:
        cfg = model_config(p, scale, num_classes, train.info)
    else:
        if coarse_map is None:
            raise ParamsError("a CTF stage needs its coarse map (alitok ctf-clusters)")
        ctf = read_map(coarse_map)
        if ctf["codebook_size"] != vocab:
            raise TokenStoreError(
                f"coarse map {coarse_map} covers {ctf['codebook_size']} codes, the tokens "
                f"{vocab}: recompute it from this tokenizer"
            )
        cfg = ctf_config(p, ctf_stage, ctf["clusters"], num_classes, scale, train.info)
    if (train.info["seq_len"], train.info["vocab_size"]) != (cfg.seq_len, vocab):
        raise TokenStoreError(
            f"tokens in {train_dir} have {train.info['seq_len']} codes over {train.info['vocab_size']}, "
            f"the generator expects {cfg.seq_len} over {vocab}: re-extract them"
        )
    sc = scale_params(p, scale)
    name = joblog.label(p, run_name(scale, control, ctf_stage))  # its progress bar's and curve's
    per_device, accum = batch_split(tr["global_batch"], d.world_size, sc["micro_batch"])
    total = training_steps(p, scale, control)
    targets = Targets(ctf_stage, None if ctf is None else torch.tensor(ctf["fine_to_coarse"]))
    work_dir, out, log_out = Path(work_dir), Path(out), Path(log_out)
    if d.is_main:
        work_dir.mkdir(parents=True, exist_ok=True)
    run_hash = section_hash(
        {
            **reads.train_generator(p, scale, control),  # what it reads from params, then what its inputs hold
            "tokens": train.info,
            "control": control,
            "model": asdict(cfg),
            "coarse_map": None if ctf is None else ctf["fine_to_coarse"],
        }
    )

    torch.manual_seed(tr["seed"])
    model = Generator(cfg).to(d.device)
    opt = optimizer(model, opt_p)
    autocast = Precision(d.device, tr["precision"]).autocast

    ckpt_path, log_path = work_dir / "last.pt", work_dir / "log.jsonl"
    step = checkpoint.resume(
        ckpt_path, kind="generator-train", params_hash=run_hash, log_path=log_path, model=model, opt=opt
    )
    ddp = model if d.world_size == 1 else torch.nn.parallel.DistributedDataParallel(model)

    data = TrainTokens(
        train, tr["seed"], g["dropout"]["class_label"], cfg.null_class, shuffle_labels=control == "shuffled_labels"
    )
    loader = train_loader(
        data, tr, d, range(step, total), accum, source=train_dir, key="generator.training.global_batch"
    )
    val_batches = held_out_batches(val, per_device, tr["eval_batches"])

    bar = tqdm(total=total, initial=step, desc=f"generator {name}", unit="step", file=sys.stderr, disable=not d.is_main)
    tick, tokens_since = time.perf_counter(), 0
    batches = iter(loader)
    model.train()

    def save_progress():
        payload = {"format": "alitok-generator-train/1", "kind": "generator-train", "step": step}
        payload |= {"params_hash": run_hash, "model": model.state_dict(), "opt": opt.state_dict()}
        checkpoint.save_progress(ckpt_path, payload)

    with Preemption(d.device) as preemption:
        while step < total:
            lr = schedule.warmup_cosine(step, total, opt_p["lr"], opt_p["end_lr"], opt_p["warmup_steps"])
            for group in opt.param_groups:
                group["lr"] = lr
            loss_sum = acc_sum = 0.0
            for micro in range(accum):
                codes, labels = next(batches)
                codes, labels = codes.to(d.device, non_blocking=True), labels.to(d.device, non_blocking=True)
                inputs, codes = targets(codes)
                sync = ddp.no_sync() if d.world_size > 1 and micro < accum - 1 else contextlib.nullcontext()
                with sync:
                    with autocast():
                        loss, acc = next_token_stats(ddp(labels, inputs), codes)
                    (loss / accum).backward()
                loss_sum, acc_sum = loss_sum + loss.item() / accum, acc_sum + acc.item() / accum
                tokens_since += codes.numel() * d.world_size
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), opt_p["grad_clip"])
            opt.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            bar.update(1)

            if step % tr["log_every"] == 0 or step % tr["eval_every"] == 0 or step == total:
                record = {
                    "step": step,
                    "lr": lr,
                    "loss": loss_sum,
                    "acc": acc_sum,
                    "grad_norm": grad_norm.item(),
                    "tokens_per_s": tokens_since / (time.perf_counter() - tick),
                }
                if step % tr["eval_every"] == 0 or step == total:
                    final = p["evaluation"]["intervals"] if step == total else None
                    record.update(evaluate(model, val_batches, d.device, autocast, targets, final))
                if d.is_main:
                    with open(log_path, "a") as f:
                        f.write(json.dumps(record) + "\n")
                    bar.set_postfix(loss=f"{loss_sum:.3f}", acc=f"{acc_sum:.3f}")
                tick, tokens_since = time.perf_counter(), 0
            # SIGTERM: this step is done; every rank stops at it
            preemption.after_step(step, total, tr["checkpoint_every"], save_progress, ckpt_path)
    bar.close()
    if total == 0 and d.is_main:  # the untrained control: its held-out loss is the curve's one point
        with open(log_path, "a") as f:
            f.write(json.dumps({"step": 0, **evaluate(model, val_batches, d.device, autocast, targets)}) + "\n")

    summary = {
        "run": name,
        "scale": scale,
        "control": control,
        "ctf_stage": ctf_stage,
        "steps": total,
        "params": model.num_params(),
        "per_device_batch": per_device,
        "accumulation": accum,
        "world_size": d.world_size,
    }
    if d.is_main:
        checkpoint.save(
            out,
            {
                "format": FORMAT,
                "kind": "generator",
                "config": asdict(cfg),
                "model": model.state_dict(),
                "params_hash": run_hash,
                "steps": total,
                "scale": scale,
                "control": control,
                "ctf_stage": ctf_stage,
            },
        )
        atomic.write_text(log_out, log_path.read_text() if log_path.exists() else "")
        if curve_out is not None:
            plots.log_curves(curve_out, plots.read_log(log_out), CURVES, title=f"generator {name}")
        shutil.rmtree(work_dir)  # done: a later run with other params starts fresh instead of refusing to resume
    distributed.teardown()
    return summary


def add_arguments(parser) -> None:
    parser.add_argument("--scale", help="a key of generator.scales in params (all but --ctf-stage 2: ctf.stage2)")
    parser.add_argument("--train-tokens", type=Path, required=True, help="train token directory (extract-tokens)")
    parser.add_argument("--val-tokens", type=Path, required=True, help="held-out token directory (extract-tokens)")
    cliargs.training_outputs(parser)
    parser.add_argument(
        "--control", choices=CONTROLS, help="an evaluation control: no training step, or labels permuted across images"
    )
    parser.add_argument("--ctf-stage", type=int, choices=[1, 2], help="CTF's stage 1 (coarse AR) or 2 (fine, one pass)")
    parser.add_argument("--coarse-map", type=Path, help="CTF: the fine -> coarse map (ctf-clusters)")


def main(args, p: dict) -> None:
    cliargs.together(args, "ctf_stage", "coarse_map")
    names = ("scale", "work_dir", "out", "log_out", "curve_out", "control", "ctf_stage", "coarse_map")
    summary = run(p, **cliargs.passed(args, *names, train_dir="train_tokens", val_dir="val_tokens"))
    log.info("generator %s trained: %s", summary["run"], summary)
