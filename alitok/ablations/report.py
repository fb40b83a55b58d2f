"""The ablation tables: every unit's metrics over seeds (mean ± sd), our direction beside the paper's with a
verdict, a figure per table, and the two central claims.

A verdict compares two configurations on one metric: "holds" when our change has the paper's sign and the
mean ± sd intervals do not overlap, "reversed" when it has the other sign and they do not overlap, and
"unresolved" when they overlap. The paper's numbers come from results/paper/ablations.csv.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from alitok import atomic, cliargs, plots
from alitok.ablations import units

# The comparisons the AliTok table supports (docs/papers/alitok.md §3.5 "Reading the table", §1.7): (from, to, what
# changes, metrics). E shares D's tokenizer and F E's generator, so those metrics are equal by construction.
ALITOK_STEPS = [
    ("A", "B", "causal stage-1 decoder", ("acc", "gfid", "rfid")),
    ("B", "C", "prefix tokens", ("acc", "gfid", "rfid")),
    ("C", "D", "prefix auxiliary loss", ("acc", "gfid", "rfid")),
    ("D", "E", "twice the AR training", ("acc", "gfid")),
    ("E", "F", "two-stage decoder", ("gfid", "rfid")),
    ("A", "probe", "causal encoder instead (probe)", ("acc", "rfid")),
]
# pos_ppl is context, not a claim: next-token accuracy is easier when each position has few codes to choose
# from, so the AliTok table shows each tokenizer's held-out per-position perplexity beside the accuracy. (The
# whole codebook's perplexity says less: at small scale each position uses its own few codes.)
METRICS = {
    "acc": "held-out AR accuracy (%)",
    "gfid": "gFID",
    "rfid": "rFID",
    "cc": "class-consistency (%)",
    "pos_ppl": "codes per position (perplexity)",
}


def _last_val_acc(log_path: Path) -> float:
    lines = plots.read_log(log_path)
    acc = [r["val_acc"] for r in lines if "val_acc" in r]
    if not acc:
        raise ValueError(f"{log_path}: no held-out accuracy logged (generator.training.eval_every > steps?)")
    return 100.0 * acc[-1]


def position_perplexity(tokens_dir) -> float:
    """The perplexity of the codes seen at each sequence position, averaged over positions (all crops)."""
    import numpy as np
    import torch

    from alitok.metrics.recon import perplexity
    from alitok.tokens.store import TokenShards

    shards = TokenShards(tokens_dir)
    codes = np.concatenate([np.asarray(c, dtype=np.int64).reshape(-1, shards.info["seq_len"]) for c in shards.codes])
    ppl = [perplexity(torch.bincount(torch.from_numpy(column))) for column in codes.T]
    return sum(ppl) / len(ppl)


def collect(p: dict, manifest: dict) -> dict:
    """unit -> metric -> per-seed values, for every AliTok row and CTF point, from the files `manifest` names
    (seed -> {"rows": row -> files, "ctf": "K<k>-<size>" -> files}: the rule's, so no path is guessed here)."""
    values: dict = {}

    def put(unit, metric, v):
        values.setdefault(unit, {}).setdefault(metric, []).append(float(v))

    pos_ppl: dict = {}  # tokens folder -> value: E and F share D's tokens
    for seed in p["ablations"]["seeds"]:
        files = manifest[str(seed)]
        for row in units.rows(p):
            f = files["rows"][row]
            score = json.loads(Path(f["scores"]).read_text())[row]
            put(row, "acc", _last_val_acc(Path(f["generator_log"])))
            put(row, "gfid", score["fid"])
            put(row, "cc", 100.0 * score["class_consistency"])
            put(row, "rfid", json.loads(Path(f["tokenizer_metrics"]).read_text())["rfid"])
            if f["tokens_val"] not in pos_ppl:
                pos_ppl[f["tokens_val"]] = position_perplexity(Path(f["tokens_val"]))
            put(row, "pos_ppl", pos_ppl[f["tokens_val"]])
        for (k, size), pids in units.ctf_models(p).items():
            f = files["ctf"][f"K{k}-{size}"]
            scores = json.loads(Path(f["scores"]).read_text())
            acc = _last_val_acc(Path(f["stage1_log"]))
            for pid in pids:
                put(pid, "gfid", scores[pid]["fid"])
                put(pid, "cc", 100.0 * scores[pid]["class_consistency"])
                put(pid, "acc", acc)  # over the K coarse labels: not comparable with a plain row's
    return values


def stats(xs: list[float]) -> tuple[float, float]:
    m = sum(xs) / len(xs)
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0


def verdict(ours_from: list[float], ours_to: list[float], paper_from: float | None, paper_to: float | None) -> str:
    if paper_from is None or paper_to is None or paper_to == paper_from:
        return "no paper direction"
    (m0, s0), (m1, s1) = stats(ours_from), stats(ours_to)
    if abs(m1 - m0) <= s0 + s1:
        return "unresolved"
    return "holds" if (m1 - m0) * (paper_to - paper_from) > 0 else "reversed"


def _arrow(a, b) -> str:
    return "—" if a is None or b is None else ("↑" if b > a else "↓" if b < a else "=")


def _fmt(xs) -> str:
    m, s = stats(xs)
    return f"{m:.3g} ± {s:.2g}"


def read_paper(path) -> dict:
    """(table, row) -> metric -> value, and table -> positions in order, from the paper CSV."""
    import pandas as pd

    df = pd.read_csv(path, dtype={"row": str})
    out: dict = {}
    for r in df.itertuples():
        out.setdefault((r.table, r.row), {})[r.metric] = float(r.value)
        out.setdefault(("order", r.table), {})[int(r.position)] = r.row
    return out


def _paper_row(paper, table, position) -> dict:
    order = paper.get(("order", table), {})
    return paper.get((table, order.get(position)), {})


def alitok_table(p: dict, values: dict, paper: dict) -> tuple[list[dict], list[dict]]:
    rows = []
    for row, s in units.rows(p).items():
        pr = paper.get(("alitok", row), {})
        rows.append(
            {
                "row": row,
                **{k: s[k] for k in ("encoder", "decoder", "prefix", "aux", "two_stage", "generator_steps")},
                **{m: _fmt(values[row][m]) for m in METRICS},
                **{f"paper_{m}": pr.get(m) for m in ("acc", "gfid", "rfid")},
            }
        )
    steps = []
    for a, b, what, metrics in ALITOK_STEPS:
        if a not in values or b not in values:
            continue
        pa, pb = paper.get(("alitok", a), {}), paper.get(("alitok", b), {})
        for m in metrics:
            steps.append(
                {
                    "from": a,
                    "to": b,
                    "change": what,
                    "metric": m,
                    "ours_from": _fmt(values[a][m]),
                    "ours_to": _fmt(values[b][m]),
                    "ours": _arrow(stats(values[a][m])[0], stats(values[b][m])[0]),
                    "paper_from": pa.get(m),
                    "paper_to": pb.get(m),
                    "paper": _arrow(pa.get(m), pb.get(m)),
                    "verdict": verdict(values[a][m], values[b][m], pa.get(m), pb.get(m)),
                }
            )
    return rows, steps


def ctf_tables(p: dict, values: dict, paper: dict) -> dict:
    out = {}
    for name, pts in units.table_points(p).items():
        t = p["ablations"]["ctf"]["tables"][name]
        ours = [
            {
                "value": v,
                "point": pid,
                "gfid": _fmt(values[pid]["gfid"]),
                "cc": _fmt(values[pid]["cc"]),
                "stage1_acc_coarse": _fmt(values[pid]["acc"]),
            }
            for v, pid in pts
        ]
        n_paper = len(paper.get(("order", name), {}))
        # our i-th value stands for the paper's i-th when both sweep as many values; else first against last
        pairs = (
            [(i, i + 1, i, i + 1) for i in range(len(pts) - 1)]
            if n_paper == len(pts)
            else [(0, len(pts) - 1, 0, n_paper - 1)]
        )
        steps = []
        for i, j, pi, pj in pairs:
            a, b = pts[i][1], pts[j][1]
            pa, pb = _paper_row(paper, name, pi).get("gfid"), _paper_row(paper, name, pj).get("gfid")
            steps.append(
                {
                    "sweep": t["sweep"],
                    "from": pts[i][0],
                    "to": pts[j][0],
                    "ours_from": _fmt(values[a]["gfid"]),
                    "ours_to": _fmt(values[b]["gfid"]),
                    "ours": _arrow(stats(values[a]["gfid"])[0], stats(values[b]["gfid"])[0]),
                    "paper_from": pa,
                    "paper_to": pb,
                    "paper": _arrow(pa, pb),
                    "verdict": verdict(values[a]["gfid"], values[b]["gfid"], pa, pb),
                }
            )
        out[name] = {
            "sweep": t["sweep"],
            "hold": t["hold"],
            "rows": ours,
            "steps": steps,
            "paper": [(_paper_row(paper, name, i)) for i in range(n_paper)],
            "paper_values": [paper[("order", name)][i] for i in range(n_paper)] if n_paper else [],
        }
    return out


def claims(p: dict, values: dict, paper: dict) -> dict:
    """The two central claims, each with its verdict and the numbers behind it."""
    a = p["ablations"]
    acc = verdict(
        values["A"]["acc"],
        values["B"]["acc"],
        paper.get(("alitok", "A"), {}).get("acc"),
        paper.get(("alitok", "B"), {}).get("acc"),
    )
    (ra, sa), (rb, sb) = stats(values["A"]["rfid"]), stats(values["B"]["rfid"])
    comparable = abs(rb - ra) <= sa + sb or abs(rb - ra) <= a["rfid_tolerance"] * ra
    # "at comparable rFID" conditions both directions: a tokenizer that keeps less of the image is easier to predict
    alitok = acc if comparable and acc in ("holds", "reversed") else "unresolved"
    plain, ctf = a["ctf"]["tokens_of"], units.claim_point(p)
    pp, pc = paper.get(("claim", "plain"), {}).get("gfid"), paper.get(("claim", "ctf"), {}).get("gfid")
    return {
        "alitok": {
            "verdict": alitok,
            "acc_verdict": acc,
            "rfid_comparable": comparable,
            "acc_A": _fmt(values["A"]["acc"]),
            "acc_B": _fmt(values["B"]["acc"]),
            "rfid_A": _fmt(values["A"]["rfid"]),
            "rfid_B": _fmt(values["B"]["rfid"]),
            "paper_acc_A": paper[("alitok", "A")]["acc"],
            "paper_acc_B": paper[("alitok", "B")]["acc"],
        },
        "ctf": {
            "verdict": verdict(values[plain]["gfid"], values[ctf]["gfid"], pp, pc),
            "plain": plain,
            "point": ctf,
            "gfid_plain": _fmt(values[plain]["gfid"]),
            "gfid_ctf": _fmt(values[ctf]["gfid"]),
            "cc_plain": _fmt(values[plain]["cc"]),
            "cc_ctf": _fmt(values[ctf]["cc"]),
            "cc_verdict": verdict(values[plain]["cc"], values[ctf]["cc"], 0.0, 1.0),
            "paper_gfid_plain": pp,
            "paper_gfid_ctf": pc,
        },
    }


def _md(rows: list[dict]) -> list[str]:
    """Rows as a markdown table, each cell as written: "—" for a missing paper value, floats by `g`. Kept rather than
    pandas' `to_markdown`: that needs `tabulate` (here only through dvc and snakemake, so a new pin), pads every
    column to its widest cell, and prints a paper value missing from a numeric column as "nan"."""
    keys = list(rows[0])
    cell = lambda v: "—" if v is None else (f"{v:g}" if isinstance(v, float) else str(v))  # noqa: E731
    return ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)] + [
        "| " + " | ".join(cell(r[k]) for k in keys) + " |" for r in rows
    ]


