"""Tokenizer training: each stage runs its phases (the released recipe's restarts) from params.

Two families (`tokenizer.family`). AliTok's trains in two stages: stage 1 trains encoder, codebook and the causal
decoder; stage 2 freezes encoder and codebook and trains a bidirectional decoder initialised from stage 1. The
same loop, with the stage-1 model and stage 2's phase table, gives the control that stage 2 must beat ("stage 1
continued for the same number of steps"). LlamaGen's VQ-16 has stage 1 only, LlamaGen's VQ losses and no
auxiliary head nor codebook revival; its phases, perceptual and GAN terms, optimiser and precision are AliTok's
(`family_parts` holds what differs).

Runs as one process or under `torchrun` (DDP). Everything exact resume needs is checkpointed every
`checkpoint_every` steps into a work directory outside the rule's outputs (Snakemake deletes the outputs of
a failed job, never the work directory); a rerun continues from there and ends with identical weights.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from alitok import atomic, cliargs, joblog, plots, reads
from alitok.config import ParamsError, section_hash
from alitok.data import manifest
from alitok.data.loader import TrainImages, train_loader
from alitok.geometry import family
from alitok.models.tokenizer import Tokenizer, TokenizerConfig, prefix_target
from alitok.models.vq16 import VQ16, VQ16Config
from alitok.tokenizer import gan, losses
from alitok.training import checkpoint, distributed, schedule
from alitok.training.precision import Precision
from alitok.training.preemption import Preemption

log = logging.getLogger("alitok.tokenizer")

FORMAT = "alitok-tokenizer/1"

# (label, log keys, log scale[, note]) of the training-curve figure; dashed lines mark phase restarts. Code use is
# logged in stage 1 only (stage 2 freezes the codebook): AliTok's is the share of codes whose usage EMA is above
# 1e-3 of uniform, VQ-16's the share this batch used; neither is eval-tokenizer's share over the held-out set.
CURVES = [
    ("loss terms (unweighted)", ["recon", "aux", "commitment", "codebook", "perceptual", "lpips"], True),
    ("GAN (hinge)", ["gan_g", "gan_d"], False),
    (
        "codes in use while training (fraction)",
        ["codebook_used"],
        False,
        "stage 1 only. AliTok: usage EMA ≥ 0.001 × uniform; VQ-16: this batch. Not the held-out share (_metrics.json)",
    ),
    ("throughput (images/s)", ["images_per_s"], False),
]


def model_config(p: dict) -> TokenizerConfig:
    return TokenizerConfig(image_size=p["data"]["image_size"], **p["tokenizer"]["model"])


def vq16_config(p: dict) -> VQ16Config:
    return VQ16Config(image_size=p["data"]["image_size"], **p["tokenizer"]["vq16"])


@dataclass
class FamilyParts:
    """What the training loop does differently per tokenizer family; the rest of a step is the same."""

    model: torch.nn.Module
    codebook: torch.nn.Parameter  # its own optimiser group, at `codebook_lr_scale`
    aux: Callable[[dict, torch.Tensor], torch.Tensor | None]  # (outputs, images) -> the auxiliary loss, or None
    revive: Callable[[dict], None] | None  # after each optimiser step (AliTok's CVQ revival), or None
    usage: Callable[[dict], dict]  # outputs -> the codebook usage logged (codebook_used, codebook_perplexity)
    entry: dict  # keys the final checkpoint adds: VQ-16's records its family; AliTok's stay as they were


def stage_name(stage: int, phases_from: int | None) -> str:
    """A stage's name in its progress bar and log: stage 1, stage 2, or stage 1 continued (the control)."""
    return f"stage {stage}" + (" continued" if (phases_from or stage) != stage else "")


def check_stage(p: dict, stage: int, phases_from: int | None) -> None:
    """VQ-16 has one training stage (LlamaGen trains it once): refuse its stage 2 and the stage-2 control."""
    if family(p) == "vq16" and (stage, phases_from or stage) != (1, 1):
        asked = f"--stage {stage}" + (f" --phases-from {phases_from}" if phases_from else "")
        raise ParamsError(
            f"tokenizer.family vq16 has one training stage (LlamaGen trains VQ-16 once), not {asked}: "
            "stage 2 and the continued-stage-1 control are AliTok's"
        )


