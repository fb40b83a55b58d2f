"""The ablations: units as params, the switches they flip, verdicts, and the tiny target end to end."""

import json
import re

import numpy as np
import pytest
import torch

from alitok import config
from alitok.ablations import report, units
from alitok.config import ParamsError
from alitok.models.tokenizer import Decoder, Encoder

from conftest import REPO, dry_run_jobs, edit_params, run
from fakes import tiny_tokenizer_config


def _p(profile="ablations"):
    return config.load(REPO / "params.yaml", profile)


def test_rows_flip_the_switches_of_the_paper_table():
    a = units.load(REPO / "params.yaml", "ablations/A/seed1")
    assert a["name"] == "ablations" and a["ablation"] == {"unit": "A", "seed": 1}
    model = a["tokenizer"]["model"]
    assert (model["stage1_decoder"], model["encoder_attention"], model["prefix"]) == (
        "bidirectional",
        "bidirectional",
        "none",
    )
    assert a["tokenizer"]["loss"]["aux_weight"] == 0.0
    assert a["tokenizer"]["training"]["seed"] == a["generator"]["training"]["seed"] == 1
    d, e = (units.load(REPO / "params.yaml", f"ablations/{r}/seed0") for r in "DE")
    assert (
        d["tokenizer"]["model"]["prefix"] == _p()["tokenizer"]["model"]["prefix"]
        and d["tokenizer"]["loss"]["aux_weight"] > 0
    )
    assert e["generator"]["scales"]["S"]["steps"] == 2 * d["generator"]["scales"]["S"]["steps"]
    probe = units.load(REPO / "params.yaml", "ablations/probe/seed1")["tokenizer"]["model"]
    assert probe["encoder_attention"] == "causal" and probe["stage1_decoder"] == "bidirectional"


def test_rows_share_what_the_paper_shares():
    p = _p()
    assert [units.tokenizer_of(p, r) for r in "ABCDEF"] == ["A", "B", "C", "D", "D", "D"]
    assert units.generator_of(p, "F") == "E" and units.generator_of(p, "E") == "E"
    assert units.decoder_stage(p, "F") == 2 and units.decoder_stage(p, "E") == 1


def test_ctf_points_follow_each_subtable_conditions():
    p = _p()
    tables = units.table_points(p)
    a_points = [units.points(p)[pid] for _, pid in tables["a"]]
    assert [s["clusters"] for s in a_points] == [8, 32, 64] and {s["stage2"] for s in a_points} == {"S"}
    ctf = p["ablations"]["ctf"]
    d = ctf["defaults"]
    for name in "bcd":  # the default temperatures and guidance unless swept
        for _, pid in tables[name]:
            s = units.points(p)[pid]
            assert (s["tau1"], s["tau2"]) == (d["tau1"], d["tau2"]) and (s["guidance"] == d["guidance"] or name == "c")
    assert [units.points(p)[pid]["tau1"] for _, pid in tables["e"]] == ctf["tables"]["e"]["values"]
    assert all(units.points(p)[pid]["tau1"] == ctf["tables"]["f"]["hold"]["tau1"] for _, pid in tables["f"])
    q = units.load(REPO / "params.yaml", f"ablations/{units.claim_point(p)}/seed0")
    assert (q["ctf"]["sampling"]["tau1"], q["ctf"]["sampling"]["tau2"]) == (ctf["claim"]["tau1"], ctf["claim"]["tau2"])
    assert q["ctf"]["sampling"]["guidance_power"] == p["ctf"]["sampling"]["guidance_power"]  # the profile's schedule
    assert q["ctf"]["clusters"]["count"] == 32 and q["ctf"]["stage2"] == p["ablations"]["ctf"]["stage2_sizes"]["M"]
    # CTF's stage 1 takes the length of the row whose tokens it uses (F: twice the AR training)
    assert q["generator"]["scales"]["S"]["steps"] == 2 * p["generator"]["scales"]["S"]["steps"]


