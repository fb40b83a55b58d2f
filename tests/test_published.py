"""results/paper/published.csv: every row cites its note and parses, the count table in docs/evaluation.md is the
CSV's own, and each reader's filter finds one value (issue 28)."""

import re

import pandas as pd
import pytest

from conftest import REPO

PAPER = REPO / "results" / "paper" / "published.csv"
DOC = REPO / "docs" / "evaluation.md"
HEADER = ["paper", "table", "models", "metrics", "rows"]


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    """The CSV as text, so that a value pandas would silently read as NaN is seen as it is written."""
    return pd.read_csv(PAPER, dtype=str, keep_default_na=False)


def doc_counts() -> dict[tuple[str, str], tuple[int, int, int]]:
    """The `paper | table | models | metrics | rows` table of docs/evaluation.md, by (paper, table)."""
    lines = DOC.read_text().splitlines()
    cells = lambda line: [c.strip() for c in line.strip().strip("|").split("|")]
    start = next(i for i, line in enumerate(lines) if line.startswith("|") and cells(line) == HEADER)
    assert re.fullmatch(r"\|(\s*-+\s*\|){5}", lines[start + 1].replace(" ", "")), "no separator under the header"
    out = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        paper, table, models, metrics, rows = cells(line)
        assert (paper, table) not in out, f"{paper} / {table} twice in the table"
        out[(paper, table)] = (int(models), int(metrics), int(rows))
    return out


def test_the_documented_counts_are_the_csvs(raw):
    counts = raw.groupby(["paper", "table"]).agg(
        models=("model", "nunique"), metrics=("metric", "nunique"), rows=("value", "size")
    )
    on_file = {key: tuple(int(v) for v in row) for key, row in zip(counts.index, counts.itertuples(index=False))}
    assert doc_counts() == on_file


def test_every_row_cites_and_parses(raw):
    assert list(raw.columns) == [
        "paper",
        "version",
        "table",
        "model",
        "params_m",
        "setting",
        "metric",
        "value",
        "source",
        "evidence",
    ]
    for column in ("paper", "version", "table", "model", "setting", "metric", "value", "source", "evidence"):
        assert (raw[column].str.strip() != "").all(), f"an empty {column}"
    assert raw.source.str.fullmatch(r"docs/papers/(alitok|ctf)\.md §\d+(\.\d+)*").all()
    pd.to_numeric(raw.value, errors="raise")  # every value is a number
    pd.to_numeric(raw.params_m[raw.params_m != ""], errors="raise")  # params may be unknown (CTF's CDM), not text
    # one value per (paper, table, model, setting, metric): what report_data's and tracking's filters rely on
    key = ["paper", "version", "table", "model", "setting", "metric"]
    assert not raw.duplicated(key).any() and not raw.drop(columns="version").duplicated(key[:1] + key[2:]).any()


def test_the_rows_issue_28_asks_for():
    paper = pd.read_csv(PAPER)
    value = lambda table, model, metric, setting="w/ cfg": paper[
        (paper.table == table) & (paper.model == model) & (paper.metric == metric) & (paper.setting == setting)
    ].value.item()
    speed = "speed (1x A800 fp32 batch 64)"
    assert {m: value(speed, m, "images_per_s") for m in ("LightningDiT", "MAR-H", "RAR-XXL")} == {
        "LightningDiT": 0.6,
        "MAR-H": 0.3,
        "RAR-XXL": 5.0,
    }
    ratio = value(speed, "AliTok-XL", "images_per_s") / value(speed, "LightningDiT", "images_per_s")
    assert ratio == pytest.approx(10.5)  # the paper's "10x faster"
    issue = paper[paper.table == "guidance sweep (repository issue #5)"]
    assert issue.evidence.str.startswith("repository issue #5").all() and len(issue) == 6
    assert value(issue.table.iloc[0], "AliTok-L", "gfid", "g 5.5, p 0.7 (authors)") == 1.41
    table2 = "Table 2 speed (1x A100 batch 64)"
    assert value(table2, "LlamaGen-L", "steps") == 256 and value(table2, "LlamaGen-L + CTF", "stage2_steps") == 1
    assert paper[paper.table == "Table 1 (ImageNet-256)"].model.nunique() == 31
    # the MLflow reference runs group by (paper, version, table, model, setting): the v1 AliTok-B row stays one run
    release_b = paper[(paper.table == "release (ImageNet-256)") & (paper.model == "AliTok-B")]
    assert release_b.groupby(["paper", "version", "table", "model", "setting"]).ngroups == 1