def family_parts(p: dict, stage: int) -> FamilyParts:
    """The params' tokenizer family, freshly initialised from the current torch RNG state."""
    q = p["tokenizer"]["quantizer"]
    if family(p) == "vq16":
        model = VQ16(vq16_config(p))
        return FamilyParts(
            model=model,
            codebook=model.quantize.embedding.weight,
            aux=lambda outputs, x: None,
            revive=None,
            usage=lambda outputs: model.quantize.usage_stats(outputs["codes"]),
            entry={"family": "vq16"},
        )
    cfg = model_config(p)
    init_std = p["tokenizer"]["training"]["init_std"]
    model = Tokenizer(cfg, stage, usage_decay=q["usage_decay"], codebook_init_std=q["init_std"], init_std=init_std)

    def aux(outputs, x):
        return None if outputs["aux"] is None else F.mse_loss(outputs["aux"].float(), prefix_target(x, cfg))

    def revive(outputs):
        model.quantizer.revive(outputs["z"].detach().float())

    return FamilyParts(
        model=model,
        codebook=model.quantizer.codebook,
        aux=aux,
        revive=revive if stage == 1 and q["revival"] else None,
        usage=lambda outputs: model.quantizer.usage_stats(),
        entry={},
    )


def phase_at(phases: list[dict], step: int) -> tuple[dict, int]:
    """The phase that global step `step` falls in, and the step within it."""
    for phase in phases:
        if step < phase["steps"]:
            return phase, step
        step -= phase["steps"]
    raise IndexError("step beyond the last phase")


def _optimizer(params, opt: dict, scaled=(), lr_scale: float = 1.0) -> torch.optim.AdamW:
    """AdamW; 1-D tensors (norms, biases) decay only with `decay_vectors` (the release decays every tensor). The
    `scaled` tensors (the codebook) get their own group whose learning rate is `lr_scale` times the schedule's."""
    special = {id(q) for q in scaled}
    params = [q for q in params if q.requires_grad]
    plain = [q for q in params if id(q) not in special]
    groups = [
        {"params": [q for q in plain if q.dim() >= 2], "weight_decay": opt["weight_decay"]},
        {
            "params": [q for q in plain if q.dim() < 2],
            "weight_decay": opt["weight_decay"] if opt["decay_vectors"] else 0.0,
        },
    ]
    own = [q for q in params if id(q) in special]
    if own:
        groups.append({"params": own, "weight_decay": opt["weight_decay"], "lr_scale": lr_scale})
    return torch.optim.AdamW(groups, lr=0.0, betas=tuple(opt["betas"]))


def _perceptual(tok: dict, phases: list[dict], perceptual_net) -> losses.PerceptualLoss:
    """Build only the parts some phase uses: a missing weights file is an error exactly when it would be read."""
    return losses.PerceptualLoss(
        tok["perceptual"],
        logits_weight=float(any(ph["perceptual_weight"] > 0 for ph in phases)),
        lpips_weight=float(any(ph["lpips_weight"] > 0 for ph in phases)),
        domain_checkpoint=perceptual_net,
        section="tokenizer.perceptual",
    )