@pytest.mark.parametrize(
    "name, message",
    [
        ("ablations/Z/seed0", "neither a row"),
        ("ablations/A/seed7", "not in ablations.seeds"),
        ("ablations/A", "<profile>/<unit>/seed<N>"),
        ("imagenet256/A/seed0", "no ablations"),
    ],
)
def test_bad_unit_names_are_clear_errors(name, message):
    with pytest.raises(ParamsError, match=message):
        units.load(REPO / "params.yaml", name)


def test_aux_without_prefix_is_refused():
    import yaml

    doc = yaml.safe_load((REPO / "params.yaml").read_text())
    doc["profiles"]["smoke"]["ablations"]["alitok"]["B"]["aux"] = True
    with pytest.raises(ParamsError, match="aux needs prefix"):
        units.load(doc, "smoke")


def _tok(**kw):
    return tiny_tokenizer_config(
        16, 4, width=16, depth=1, codebook_size=8, code_dim=4, mlp_ratio=2, prefix="none", buffer_tokens=2, **kw
    )


@pytest.mark.parametrize("decoder, sees_later", [("causal", False), ("bidirectional", True)])
def test_stage1_decoder_switch(decoder, sees_later):
    torch.manual_seed(0)
    dec = Decoder(_tok(stage1_decoder=decoder), stage=1).eval()
    z = torch.randn(1, 16, 4)
    z2 = z.clone()
    z2[:, -1] += torch.randn(4)  # change the last code only
    first_patch = lambda img: img[..., :4, :4]  # noqa: E731
    changed = not torch.allclose(first_patch(dec(z)[0]), first_patch(dec(z2)[0]))
    assert changed == sees_later


@pytest.mark.parametrize("encoder, sees_later", [("causal", False), ("bidirectional", True)])
def test_encoder_switch(encoder, sees_later):
    torch.manual_seed(0)
    enc = Encoder(_tok(encoder_attention=encoder)).eval()
    x, latents = torch.rand(1, 3, 16, 16), torch.randn(16, 16)
    latents2 = latents.clone()
    latents2[-1] += torch.randn(16)  # the last latent only (not a constant: LayerNorm removes those)
    changed = not torch.allclose(enc(x, latents)[:, 0], enc(x, latents2)[:, 0])
    assert changed == sees_later


def test_an_unknown_attention_is_refused():
    with pytest.raises(ValueError, match="stage1_decoder"):
        _tok(stage1_decoder="sideways")


def _seeds(values, spread=0.3, unit=0):
    """Per-seed intervals with draws, as a unit's metric files give them (a sample-noise sd of `spread`)."""
    from alitok.metrics.intervals import Interval

    rng = np.random.default_rng(unit)
    draws = [tuple(v + rng.normal(0, spread, 200)) for v in values]
    pairing = {"n": 200, "seed": 0}
    return [Interval(v, v - 2 * spread, v + 2 * spread, "bootstrap", 0.0, d, pairing) for v, d in zip(values, draws)]


@pytest.mark.parametrize(
    "ours_from, ours_to, spread, paper, expected",
    [
        ([5.0, 5.2, 5.1], [9.0, 9.5, 9.2], 0.5, (5.4, 10.7), "holds"),
        ([5.0, 5.2, 5.1], [3.0, 3.5, 3.2], 0.5, (5.4, 10.7), "reversed"),
        ([5.0, 6.0, 7.0], [6.5, 7.0, 5.5], 2.0, (5.4, 10.7), "within noise"),
        ([5.0], [9.0], 3.0, (5.4, 10.7), "within noise"),  # one seed: the samples' noise alone decides
        ([5.0], [9.0], 0.5, (5.4, 10.7), "holds"),
        ([5.0, 6.0], [7.0, 8.0], 0.5, (10.5, 10.5), "no paper direction"),
    ],
)
def test_verdicts_follow_the_paired_interval(ours_from, ours_to, spread, paper, expected):
    a, b = _seeds(ours_from, spread, 0), _seeds(ours_to, spread, 1)
    assert report.verdict(a, b, *paper) == expected
    d = report.difference(a, b)  # to − from, the mean over seeds
    assert d.value == pytest.approx(np.mean(ours_to) - np.mean(ours_from))


