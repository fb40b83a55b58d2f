"""The report: verdicts on the smoke claims, gaps to the paper only where the protocol matches, figures written."""

import json

import pytest
import torch

from alitok.evaluation import report

from conftest import REPO

PAPER = REPO / "results" / "paper" / "published.csv"


def _evaluation(path, cc, control=None, extractor="alitok-domain", kind="split", fid=50.0):
    m = {
        "fid": fid,
        "is": 2.0,
        "precision": 0.5,
        "recall": 0.4,
        "num_samples": 200,
        "class_consistency": cc,
        "chance": 0.1,
        "speed": {"images_per_s": 30.0, "batch": 64, "hardware": "cpu x (torch)", "precision": "fp32"},
        "protocol": {
            "profile": "smoke",
            "control": control,
            "extractor": extractor,
            "prc_k": 3,
            "isc_splits": 10,
            "reference": {"kind": kind, "key": "train-abc"},
            "guidance": 4.0,
        },
    }
    if cc is None:
        del m["class_consistency"], m["chance"]
    path.write_text(json.dumps(m))
    return path


def test_published_numbers_cite_their_source():
    import pandas as pd

    paper = pd.read_csv(PAPER)
    assert {"paper", "version", "table", "model", "metric", "value", "source", "evidence"} <= set(paper.columns)
    assert paper.source.str.match(r"(alitok|ctf)\.md §\d").all() and paper.value.notna().all()
    release = paper[(paper.table == "release (ImageNet-256)") & (paper.metric == "gfid")]
    assert dict(zip(release.model, release.value)) == {"AliTok-B": 1.50, "AliTok-L": 1.42, "AliTok-XL": 1.35}
    assert {"Table 1 (ImageNet-256)", "Table 2 speed (1x A100 batch 64)"} <= set(paper[paper.paper == "ctf"].table)


def test_chance_band_and_verdicts(tmp_path):
    assert report.chance_band(0.1, 200) == pytest.approx(3 * (0.09 / 200) ** 0.5)
    evals = {
        "S": json.loads(_evaluation(tmp_path / "S.json", 0.85).read_text()),
        "S-untrained": json.loads(_evaluation(tmp_path / "u.json", 0.11, "untrained").read_text()),
        "S-shuffled_labels": json.loads(_evaluation(tmp_path / "s.json", 0.40, "shuffled_labels").read_text()),
    }
    text = "\n".join(report.verdicts(evals, None))
    assert "`S`: class-consistency 85.0% against the goal of 80%: **met**" in text
    assert "`S-untrained`" in text and "**near chance, as it must be**" in text
    assert "`S-shuffled_labels`: class-consistency 40.0%" in text and "NOT near chance" in text


def test_gap_only_where_protocol_matches():
    assert not report.comparable({"protocol": {"extractor": "domain_classifier", "reference": {"kind": "split"}}})
    assert report.comparable({"protocol": {"extractor": "inception-v3-compat", "reference": {"kind": "adm_npz"}}})


def test_report_and_figures(tmp_path):
    from alitok.models.generator import Generator, GeneratorConfig

    gen = tmp_path / "generator" / "S"
    gen.mkdir(parents=True)
    model = Generator(
        GeneratorConfig(arch="alitok", width=16, depth=1, heads=2, vocab_size=8, num_classes=3, num_prefix=3, grid=2)
    )
    torch.save({"model": model.state_dict()}, gen / "model.pt")
    (gen / "log.jsonl").write_text(json.dumps({"step": 10, "val_loss": 3.0, "val_acc": 0.2, "val_class_gain": 0.01}))
    evals = [_evaluation(tmp_path / "S.json", 0.3)]
    report.run(
        out=tmp_path / "report.md",
        fig_dir=tmp_path / "figures",
        evaluations=evals,
        paper_csv=PAPER,
        generator_logs=[gen / "log.jsonl"],
        generators=[gen / "model.pt"],
    )
    text = (tmp_path / "report.md").read_text()
    assert "**not met**" in text and "no gap to the papers is computed" in text and "0.0100" in text
    for f in report.FIGURES:
        assert (tmp_path / "figures" / f).stat().st_size > 1000
        assert f"figures/{f}" in text

    comparable = [_evaluation(tmp_path / "B.json", None, extractor="inception-v3-compat", kind="adm_npz", fid=1.61)]
    report.run(out=tmp_path / "r2.md", fig_dir=tmp_path / "f2", evaluations=comparable, paper_csv=PAPER)
    text = (tmp_path / "r2.md").read_text()
    assert "the gap is meaningful" in text and "| B | 1.610 |" in text