def run(
    p: dict,
    *,
    stage: int,
    train_csv,
    dataset_json,
    work_dir,
    out,
    log_out,
    init=None,
    perceptual_net=None,
    phases_from: int | None = None,
    curve_out=None,
) -> dict:
    """Train one tokenizer stage (or the stage-1 control with `phases_from=2`) and write `out` and `log_out`."""
    check_stage(p, stage, phases_from)
    d = distributed.setup()
    tok, tr = p["tokenizer"], p["tokenizer"]["training"]
    phases = tok[f"stage{phases_from or stage}"]
    total_steps = sum(ph["steps"] for ph in phases)
    image_size = p["data"]["image_size"]
    work_dir, out, log_out = Path(work_dir), Path(out), Path(log_out)
    if d.is_main:
        work_dir.mkdir(parents=True, exist_ok=True)
    run_hash = section_hash(  # what it reads from params, and where it starts
        {
            **reads.train_tokenizer(p, stage, phases_from),
            "image_size": image_size,
            "stage": stage,
            "phases_from": phases_from,
            "init": checkpoint_digest(init),
        }
    )

    torch.manual_seed(tr["seed"])
    parts = family_parts(p, stage)
    model = parts.model
    dcfg = tok["discriminator"]
    disc = gan.discriminator(dcfg)
    if init is not None:
        source = checkpoint.load(init, kind="tokenizer")
        if stage == 2:
            model.init_stage2_from(source["model"], tok["stage2_init"]["code_positions"])
        else:
            model.load_state_dict(source["model"])
        if dcfg["recipe"] == "release" and "discriminator" in source:  # the release restarts from last.pth, D included
            disc.load_state_dict(source["discriminator"])
    model.to(d.device)
    disc.to(d.device)
    perceptual = _perceptual(tok, phases, perceptual_net).to(d.device)
    opt = tok["optimizer"]
    opt_g = _optimizer(model.parameters(), opt, scaled=[parts.codebook], lr_scale=tok["quantizer"]["codebook_lr_scale"])
    opt_d = _optimizer(disc.parameters(), opt)
    clip = opt["grad_clip"] or math.inf  # inf: the norm is measured and logged, nothing is clipped
    amp = Precision(d.device, tr["precision"])
    # the release computes every loss, the discriminator's included, in fp32 outside autocast; LlamaGen inside it
    fp32_losses = dcfg["recipe"] == "release"
    loss_precision = contextlib.nullcontext if fp32_losses else amp.autocast
    scaler = amp.scaler
    set_tf32(tr["tf32"])

    ckpt_path, log_path = work_dir / "last.pt", work_dir / "log.jsonl"
    states = {"model": model, "disc": disc, "opt_g": opt_g, "opt_d": opt_d, "scaler": scaler}
    step = checkpoint.resume(ckpt_path, kind="tokenizer-train", params_hash=run_hash, log_path=log_path, **states)

    ddp_model = model if d.world_size == 1 else torch.nn.parallel.DistributedDataParallel(model)
    ddp_disc = disc if d.world_size == 1 else torch.nn.parallel.DistributedDataParallel(disc)
    info = manifest.read_dataset_info(dataset_json)
    data = TrainImages(manifest.read_manifest(train_csv), info["root"], image_size, tr["seed"])
    loader = train_loader(
        data, tr, d, range(step, total_steps), source=train_csv, key="tokenizer.training.global_batch"
    )
    weights = {
        "recon": tok["loss"]["recon_weight"],
        "aux": tok["loss"]["aux_weight"],
        "commitment": tok["quantizer"]["commitment_weight"],
        "codebook": tok["quantizer"]["codebook_weight"],
    }
    bar = tqdm(
        total=total_steps,
        initial=step,
        desc=f"tokenizer {joblog.label(p, stage_name(stage, phases_from))}",
        unit="step",
        file=sys.stderr,
        disable=not d.is_main,
    )
    tick, images_since = time.perf_counter(), 0
    g_terms, d_terms, loss, grad_norm = {}, {}, None, None  # the latest of each kind: alternation logs both

    def save_progress():
        payload = {"format": FORMAT, "kind": "tokenizer-train", "step": step, "params_hash": run_hash}
        payload |= {name: obj.state_dict() for name, obj in states.items()}
        checkpoint.save_progress(ckpt_path, payload)

    with Preemption(d.device) as preemption:
        for x, _ in loader:
            phase, k = phase_at(phases, step)
            turn = gan.turn(dcfg["recipe"], phase, k)
            if k == 0 and opt["reset_each_phase"]:  # the release's last.pth holds no optimiser state
                opt_g.state.clear()
                opt_d.state.clear()
            lr = schedule.warmup_cosine(
                turn.lr_step, turn.lr_steps, phase["lr"], phase["end_lr"], phase["warmup_steps"]
            )
            for group in opt_g.param_groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)
            for group in opt_d.param_groups:
                group["lr"] = lr * dcfg["lr_scale"]
            x = x.to(d.device, non_blocking=True).float() / 255

            if turn.generator:
                with amp.autocast():
                    outputs = ddp_model(x)
                recon = outputs["image"].float() if fp32_losses else outputs["image"]
                with loss_precision():
                    terms = {"recon": F.mse_loss(recon.float(), x)}
                    if stage == 1:
                        terms["commitment"] = outputs["commitment"]
                        terms["codebook"] = outputs["codebook"]
                        aux = parts.aux(outputs, x)
                        if aux is not None:
                            terms["aux"] = aux
                    if phase["perceptual_weight"] > 0:
                        terms["perceptual"] = perceptual.logits_mse(recon, x)
                        weights["perceptual"] = phase["perceptual_weight"]
                    if phase["lpips_weight"] > 0:
                        terms["lpips"] = perceptual.lpips(recon, x)
                        weights["lpips"] = phase["lpips_weight"]
                    if phase["gan_weight"] > 0:  # through the bare module: D's own update below is the DDP-synced one
                        terms["gan_g"] = gan.generator_adv_loss(disc(recon))
                        weights["gan_g"] = phase["gan_weight"]
                    loss = sum(weights[name] * value for name, value in terms.items())
                opt_g.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.unscale_(opt_g)
                grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
                scaler.step(opt_g)
                scaler.update()
                g_terms = terms
            else:  # a discriminator-only iteration of the release: its own batch through the tokenizer, no G update
                with torch.no_grad(), amp.autocast():
                    outputs = model(x)
                recon = outputs["image"]
            if parts.revive is not None:  # the release's online clustering runs in every training forward
                parts.revive(outputs)

            if turn.train_disc:
                opt_d.zero_grad(set_to_none=True)
                with loss_precision():
                    # one forward for real and fake: DDP allows a single forward per backward (GroupNorm is per sample)
                    real_logits, fake_logits = ddp_disc(torch.cat([x, recon.detach().float()])).chunk(2)
                    d_loss = gan.hinge_d_loss(real_logits, fake_logits)
                scaler.scale(dcfg["loss_weight"] * d_loss).backward()
                scaler.unscale_(opt_d)
                torch.nn.utils.clip_grad_norm_(disc.parameters(), clip)
                scaler.step(opt_d)
                scaler.update()
                d_terms = {"gan_d": d_loss}
            elif phase["gan_weight"] <= 0:
                d_terms = {}

            step += 1
            images_since += x.shape[0] * d.world_size
            bar.update(1)
            if d.is_main and (step % tr["log_every"] == 0 or step == total_steps):
                seconds = time.perf_counter() - tick
                record = {
                    "step": step,
                    "stage": stage,
                    "phase": phase["name"],
                    "update": turn.label,
                    "lr": lr,
                    "lr_step": turn.lr_step,
                    "g_updates": adam_steps(opt_g),  # AdamW's own counts: they restart where the optimisers reset
                    "d_updates": adam_steps(opt_d),
                    **({} if loss is None else {"loss": loss.item(), "grad_norm": grad_norm.item()}),
                    "images_per_s": images_since / seconds,
                    **{name: value.item() for name, value in {**g_terms, **d_terms}.items()},
                }
                if stage == 1:
                    record.update(parts.usage(outputs))
                with open(log_path, "a") as f:
                    f.write(json.dumps(record) + "\n")
                bar.set_postfix(loss=f"{record.get('loss', math.nan):.4f}", phase=phase["name"])
                tick, images_since = time.perf_counter(), 0
            # SIGTERM: this step is done; every rank stops at it
            preemption.after_step(step, total_steps, tr["checkpoint_every"], save_progress, ckpt_path)
    bar.close()

    summary = {"stage": stage, "steps": total_steps, "phases": [ph["name"] for ph in phases]}
    if d.is_main:
        final = {
            "format": FORMAT,
            "kind": "tokenizer",
            **parts.entry,
            "stage": stage,
            "config": asdict(model.config),
            "model": model.state_dict(),
            "discriminator": disc.state_dict(),  # what the release's stage 2 starts its D from
            "params_hash": run_hash,
            "steps": total_steps,
            "phases_from": phases_from or stage,
        }
        checkpoint.save(out, final)
        atomic.write_text(log_out, log_path.read_text() if log_path.exists() else "")
        if curve_out is not None:
            plots.log_curves(
                curve_out,
                plots.read_log(log_out),
                CURVES,
                title=f"tokenizer stage {stage}" + (" continued (control)" if phases_from else ""),
            )
        shutil.rmtree(work_dir)  # done: a later run with other params starts fresh instead of refusing to resume
    distributed.teardown()
    return summary