def test_ablations_profile_plans_every_unit_once_per_seed(project):
    """The real target's DAG: 5 tokenizers, 6 generators, 7 scored rows, 3 K x 5 stage 2s, per seed, nothing twice."""
    plan = run(["snakemake", "-n", "--config", "profile=ablations", "--", "ablations"], cwd=project)
    jobs = dry_run_jobs(plan.stdout)
    per_seed = {  # the main rules, reused under each unit's profile (CTF's stage 1 is a train_generator job)
        "train_tokenizer_stage1": 5,
        "train_tokenizer_stage2": 1,
        "eval_tokenizer": 6,
        "extract_tokens": 10,
        "train_generator": 6 + 3,
        "ablation_score_row": 7,
        "ctf_clusters": 3,
        "train_ctf_stage2": 5,
        "ablation_ctf_score": 5,
    }
    seeds = len(config.load(project / "params.yaml", "ablations")["ablations"]["seeds"])
    assert {k: jobs.get(k) for k in per_seed} == {k: seeds * v for k, v in per_seed.items()}
    assert jobs["ablation_report"] == 1 and "sample_generator" not in jobs  # the default pipeline's runs stay out
    outputs = re.findall(r"\n    output: (.*)", plan.stdout)
    trained = [o for o in outputs if "/tokenizer/" in o or "/generator/" in o or "/tokens/" in o or "/ctf/" in o]
    assert len(trained) == seeds * 39 and all(o.startswith("results/ablations/ablation/seed") for o in trained)
    default = dry_run_jobs(run(["snakemake", "-n", "--config", "profile=tiny"], cwd=project).stdout)
    assert not any(k.startswith("ablation") for k in default)  # and `all` never runs the ablations


def _fewer_units(doc):
    """Rows A, B, E, F and sub-tables (a), (f): every kind of rule and sharing, in two thirds of the jobs."""
    smoke, tiny = doc["profiles"]["smoke"]["ablations"], doc["profiles"]["tiny"]["ablations"]
    for row in ("C", "D", "probe"):
        del smoke["alitok"][row]
    for table in "bcde":
        del smoke["ctf"]["tables"][table], tiny["ctf"]["tables"][table]
    tiny["ctf"]["defaults"]["stage2"] = "S"


