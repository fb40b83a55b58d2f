"""AR generator training: batch split, logs, exact kill-and-resume, accumulation and DDP equal one big batch."""

import dataclasses
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from alitok import config
from alitok.generator.train import batch_split, optimizer
from alitok.models.generator import Generator, GeneratorConfig
from alitok.training import checkpoint

from conftest import (
    REPO,
    extract_tiny_tokens,
    final_weights,
    generator_train_cmd,
    kill_at_step,
    make_tiny_data,
    run,
    save_random_tokenizer,
    terminate_at_step,
    tool_env,
)


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """Tiny data, a random tiny tokenizer, its extracted tokens, and a params file with 20 generator steps."""
    ws = tmp_path_factory.mktemp("gen")
    save_random_tokenizer(ws / "tok.pt", make_tiny_data(ws, train_per_class=4, val_per_class=2))
    extract_tiny_tokens(ws, ten_crop_train=True)
    doc = yaml.safe_load((REPO / "params.yaml").read_text())
    doc["profiles"]["tiny"]["generator"]["scales"]["S"].update(steps=20)
    doc["profiles"]["tiny"]["generator"]["training"].update(checkpoint_every=3, log_every=1)
    (ws / "params.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return ws


def train_cmd(ws, name, params=None, launcher=None):
    run_dir = ws / name
    files = (run_dir / "work", run_dir / "model.pt", run_dir / "log.jsonl")
    return generator_train_cmd(ws, *files, "--scale", "S", params=params or ws / "params.yaml", launcher=launcher)


def final_state(ws, name, train=False) -> dict:
    return final_weights(ws / name / "model.pt", "generator", train_cmd(ws, name) if train else None)


@pytest.fixture(scope="module")
def uninterrupted(ws):
    return final_state(ws, "straight", train=True)


def test_batch_split():
    assert batch_split(2048, 16, 128) == (128, 1)  # B: 16 GPUs x 128
    assert batch_split(2048, 8, 128) == (128, 2)  # same global batch on half the GPUs: accumulate
    assert batch_split(16, 1, 8) == (8, 2)
    assert batch_split(10, 1, 4) == (2, 5)  # the per-device batch divides the local batch exactly
    with pytest.raises(ValueError, match="not divisible by 3 processes"):
        batch_split(16, 3, 8)


@pytest.mark.parametrize("decay_embeddings", [False, True])
def test_weight_decay_groups(decay_embeddings):
    """Norms never decay; the token and class tables decay only as LlamaGen's recipe says (AliTok's: never)."""
    model = Generator(
        GeneratorConfig(arch="llamagen", width=16, depth=1, heads=2, vocab_size=8, num_classes=3, num_prefix=0, grid=2)
    )
    opt = {"weight_decay": 0.03, "betas": [0.9, 0.96], "decay_embeddings": decay_embeddings}
    decay, rest = optimizer(model, opt).param_groups
    names = {id(p): n for n, p in model.named_parameters()}
    tables = {"embeddings.weight", "class_embeddings.weight"}
    norms = {"blocks.0.norm1.weight", "blocks.0.norm2.weight", "norm.weight"}
    assert {names[id(p)] for p in rest["params"]} == norms | (set() if decay_embeddings else tables)
    assert (tables <= {names[id(p)] for p in decay["params"]}) == decay_embeddings
    assert decay["weight_decay"] == 0.03 and rest["weight_decay"] == 0.0


def test_llamagen_recipe_of_the_ctf256_profile():
    """ctf256 trains with LlamaGen's train_c2i.py recipe (docs/papers/llamagen.md §3): AdamW at a constant 1e-4,
    betas (0.9, 0.95), decay 0.05 on every tensor of two or more dimensions, the embedding tables included, none on
    the norms; clip 1.0, batch 256, 300 epochs; dropout 0.1 on residuals, FFN, tokens and class, none on attention."""
    from alitok.generator.config import model_config
    from alitok.training import schedule

    p = config.load(REPO / "params.yaml", "ctf256")
    g = p["generator"]
    model = Generator(dataclasses.replace(model_config(p, "B", 1000), width=32, depth=2, heads=2))
    decay, rest = optimizer(model, g["optimizer"]).param_groups
    names = {id(q): n for n, q in model.named_parameters()}
    assert {names[id(q)] for q in decay["params"]} == {n for n, q in model.named_parameters() if q.dim() >= 2}
    assert {"embeddings.weight", "class_embeddings.weight"} <= {names[id(q)] for q in decay["params"]}
    assert all(q.dim() == 1 for q in rest["params"]) and rest["weight_decay"] == 0.0
    assert decay["weight_decay"] == 0.05 and decay["betas"] == (0.9, 0.95)
    steps = g["scales"]["B"]["steps"]
    o = g["optimizer"]
    lrs = {schedule.warmup_cosine(k, steps, o["lr"], o["end_lr"], o["warmup_steps"]) for k in (0, steps // 2, steps)}
    assert lrs == {1e-4} and o["grad_clip"] == 1.0
    assert g["training"]["global_batch"] == 256 and steps == 300 * (1_281_167 // 8 // 32)  # 8 ranks x 32, drop_last
    assert g["dropout"] == {"residual": 0.1, "attention": 0.0, "token": 0.1, "class_label": 0.1}
    assert {s["arch"] for s in g["scales"].values()} == {"llamagen"}


def test_logs_loss_accuracy_held_out_and_throughput(ws, uninterrupted):
    records = [json.loads(line) for line in (ws / "straight" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, 21))
    assert all(r["tokens_per_s"] > 0 and 0 <= r["acc"] <= 1 and r["loss"] > 0 for r in records)
    held_out = [r for r in records if "val_loss" in r]
    assert [r["step"] for r in held_out] == [6, 12, 18, 20] and all(0 <= r["val_acc"] <= 1 for r in held_out)
    assert all(abs(r["val_class_gain"]) < r["val_loss"] for r in held_out)  # null-label loss minus true-label loss
    assert records[-1]["loss"] < records[0]["loss"]  # it learns something in 20 steps


def test_controls(ws, uninterrupted):
    """untrained: the seeded initial weights and a one-point log; shuffled_labels: same recipe, other labels."""
    run(train_cmd(ws, "untrained") + ["--control", "untrained"], cwd=REPO)
    ck = checkpoint.load(ws / "untrained" / "model.pt", kind="generator")
    torch.manual_seed(
        yaml.safe_load((ws / "params.yaml").read_text())["profiles"]["smoke"]["generator"]["training"]["seed"]
    )
    init = Generator(GeneratorConfig(**ck["config"])).state_dict()
    assert ck["control"] == "untrained" and ck["steps"] == 0
    assert all(torch.equal(init[k], v) for k, v in ck["model"].items())
    (record,) = [json.loads(line) for line in (ws / "untrained" / "log.jsonl").read_text().splitlines()]
    assert record["step"] == 0 and record["val_loss"] > 0

    run(train_cmd(ws, "shuffled") + ["--control", "shuffled_labels"], cwd=REPO)
    shuffled = final_state(ws, "shuffled")
    assert any(not torch.equal(shuffled[k], uninterrupted[k]) for k in shuffled)
    share = config.load(ws / "params.yaml", "tiny")["evaluation"]["shuffled_labels_share"]
    assert checkpoint.load(ws / "shuffled" / "model.pt", kind="generator")["steps"] == round(
        20 * share
    )  # its share of S's 20


def test_shuffled_labels_keep_class_counts_and_break_the_pairing(ws):
    import numpy as np

    from alitok.tokens.store import TokenShards, TrainTokens

    shards = TokenShards(ws / "tokens" / "train")
    true = np.array([shards[i][1] for i in range(len(shards))])
    data = TrainTokens(shards, 0, 0.0, 99, shuffle_labels=True)
    shuffled = np.array([data[(i, i)][1] for i in range(len(shards))])
    assert sorted(shuffled) == sorted(true) and (shuffled != true).any()
    again = TrainTokens(shards, 0, 0.0, 99, shuffle_labels=True)
    assert [again[(7, i)][1] for i in range(len(shards))] == list(shuffled)  # fixed per image, not per draw


def test_kill_and_resume_gives_identical_weights(ws, uninterrupted):
    name = "killed"
    log = ws / name / "work" / "log.jsonl"
    rng = random.Random(int(time.time()))
    # once before the first checkpoint (step 4 in tiny), once after it
    for at in (1, rng.randint(5, 17)):
        kill_at_step(train_cmd(ws, name), log, at, cwd=REPO)
    resumed = final_state(ws, name, train=True)
    for key in uninterrupted:
        assert torch.equal(resumed[key], uninterrupted[key]), key
    steps = [json.loads(line)["step"] for line in (ws / name / "log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 21))
    assert not (ws / name / "work").exists(), "a finished run clears its work dir"


def test_sigterm_checkpoints_the_step_in_progress_and_the_rerun_matches(ws, uninterrupted):
    """SLURM's preemption: SIGTERM mid-run; the job finishes its step, checkpoints it (between the periodic
    checkpoints, every 3 steps here), exits PREEMPTED; the rerun ends with the uninterrupted run's weights."""
    from alitok.training.preemption import PREEMPTED

    code, err = terminate_at_step(train_cmd(ws, "term"), ws / "term" / "work" / "log.jsonl", 4, cwd=REPO)
    assert code == PREEMPTED and "preempted (SIGTERM)" in err, err[-2000:]
    step = checkpoint.load(ws / "term" / "work" / "last.pt", kind="generator-train")["step"]
    assert 4 <= step < 20 and f"checkpoint at step {step}" in err
    resumed = final_state(ws, "term", train=True)
    for key in uninterrupted:
        assert torch.equal(resumed[key], uninterrupted[key]), key
    steps = [json.loads(line)["step"] for line in (ws / "term" / "log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 21))


def test_sigterm_to_two_gloo_ranks_checkpoints_one_agreed_step(ws, tmp_path):
    """torchrun with two ranks, every process signalled at once: both stop after the same step (one checkpoint
    holds both ranks' RNG streams at it), the launcher exits non-zero, and the rerun ends bit-identical to an
    uninterrupted two-rank run."""
    torchrun = [str(Path(sys.executable).parent / "torchrun"), "--standalone", "--nproc_per_node=2", "-m", "alitok"]
    cmd = train_cmd(ws, "ddp_straight", None, torchrun)
    straight = final_weights(ws / "ddp_straight" / "model.pt", "generator", cmd)
    work = ws / "ddp_term" / "work"
    code, err = terminate_at_step(train_cmd(ws, "ddp_term", None, torchrun), work / "log.jsonl", 4, cwd=REPO)
    assert code != 0 and "preempted (SIGTERM)" in err, err[-3000:]
    ck = checkpoint.load(work / "last.pt", kind="generator-train")
    assert 4 <= ck["step"] < 20 and len(ck["rng"]) == 2
    assert err.count(f"checkpoint at step {ck['step']}") == 2  # both ranks name the same step
    resumed = final_weights(ws / "ddp_term" / "model.pt", "generator", train_cmd(ws, "ddp_term", None, torchrun))
    for key in straight:
        assert torch.equal(resumed[key], straight[key]), key


def test_no_checkpoint_yet_means_start_over_with_an_empty_log(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text('{"step": 1}\n{"step": 2}\n')
    assert checkpoint.load_progress(tmp_path / "last.pt", kind="generator-train", params_hash="h", log_path=log) is None
    assert log.read_text() == ""


def test_resume_with_other_params_is_refused_and_finished_runs_leave_no_state(ws, uninterrupted, tmp_path):
    kill_at_step(train_cmd(ws, "interrupted"), ws / "interrupted" / "work" / "log.jsonl", 7, cwd=REPO)
    assert (ws / "interrupted" / "work" / "last.pt").is_file()
    doc = yaml.safe_load((ws / "params.yaml").read_text())
    doc["profiles"]["tiny"]["generator"]["optimizer"] = {"lr": 5.0e-4}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    proc = run(train_cmd(ws, "interrupted", params=tmp_path / "params.yaml"), cwd=REPO, check=False)
    assert proc.returncode == 2 and "different params" in proc.stderr
    # a finished run left nothing to resume: other params simply train afresh
    assert not (ws / "straight" / "work").exists()
    doc["profiles"]["tiny"]["generator"]["scales"]["S"]["steps"] = 2
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    run(train_cmd(ws, "straight", params=tmp_path / "params.yaml"), cwd=REPO)


def test_accumulation_and_two_processes_equal_one_big_batch(ws, tmp_path):
    """Global batch 16 as 1 x 16, as 2 accumulated micro-batches of 8, and as 2 gloo processes x 8: same
    weights. Dropout is off here: it draws from each process's own RNG stream (the data-side choices, crop and
    label dropout, are keyed by sample position and so identical in every layout)."""
    doc = yaml.safe_load((ws / "params.yaml").read_text())
    gen = doc["profiles"]["tiny"]["generator"]
    gen["dropout"] = {"residual": 0.0, "attention": 0.0, "token": 0.0, "class_label": 0.2}
    gen["scales"]["S"].update(steps=6)
    layouts = {
        "big": (16, None),
        "accum": (8, None),
        "ddp": (
            8,
            [str(Path(sys.executable).parent / "torchrun"), "--standalone", "--nproc_per_node=2", "-m", "alitok"],
        ),
    }
    env = tool_env() | {"OMP_NUM_THREADS": "1"}
    for name, (micro, launcher) in layouts.items():
        gen["scales"]["S"]["micro_batch"] = micro
        params = tmp_path / f"{name}.yaml"
        params.write_text(yaml.safe_dump(doc, sort_keys=False))
        proc = subprocess.run(
            train_cmd(ws, f"layout_{name}", params, launcher),
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
    big = final_state(ws, "layout_big")
    for name in ("accum", "ddp"):
        other = final_state(ws, f"layout_{name}")
        for key in big:
            torch.testing.assert_close(other[key], big[key], rtol=1e-4, atol=1e-5, msg=f"{name}: {key}")