def _figures(p: dict, values: dict, ctf: dict, paper: dict, fig_dir: Path) -> list[Path]:
    plt = plots.pyplot()
    fig_dir.mkdir(parents=True, exist_ok=True)
    rows = list(units.rows(p))
    fig, axes = plt.subplots(1, len(METRICS), figsize=(4.2 * len(METRICS), 3.6))
    for ax, m in zip(axes, METRICS):
        ms = [stats(values[r][m]) for r in rows]
        ax.errorbar(
            range(len(rows)), [x[0] for x in ms], yerr=[x[1] for x in ms], fmt="o", capsize=4, label="ours (mean ± sd)"
        )
        ax.set_xticks(range(len(rows)), rows)
        ax.set_title(METRICS[m], fontsize=9)
        pv = [paper.get(("alitok", r), {}).get(m) for r in rows]
        if any(v is not None for v in pv):
            twin = ax.twinx()
            twin.plot(
                [i for i, v in enumerate(pv) if v is not None],
                [v for v in pv if v is not None],
                "s",
                color="tab:red",
                alpha=0.6,
                label="paper (right axis)",
            )
            twin.tick_params(axis="y", colors="tab:red")
    axes[0].legend(fontsize=7, loc="upper left")
    fig.suptitle(f"AliTok ablation rows ({len(p['ablations']['seeds'])} seeds)", fontsize=10)
    fig.tight_layout()
    paths = [fig_dir / "alitok.png"]
    plots.save_figure(fig, paths[0])
    fig, axes = plt.subplots(1, len(ctf), figsize=(3.2 * len(ctf), 3.4), squeeze=False)
    for ax, (name, t) in zip(axes[0], ctf.items()):
        pts = units.table_points(p)[name]
        ms = [stats(values[pid]["gfid"]) for _, pid in pts]
        ax.errorbar(range(len(pts)), [x[0] for x in ms], yerr=[x[1] for x in ms], fmt="o-", capsize=4)
        ax.set_xticks(range(len(pts)), ["all" if t["sweep"] == "top_k" and v == 0 else str(v) for v, _ in pts])
        ax.set_title(f"({name}) {t['sweep']}", fontsize=9)
        ax.set_ylabel("gFID (ours)", fontsize=8)
        pv = [r.get("gfid") for r in t["paper"]]
        if pv and len(pv) == len(pts):
            twin = ax.twinx()
            twin.plot(range(len(pv)), pv, "s--", color="tab:red", alpha=0.6)
            twin.tick_params(axis="y", colors="tab:red")
    fig.suptitle("CTF Table 3 sweeps: our gFID (mean ± sd, left) and the paper's FID (red, right)", fontsize=10)
    fig.tight_layout()
    paths.append(fig_dir / "ctf_table3.png")
    plots.save_figure(fig, paths[1])
    return paths