def adam_steps(opt: torch.optim.Optimizer) -> int:
    """How many updates the optimiser's moments have seen (0 right after a reset)."""
    return max((int(state["step"]) for state in opt.state.values() if "step" in state), default=0)


def set_tf32(on: bool) -> None:
    """TF32 for CUDA matmuls and cuDNN convolutions when `on`; otherwise PyTorch's defaults, which the release keeps
    (matmuls in full fp32, cuDNN free to use TF32 in convolutions). No effect on the CPU."""
    torch.backends.cuda.matmul.allow_tf32 = on
    if on:
        torch.backends.cudnn.allow_tf32 = True


def checkpoint_digest(path) -> str | None:
    """Identify an init checkpoint by content, so a changed stage-1 result invalidates stage-2 progress."""
    return None if path is None else atomic.sha256_file(path)[:16]


def add_arguments(parser) -> None:
    parser.add_argument("--stage", type=int, choices=[1, 2], required=True)
    cliargs.manifests(parser, "train")
    parser.add_argument("--init", type=Path, help="tokenizer checkpoint to start from (stage 2: the stage-1 result)")
    parser.add_argument("--perceptual-net", type=Path, default=None, help="smoke perceptual network (model.pt)")
    parser.add_argument(
        "--phases-from",
        type=int,
        choices=[1, 2],
        default=None,
        help="take the phase table of this stage (2 with --stage 1: the continued-stage-1 control)",
    )
    cliargs.training_outputs(parser)


def main(args, p: dict) -> None:
    names = ("stage", "work_dir", "out", "log_out", "init", "perceptual_net", "phases_from", "curve_out")
    summary = run(p, **cliargs.passed(args, *names, train_csv="train", dataset_json="dataset"))
    log.info("tokenizer %s trained: %s", joblog.label(p, stage_name(args.stage, args.phases_from)), summary)