def test_ctf_beside_the_plain_generator_of_its_shape(tmp_path):
    """The CTF section pairs ctf-S with S, counts both stages in CTF's size, and states the redundancy verdict
    from the numbers either way; metrics.json carries the same numbers."""
    from alitok.models.generator import Generator, GeneratorConfig

    def save(path, **kw):
        path.parent.mkdir(parents=True, exist_ok=True)
        cfg = GeneratorConfig(arch="alitok", width=16, depth=1, heads=2, num_classes=3, num_prefix=3, grid=2, **kw)
        torch.save({"model": Generator(cfg).state_dict()}, path)
        return sum(p.numel() for p in Generator(cfg).parameters())

    plain_n = save(tmp_path / "generator" / "S" / "model.pt", vocab_size=8)
    ctf_n = save(tmp_path / "generator" / "ctf-S" / "model.pt", vocab_size=4)
    stage2_n = save(tmp_path / "ctf" / "stage2" / "model.pt", vocab_size=8, input_vocab=4, causal=False)
    for name, acc in (("S", 0.5), ("ctf-S", 0.7)):
        (tmp_path / "generator" / name / "log.jsonl").write_text(
            json.dumps({"step": 5, "val_loss": 1.0, "val_acc": acc})
        )
    (tmp_path / "ctf" / "stage2" / "log.jsonl").write_text(json.dumps({"step": 7, "val_loss": 0.9, "val_acc": 0.6}))
    s = _evaluation(tmp_path / "S.json", 0.2, fid=40.0)
    c = _evaluation(tmp_path / "ctf-S.json", 0.3, fid=30.0)
    m = json.loads(c.read_text())
    m["protocol"] |= {"kind": "ctf", "scale": "S", "tau2": 1.0, "restrict": False, "clusters": 4}
    m["speed"]["images_per_s"] = 45.0
    c.write_text(json.dumps(m))
    cmap = {
        "clusters": 4,
        "codebook_size": 8,
        "normalisation": "none",
        "seed": 0,
        "sizes": [1, 2, 2, 3],
        "used_codes": 6,
        "clusters_without_used_code": 1,
    }
    (tmp_path / "map.json").write_text(json.dumps(cmap))
    swaps = {
        "reconstruction": {"psnr": 19.0, "rfid": 40.0},
        "within_cluster": {"psnr": 18.5, "rfid": 45.0, "psnr_vs_reconstruction": 30.0},
        "whole_codebook": {"psnr": 7.0, "rfid": 140.0, "psnr_vs_reconstruction": 7.5},
    }
    (tmp_path / "red.json").write_text(json.dumps({"num_images": 60, "seed": 0, **swaps}))
    gens = [tmp_path / "generator" / n / "model.pt" for n in ("S", "ctf-S")]
    report.run(
        out=tmp_path / "report.md",
        fig_dir=tmp_path / "figures",
        evaluations=[s, c],
        paper_csv=PAPER,
        generator_logs=[g.parent / "log.jsonl" for g in gens],
        generators=gens,
        ctf_map=tmp_path / "map.json",
        ctf_stage2=tmp_path / "ctf" / "stage2" / "model.pt",
        ctf_stage2_log=tmp_path / "ctf" / "stage2" / "log.jsonl",
        ctf_redundancy=tmp_path / "red.json",
        metrics_out=tmp_path / "metrics.json",
        curves_dir=tmp_path / "curves",
    )
    text = (tmp_path / "report.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith("| ctf-S | S |"))
    assert f"{(ctf_n + stage2_n) / 1e6:.2f} / {plain_n / 1e6:.2f}" in row
    assert (
        "30.00 / 40.00" in row
        and "0.300 / 0.200" in row
        and "45.0 / 30.0 (1.50x)" in row
        and "0.700 / 0.600 / 0.500" in row
    )
    assert "gFID lower (30.00 against 40.00" in text and "6 codes used by the training tokens (75%)" in text
    assert "accuracy 60.0% after 7 steps" in text and "The redundancy finding **holds**" in text
    assert "CTF is above that band, the plain generator above it" in text  # 30 % and 20 % against 10 % ± 6.4 %
    assert "Rows of kind `ctf` show stage 1's held-out loss" in text
    summary = json.loads((tmp_path / "metrics.json").read_text())
    assert summary["ctf"]["redundancy"]["within_cluster"] == {"psnr": 18.5, "rfid": 45.0}
    assert (
        summary["ctf"]["stage2"] == {"val_loss": 0.9, "val_acc": 0.6} and summary["generator"]["ctf-S"]["fid"] == 30.0
    )

    swaps["within_cluster"]["rfid"] = 150.0  # the within-cluster swap now hurts rFID more: the finding does not hold
    (tmp_path / "red.json").write_text(json.dumps({"num_images": 60, "seed": 0, **swaps}))
    report.run(
        out=tmp_path / "r2.md",
        fig_dir=tmp_path / "f2",
        evaluations=[s, c],
        paper_csv=PAPER,
        ctf_redundancy=tmp_path / "red.json",
        ctf_map=tmp_path / "map.json",
    )
    assert "The redundancy finding **does not hold**" in (tmp_path / "r2.md").read_text()