def run(p: dict, *, manifest: dict, paper_csv, out, fig_dir, tables_dir, metrics_out) -> dict:
    values, paper = collect(p, manifest), read_paper(paper_csv)
    rows, steps = alitok_table(p, values, paper)
    ctf = ctf_tables(p, values, paper)
    c = claims(p, values, paper)
    tables_dir = Path(tables_dir)
    import pandas as pd

    for name, data in (
        [("alitok", rows), ("alitok_verdicts", steps)]
        + [(f"ctf_{n}", t["rows"]) for n, t in ctf.items()]
        + [(f"ctf_{n}_verdicts", t["steps"]) for n, t in ctf.items()]
    ):
        atomic.write_text(tables_dir / f"{name}.csv", pd.DataFrame(data).to_csv(index=False))
    figs = _figures(p, values, ctf, paper, Path(fig_dir))
    seeds = p["ablations"]["seeds"]
    a, k = c["alitok"], c["ctf"]
    lines = [
        f"# Ablations ({p['name']} profile, seeds {', '.join(map(str, seeds))})",
        "",
        'Every cell is mean ± sd over the seeds. A direction "holds" when ours has the paper\'s sign and the mean ± sd '
        'intervals do not overlap, is "reversed" when it has the other sign without overlap, and is "unresolved" '
        "when they overlap. Paper numbers: results/paper/ablations.csv (docs/papers/alitok.md §3.5, §1.7; "
        "docs/papers/ctf.md §3.1, §3.3).",
        "",
        "## Central claims",
        "",
        f"- **AliTok: a causal stage-1 decoder makes tokens more predictable at comparable rFID: {a['verdict']}.** "
        f"Held-out AR accuracy A {a['acc_A']} % -> B {a['acc_B']} % ({a['acc_verdict']}; "
        f"paper {a['paper_acc_A']:g} -> {a['paper_acc_B']:g} %); rFID A "
        f"{a['rfid_A']} -> B {a['rfid_B']} ({'comparable' if a['rfid_comparable'] else 'not comparable'}; comparable "
        f"means the intervals overlap or the means differ by at most {p['ablations']['rfid_tolerance']:.0%} of A's).",
        f"- **CTF: coarse-to-fine beats plain AR on the same tokens: {k['verdict']}** (gFID). Row {k['plain']} "
        f"{k['gfid_plain']} against CTF {k['gfid_ctf']} at point {k['point']} (paper, LlamaGen-B: "
        f"{k['paper_gfid_plain']} -> {k['paper_gfid_ctf']}). Class-consistency {k['cc_plain']} % -> {k['cc_ctf']} % "
        f"(higher is better: {k['cc_verdict']}).",
        "",
        "## AliTok rows (docs/papers/alitok.md §3.5)",
        "",
        "acc: the generator's last held-out next-token accuracy; gfid, cc: its samples; rfid: the tokenizer that "
        "decodes them; pos_ppl: that tokenizer's held-out codes per position, as perplexity (context for acc, no "
        "verdict). "
        "E uses D's tokenizer, F E's generator with the stage-2 decoder.",
        "",
        *_md(rows),
        "",
        "### Directions",
        "",
        *_md(steps),
        "",
        "![AliTok rows](figures/alitok.png)",
        "",
        "## CTF Table 3 (docs/papers/ctf.md §3.3)",
        "",
        f"On row {p['ablations']['ctf']['tokens_of']}'s tokens and decoder. Settings not swept: "
        f"{json.dumps(p['ablations']['ctf']['defaults'])}; each sub-table's `hold` overrides them. stage1_acc_coarse "
        "is over the K coarse labels.",
        "",
    ]
    for name, t in ctf.items():
        lines += [
            f"### ({name}) {t['sweep']}" + (f", holding {json.dumps(t['hold'])}" if t["hold"] else ""),
            "",
            f"Paper values in order: {', '.join(t['paper_values'])}; "
            f"FID {', '.join(str(r.get('gfid')) for r in t['paper'])}.",
            "",
            *_md(t["rows"]),
            "",
            *_md(t["steps"]),
            "",
        ]
    lines += ["![CTF Table 3](figures/ctf_table3.png)", ""]
    atomic.write_text(out, "\n".join(lines))
    summary = {
        "alitok_claim": a["verdict"],
        "ctf_claim": k["verdict"],
        "units": {u: {m: stats(v)[0] for m, v in ms.items()} for u, ms in values.items()},
        "verdicts": {f"alitok {s['from']}->{s['to']} {s['metric']}": s["verdict"] for s in steps}
        | {f"ctf {n} {s['from']}->{s['to']}": s["verdict"] for n, t in ctf.items() for s in t["steps"]},
    }
    atomic.write_json(metrics_out, summary)
    return {"report": out, "figures": figs, **summary}


def add_arguments(parser) -> None:
    parser.add_argument("--manifest", type=json.loads, required=True, help="JSON: seed -> the files of its runs")
    parser.add_argument("--paper", type=Path, required=True, help="the papers' ablation numbers (ablations.csv)")
    parser.add_argument("--out", type=Path, required=True, help="report (markdown)")
    parser.add_argument("--figure-dir", type=Path, required=True, help="where the figures go")
    parser.add_argument("--out-tables", type=Path, required=True, help="folder of CSV tables")
    parser.add_argument("--metrics-out", type=Path, required=True, help="claims, verdicts and means (JSON)")


def main(args, p: dict) -> None:
    given = cliargs.passed(args, "manifest", "out", "metrics_out", paper_csv="paper", fig_dir="figure_dir")
    r = run(p, **given, tables_dir=args.out_tables)
    print(f"ablations: AliTok claim {r['alitok_claim']}, CTF claim {r['ctf_claim']}; {args.out}", file=sys.stderr)
