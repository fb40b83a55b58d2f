"""Tokenizer training: every loss term runs, exact kill-and-resume, refused mismatched resume, DDP == 1 process."""

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from conftest import (
    REPO,
    final_weights,
    kill_at_step,
    make_tiny_data,
    run,
    save_random_classifier,
    terminate_at_step,
    tiny_train_cmd,
    tool_env,
)

TERMS = ["recon", "commitment", "codebook", "aux", "perceptual", "lpips", "gan_g", "gan_d"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A tiny embedded dataset, its manifests, a perceptual net, and a params file with a longer stage 1."""
    ws = tmp_path_factory.mktemp("tok")
    emb = make_tiny_data(ws, train_per_class=4, val_per_class=2)["data"]["embedded"]
    save_random_classifier(ws / "perceptual.pt", emb["num_classes"])
    doc = yaml.safe_load((REPO / "params.yaml").read_text())
    tiny = doc["profiles"]["tiny"]["tokenizer"]
    tiny["stage1"] = [dict(ph, steps=10) for ph in tiny["stage1"]]  # 30 steps: room for a kill mid-way
    tiny["training"].update(checkpoint_every=3, log_every=1)
    (ws / "params.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return ws


def train_cmd(ws, name, stage=1, init=None, launcher=None):
    run_dir, perceptual = ws / name, ["--perceptual-net", ws / "perceptual.pt"]
    inputs = ["--train", ws / "data" / "train.csv", "--dataset", ws / "data" / "dataset.json", *perceptual]
    files = (run_dir / "work", run_dir / "final.pt", run_dir / "log.jsonl")
    cmd = tiny_train_cmd(
        "train-tokenizer", *files, "--stage", stage, *inputs, params=ws / "params.yaml", launcher=launcher
    )
    return cmd + (["--init", str(init)] if init else [])


def final_state(ws, name, train=False) -> dict:
    return final_weights(ws / name / "final.pt", "tokenizer", train_cmd(ws, name) if train else None)


@pytest.fixture(scope="module")
def uninterrupted(workspace):
    return final_state(workspace, "straight", train=True)


def test_every_loss_term_is_active_and_logged(workspace, uninterrupted):
    records = [json.loads(line) for line in (workspace / "straight" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, 31))
    stage1_terms = {t for r in records for t, v in r.items() if t in TERMS and v != 0}
    assert stage1_terms == set(TERMS), f"terms never active: {set(TERMS) - stage1_terms}"
    assert {r["phase"] for r in records} == {"lpips_warmup", "perceptual", "gan"}
    assert all(r["images_per_s"] > 0 and 0 <= r["codebook_used"] <= 1 for r in records)
    # tiny's GAN recipe is `llamagen`: both networks every step, one AdamW run through the phases (no resets)
    assert [r["g_updates"] for r in records] == list(range(1, 31))
    assert {r["update"] for r in records if r["phase"] == "gan"} == {"both"} and records[-1]["d_updates"] == 10


def test_kill_and_resume_gives_identical_weights(workspace, uninterrupted):
    name = "killed"
    log = workspace / name / "work" / "log.jsonl"
    rng = random.Random(int(time.time()))
    for _ in range(2):  # killed twice in a row at random steps, then run to the end
        code = kill_at_step(train_cmd(workspace, name), log, rng.randint(4, 26), cwd=REPO)
    assert not (workspace / name / "final.pt").exists() or code == 0
    resumed = final_state(workspace, name, train=True)
    assert resumed.keys() == uninterrupted.keys()
    for key in uninterrupted:
        assert torch.equal(resumed[key], uninterrupted[key]), key
    steps = [json.loads(line)["step"] for line in (workspace / name / "log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 31)), "the log has each step exactly once after resumes"
    assert not (workspace / name / "work").exists(), "a finished run clears its work dir"


def test_sigterm_mid_phase_checkpoints_and_the_rerun_matches(workspace, uninterrupted):
    """SLURM's preemption of the tokenizer trainer: it finishes the step, checkpoints it, exits PREEMPTED, and
    the rerun ends with the uninterrupted run's weights (the generator's trainer: tests/test_generator_train.py,
    one process and two gloo ranks)."""
    from alitok.training import checkpoint
    from alitok.training.preemption import PREEMPTED

    work = workspace / "term" / "work"
    code, err = terminate_at_step(train_cmd(workspace, "term"), work / "log.jsonl", 13, cwd=REPO)
    assert code == PREEMPTED and "preempted (SIGTERM)" in err, err[-2000:]
    assert 13 <= checkpoint.load(work / "last.pt", kind="tokenizer-train")["step"] < 30
    resumed = final_state(workspace, "term", train=True)
    for key in uninterrupted:
        assert torch.equal(resumed[key], uninterrupted[key]), key


@pytest.fixture(scope="module")
def interrupted(workspace):
    """A run killed after its first checkpoints: work/last.pt is left behind."""
    kill_at_step(train_cmd(workspace, "interrupted"), workspace / "interrupted" / "work" / "log.jsonl", 7, cwd=REPO)
    assert (workspace / "interrupted" / "work" / "last.pt").is_file()
    return workspace / "interrupted" / "work"


def test_resume_with_other_params_is_refused(workspace, interrupted, tmp_path):
    work = interrupted
    changed = yaml.safe_load((workspace / "params.yaml").read_text())
    changed["profiles"]["tiny"]["tokenizer"].setdefault("loss", {})["aux_weight"] = 0.5
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(changed, sort_keys=False))
    cmd = train_cmd(workspace, "interrupted")
    cmd[cmd.index("--params") + 1] = str(tmp_path / "params.yaml")
    proc = run(cmd, cwd=REPO, check=False)
    assert proc.returncode == 2
    assert "different params" in proc.stderr and str(work / "last.pt") in proc.stderr


def test_truncated_checkpoint_is_a_clear_error(workspace, interrupted, tmp_path):
    (tmp_path / "work").mkdir()
    data = (interrupted / "last.pt").read_bytes()
    (tmp_path / "work" / "last.pt").write_bytes(data[: len(data) // 2])
    cmd = train_cmd(workspace, "straight")
    cmd[cmd.index("--work-dir") + 1] = str(tmp_path / "work")
    proc = run(cmd, cwd=REPO, check=False)
    assert proc.returncode == 2 and "truncated or corrupt" in proc.stderr and "last.pt" in proc.stderr


def test_stage2_trains_decoder_only(workspace, uninterrupted):
    run(train_cmd(workspace, "stage2", stage=2, init=workspace / "straight" / "final.pt"), cwd=REPO)
    s2 = final_state(workspace, "stage2")
    frozen = [k for k in uninterrupted if k.startswith(("encoder.", "quantizer.codebook", "latent_tokens"))]
    assert frozen and all(torch.equal(s2[k], uninterrupted[k]) for k in frozen)
    changed = [
        k
        for k in s2
        if k.startswith("decoder.")
        and k in uninterrupted
        and s2[k].shape == uninterrupted[k].shape
        and not torch.equal(s2[k], uninterrupted[k])
    ]
    assert changed, "the stage-2 decoder trained"


def test_two_process_ddp_matches_one_process(workspace, tmp_path):
    """2 CPU processes (gloo) on the same global batch end with the weights of the 1-process run.

    Two steps per phase, every loss term and the discriminator active. All-reduced gradients differ from one
    process's in the last float bits; the discrete VQ argmin and, far more, codebook revival (exponential in
    the usage EMA) amplify such bits, so revival is off here: that it stays in sync across ranks is tested on
    its own (tests/test_tokenizer_model.py, two gloo processes vs one). Per-step gradient norms must agree too.
    """
    doc = yaml.safe_load((workspace / "params.yaml").read_text())
    tiny = doc["profiles"]["tiny"]["tokenizer"]
    tiny["stage1"] = [dict(ph, steps=2, warmup_steps=min(ph["warmup_steps"], 1)) for ph in tiny["stage1"]]
    tiny.setdefault("quantizer", {})["revival"] = False
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))

    def cmd(name, launcher=None):
        c = train_cmd(workspace, name, launcher=launcher)
        c[c.index("--params") + 1] = str(tmp_path / "params.yaml")
        return c

    env = tool_env() | {"OMP_NUM_THREADS": "1"}
    torchrun = [str(Path(sys.executable).parent / "torchrun"), "--standalone", "--nproc_per_node=2", "-m", "alitok"]
    for name, launcher in [("single6", None), ("ddp6", torchrun)]:
        proc = subprocess.run(cmd(name, launcher), cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
    one, two = final_state(workspace, "single6"), final_state(workspace, "ddp6")
    for key in one:
        if key.startswith("quantizer."):  # discrete: a near-tie may flip one code's assignment, moving a few rows
            rows = (two[key] - one[key]).abs().reshape(len(one[key]), -1).amax(1) > 1e-4
            assert rows.float().mean() <= 0.02, f"{key}: {int(rows.sum())} of {len(rows)} rows differ"
        else:
            torch.testing.assert_close(two[key], one[key], rtol=1e-3, atol=1e-4, msg=key)
    logs = [
        [json.loads(line) for line in (workspace / n / "log.jsonl").read_text().splitlines()]
        for n in ("single6", "ddp6")
    ]
    assert [r["grad_norm"] for r in logs[0]] == pytest.approx([r["grad_norm"] for r in logs[1]], rel=1e-3)
    assert "gan_d" in logs[1][-1] and logs[1][-1]["gan_d"] != 0


def test_codebook_learning_rate_scale():
    """The codebook's own group: its first AdamW step is lr_scale times every other weight's."""
    from alitok import config
    from alitok.models.tokenizer import Tokenizer
    from alitok.tokenizer.train import _optimizer, model_config

    p = config.load(REPO / "params.yaml", "tiny")
    torch.manual_seed(0)
    model = Tokenizer(model_config(p), 1, codebook_init_std=0.25)
    opt_p = {**p["tokenizer"]["optimizer"], "weight_decay": 0.0}
    opt = _optimizer(model.parameters(), opt_p, scaled=[model.quantizer.codebook], lr_scale=10.0)
    groups = [[id(q) for q in g["params"]] for g in opt.param_groups]
    assert sorted(sum(groups, [])) == sorted(id(q) for q in model.parameters())  # each tensor in one group
    assert [g.get("lr_scale", 1.0) for g in opt.param_groups] == [1.0, 1.0, 10.0]
    assert groups[2] == [id(model.quantizer.codebook)]
    for g in opt.param_groups:  # as the training loop sets them
        g["lr"] = 1e-3 * g.get("lr_scale", 1.0)
    before = {name: q.detach().clone() for name, q in model.named_parameters()}
    out = model(torch.rand(4, 3, 32, 32))
    (out["image"].square().mean() + out["codebook"]).backward()
    opt.step()
    # Adam's first step moves each coordinate with a gradient by lr (up to eps)
    step = {name: (q.detach() - before[name]).abs().max().item() for name, q in model.named_parameters()}
    assert step["quantizer.codebook"] == pytest.approx(1e-2, rel=1e-3)
    assert step["decoder.pos"] == pytest.approx(1e-3, rel=1e-3)


@pytest.mark.parametrize("std", [0.02, 0.05])
def test_init_std_reaches_every_linear_and_conv(std):
    """`tokenizer.training.init_std` sets the weights' spread, and only theirs: tables and colour mix keep their own."""
    from alitok import config
    from alitok.tokenizer.train import family_parts

    p = config.load(REPO / "params.yaml", "tiny")
    p["tokenizer"]["training"]["init_std"] = std
    torch.manual_seed(0)
    model = family_parts(p, 1).model
    weights = [m.weight for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    colour = {id(h.colour.weight) for h in (model.decoder.pixel_head, model.decoder.aux_head) if h is not None}
    drawn = torch.cat([w.detach().flatten() for w in weights if id(w) not in colour])
    assert drawn.std().item() == pytest.approx(std, rel=0.02)
    assert model.latent_tokens.std().item() == pytest.approx(model.latent_tokens.shape[1] ** -0.5, rel=0.1)