@pytest.mark.slow
def test_tiny_ablations_target(project):
    """Rows and sub-tables at one seed through Snakemake: tables, verdicts, figures, one MLflow parent. (Seeds are
    planned once each by the dry run above; one seed keeps this run within the suite's budget.)"""
    edit_params(project, _fewer_units)
    proc = run(["snakemake", "--cores", "2", "--config", "profile=tiny", "--", "ablations"], cwd=project, timeout=1800)
    root = project / "results/tiny/ablation"
    text = (root / "report.md").read_text()
    assert "## Central claims" in text and "AliTok: a causal stage-1 decoder" in text and "CTF: coarse-to-fine" in text
    metrics = json.loads((root / "metrics.json").read_text())
    verdicts = {"holds", "reversed", "within noise", "no paper direction"}
    assert metrics["alitok_claim"] in verdicts | {"unresolved"} and metrics["ctf_claim"] in verdicts
    assert set(metrics["verdicts"].values()) <= verdicts and 0 <= metrics["lowest_cc_lower_bound"] <= 100
    assert "alitok A->B acc" in metrics["verdicts"] and "ctf a 8->16" in metrics["verdicts"]
    import pandas as pd

    rows = pd.read_csv(root / "tables/alitok.csv")
    assert (
        list(rows["row"]) == ["A", "B", "E", "F"]
        and rows["acc"].str.match(r"[\d.]+ \[[\d.]+, [\d.]+\]").all()
        and rows["pos_ppl"].str.contains("±").all()
    )
    assert rows.loc[rows.row == "A", "paper_acc"].item() == 5.4
    assert {p.name.split("_")[1] for p in (root / "tables").glob("ctf_*_verdicts.csv")} == {"a", "f"}
    assert "| E | F | two-stage decoder | rfid |" in text
    for fig in ("alitok.png", "ctf_table3.png"):
        assert (root / "figures" / fig).stat().st_size > 10_000
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    exp = client.get_experiment_by_name("alitok-tiny")
    (parent,) = client.search_runs([exp.experiment_id], "tags.kind = 'pipeline'")
    children = client.search_runs(
        [exp.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'", max_results=1000
    )
    tagged = {c.data.tags.get("ablation_unit") for c in children}
    assert {"A/seed0", "B/seed0", "E/seed0"} <= tagged
    assert any(c.data.tags["rule"] == "ablation_report" for c in children)
    again = run(["snakemake", "-n", "--config", "profile=tiny", "--", "ablations"], cwd=project)
    assert "Nothing to be done" in again.stdout + again.stderr, proc.stdout[-2000:]


def test_position_perplexity_counts_the_choices_at_each_position(tmp_path):
    from alitok.tokens.store import FORMAT, shard_names

    # position 0 always code 7 (1 choice), position 1 two codes equally often (2), over two shards and 1 crop
    shards = [np.array([[[7, 3]], [[7, 4]]], dtype=np.uint16), np.array([[[7, 3]], [[7, 4]]], dtype=np.uint16)]
    info = {"format": FORMAT, "seq_len": 2, "crops": 1, "shards": []}
    for i, codes in enumerate(shards):
        c, lab = shard_names(i)
        np.save(tmp_path / c, codes)
        np.save(tmp_path / lab, np.zeros(len(codes), dtype=np.int32))
        info["shards"].append({"codes": c, "labels": lab, "count": len(codes)})
    (tmp_path / "manifest.json").write_text(json.dumps(info))
    assert report.position_perplexity(tmp_path) == pytest.approx(1.5)


def test_markdown_tables_write_each_cell_as_it_is():
    """The report's tables (ours, not pandas' to_markdown: docs/ablations.md): no padding, "—" for a missing paper
    value, also in a numeric column (to_markdown writes "nan" there), floats by `g`."""
    rows = [
        {"from": "E", "to": "F", "change": "two-stage decoder", "metric": "rfid", "ours": 1.5, "paper": None, "n": 3},
        {"from": "A", "to": "B", "change": "causal decoder", "metric": "acc", "ours": 5.40, "paper": 8.0, "n": None},
    ]
    assert report._md(rows) == [
        "| from | to | change | metric | ours | paper | n |",
        "|---|---|---|---|---|---|---|",
        "| E | F | two-stage decoder | rfid | 1.5 | — | 3 |",
        "| A | B | causal decoder | acc | 5.4 | 8 | — |",
    ]


@pytest.mark.parametrize(
    "acc_b, rfid_b, claim",
    [
        ([9.0, 9.5, 9.2], [100.0, 104.0, 102.0], "holds"),  # more predictable at comparable rFID
        ([3.0, 3.5, 3.2], [100.0, 104.0, 102.0], "reversed"),  # less predictable at comparable rFID
        ([3.0, 3.5, 3.2], [50.0, 51.0, 52.0], "unresolved"),  # less predictable, but it keeps much more of the image
        ([9.0, 9.5, 9.2], [200.0, 201.0, 202.0], "unresolved"),  # more predictable, but it keeps much less
        ([5.1, 5.3, 5.0], [101.0, 100.0, 103.0], "within noise"),  # as predictable, at comparable rFID
    ],
)
def test_alitok_claim_needs_comparable_rfid_both_ways(acc_b, rfid_b, claim):
    p = _p()
    plain, point = p["ablations"]["ctf"]["tokens_of"], units.claim_point(p)
    values = {
        "A": {"acc": _seeds([5.0, 5.2, 5.1], 0.3, 0), "rfid": _seeds([100.0, 101.0, 102.0], 1.0, 1)},
        "B": {"acc": _seeds(acc_b, 0.3, 2), "rfid": _seeds(rfid_b, 1.0, 3)},
        plain: {"gfid": _seeds([50.0, 51.0, 52.0], 1.0, 4), "cc": _seeds([10.0, 11.0, 12.0], 1.0, 5)},
        point: {"gfid": _seeds([40.0, 41.0, 42.0], 1.0, 6), "cc": _seeds([10.0, 11.0, 12.0], 1.0, 7)},
    }
    paper = report.read_paper(REPO / "results/paper/ablations.csv")
    assert report.claims(p, values, paper)["alitok"]["verdict"] == claim
