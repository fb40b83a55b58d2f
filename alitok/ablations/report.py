"""The ablation tables: every unit's metrics as the mean over seeds with a 95 % interval, our direction beside the
paper's with a verdict, a figure per table, and the two central claims.

The intervals and the verdict rule are the main report's (alitok/metrics/intervals.py). Every metric of a unit at
a seed carries its resampled draws: over the samples (gFID, class-consistency), the held-out images (rFID) or the
held-out sequences (accuracy). A cell is the mean over seeds, its interval the seeds' draws averaged
(`intervals.seed_mean`). A comparison of two units is their paired difference, draw by draw at each seed (the
same sample, image or sequence indices), averaged over the seeds: "holds" when its interval excludes 0 on the
paper's side, "reversed" on the other side, "within noise" when it holds 0. The paper's numbers come from
results/paper/ablations.csv.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from alitok import atomic, cliargs, plots
from alitok.ablations import units
from alitok.metrics import intervals
from alitok.metrics.intervals import Interval

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


PERCENT = ("acc", "cc")  # shares shown in %


def _percent(iv: Interval) -> Interval:
    k = 100.0
    draws = None if iv.draws is None else tuple(k * x for x in iv.draws)
    bias = None if iv.bias is None else k * iv.bias
    return Interval(k * iv.value, k * iv.lo, k * iv.hi, iv.method, bias, draws, iv.pairing)


def _last_val_acc(log_path: Path) -> Interval:
    """The generator's final held-out accuracy with its interval over the held-out sequences (logged at the end)."""
    final = [r for r in plots.read_log(log_path) if "val_acc_interval" in r]
    if not final:
        raise ValueError(f"{log_path}: no final held-out accuracy interval logged (trained before issue 31?)")
    return _percent(Interval.of(final[-1]["val_acc_interval"]))


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
        values.setdefault(unit, {}).setdefault(metric, []).append(v)

    def interval(m: dict, key: str) -> Interval:
        iv = Interval.of(m["intervals"][key])
        return _percent(iv) if key == "class_consistency" else iv

    pos_ppl: dict = {}  # tokens folder -> value: E and F share D's tokens
    for seed in p["ablations"]["seeds"]:
        files = manifest[str(seed)]
        for row in units.rows(p):
            f = files["rows"][row]
            score = json.loads(Path(f["scores"]).read_text())[row]
            put(row, "acc", _last_val_acc(Path(f["generator_log"])))
            put(row, "gfid", interval(score, "fid"))
            put(row, "cc", interval(score, "class_consistency"))
            put(row, "rfid", interval(json.loads(Path(f["tokenizer_metrics"]).read_text()), "rfid"))
            if f["tokens_val"] not in pos_ppl:
                pos_ppl[f["tokens_val"]] = position_perplexity(Path(f["tokens_val"]))
            put(row, "pos_ppl", float(pos_ppl[f["tokens_val"]]))
        for (k, size), pids in units.ctf_models(p).items():
            f = files["ctf"][f"K{k}-{size}"]
            scores = json.loads(Path(f["scores"]).read_text())
            acc = _last_val_acc(Path(f["stage1_log"]))
            for pid in pids:
                put(pid, "gfid", interval(scores[pid], "fid"))
                put(pid, "cc", interval(scores[pid], "class_consistency"))
                put(pid, "acc", acc)  # over the K coarse labels: not comparable with a plain row's
    return values


def stats(xs: list[float]) -> tuple[float, float]:
    m = sum(xs) / len(xs)
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0


def cell(per_seed: list) -> Interval | tuple[float, float]:
    """A unit's metric over the seeds: the mean with its 95 % interval, or mean and sd for context numbers."""
    return intervals.seed_mean(per_seed) if isinstance(per_seed[0], Interval) else stats(per_seed)


def difference(ours_from: list[Interval], ours_to: list[Interval]) -> Interval:
    """to − from, paired draw by draw at each seed, averaged over the seeds."""
    return intervals.seed_mean([intervals.paired(b, a) for a, b in zip(ours_from, ours_to)])


def verdict(ours_from: list[Interval], ours_to: list[Interval], paper_from, paper_to) -> str:
    """The report's rule: a direction counts only when the paired interval of the difference excludes 0."""
    if paper_from is None or paper_to is None or paper_to == paper_from:
        return "no paper direction"
    d = difference(ours_from, ours_to)
    if not intervals.differs(d):
        return "within noise"
    return "holds" if d.value * (paper_to - paper_from) > 0 else "reversed"


def _arrow(a, b) -> str:
    return "—" if a is None or b is None else ("↑" if b > a else "↓" if b < a else "=")


def _mean(per_seed: list) -> float:
    c = cell(per_seed)
    return c.value if isinstance(c, Interval) else c[0]


def _fmt(per_seed: list) -> str:
    c = cell(per_seed)
    if isinstance(c, Interval):
        return f"{c.value:.3g} [{c.lo:.3g}, {c.hi:.3g}]"
    return f"{c[0]:.3g} ± {c[1]:.2g}"


def _diff(ours_from: list[Interval], ours_to: list[Interval]) -> str:
    d = difference(ours_from, ours_to)
    return f"{d.value:+.3g} [{d.lo:+.3g}, {d.hi:+.3g}]"


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
                    "ours_difference": _diff(values[a][m], values[b][m]),
                    "ours": _arrow(_mean(values[a][m]), _mean(values[b][m])),
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
                    "ours_difference": _diff(values[a]["gfid"], values[b]["gfid"]),
                    "ours": _arrow(_mean(values[a]["gfid"]), _mean(values[b]["gfid"])),
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
    d_rfid, ra = difference(values["A"]["rfid"], values["B"]["rfid"]), _mean(values["A"]["rfid"])
    comparable = not intervals.differs(d_rfid) or abs(d_rfid.value) <= a["rfid_tolerance"] * ra
    # "at comparable rFID" conditions both directions: a tokenizer that keeps less of the image is easier to predict
    alitok = acc if comparable else "unresolved"
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
            "acc_difference": _diff(values["A"]["acc"], values["B"]["acc"]),
            "rfid_difference": _diff(values["A"]["rfid"], values["B"]["rfid"]),
            "paper_acc_A": paper[("alitok", "A")]["acc"],
            "paper_acc_B": paper[("alitok", "B")]["acc"],
        },
        "ctf": {
            "verdict": verdict(values[plain]["gfid"], values[ctf]["gfid"], pp, pc),
            "plain": plain,
            "point": ctf,
            "gfid_plain": _fmt(values[plain]["gfid"]),
            "gfid_ctf": _fmt(values[ctf]["gfid"]),
            "gfid_difference": _diff(values[plain]["gfid"], values[ctf]["gfid"]),
            "cc_difference": _diff(values[plain]["cc"], values[ctf]["cc"]),
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


def _bars(cells: list[list]) -> tuple[list[float], list[list[float]]]:
    """Centres and (below, above) error lengths: the 95 % interval, or ± sd for context numbers."""
    mid, err = [], [[], []]
    for per_seed in cells:
        c = cell(per_seed)
        lo, value, hi = (c.lo, c.value, c.hi) if isinstance(c, Interval) else (c[0] - c[1], c[0], c[0] + c[1])
        mid.append(value)  # a bootstrap FID interval may sit wholly above the value (its bias): bars from the value
        err[0].append(max(value - lo, 0.0))
        err[1].append(max(hi - value, 0.0))
    return mid, err


def _figures(p: dict, values: dict, ctf: dict, paper: dict, fig_dir: Path) -> list[Path]:
    plt = plots.pyplot()
    fig_dir.mkdir(parents=True, exist_ok=True)
    rows = list(units.rows(p))
    fig, axes = plt.subplots(1, len(METRICS), figsize=(4.2 * len(METRICS), 3.6))
    for ax, m in zip(axes, METRICS):
        mid, err = _bars([values[r][m] for r in rows])
        label = "ours (mean, 95 % interval)" if m != "pos_ppl" else "ours (mean ± sd)"
        ax.errorbar(range(len(rows)), mid, yerr=err, fmt="o", capsize=4, label=label)
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
        mid, err = _bars([values[pid]["gfid"] for _, pid in pts])
        ax.errorbar(range(len(pts)), mid, yerr=err, fmt="o-", capsize=4)
        ax.set_xticks(range(len(pts)), ["all" if t["sweep"] == "top_k" and v == 0 else str(v) for v, _ in pts])
        ax.set_title(f"({name}) {t['sweep']}", fontsize=9)
        ax.set_ylabel("gFID (ours)", fontsize=8)
        pv = [r.get("gfid") for r in t["paper"]]
        if pv and len(pv) == len(pts):
            twin = ax.twinx()
            twin.plot(range(len(pv)), pv, "s--", color="tab:red", alpha=0.6)
            twin.tick_params(axis="y", colors="tab:red")
    fig.suptitle(
        "CTF Table 3 sweeps: our gFID (mean, 95 % interval; left) and the paper's FID (red, right)", fontsize=10
    )
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
    lowest_cc = min(cell(ms["cc"]).lo for ms in values.values())
    lines = [
        f"# Ablations ({p['name']} profile, seeds {', '.join(map(str, seeds))})",
        "",
        f'**Rules** (the main report\'s, docs/evaluation.md "Intervals"). {intervals.RULES}',
        "",
        "Here every cell is the mean over the seeds with its 95 % interval [lo, hi]; the interval pools the seeds' "
        "draws over samples (gfid, cc), held-out images (rfid) or held-out sequences (acc). A direction compares two "
        "units by their paired difference (`ours_difference`: to − from, resampled with the same indices at each "
        'seed, averaged over the seeds): "holds" when its interval excludes 0 on the paper\'s side, "reversed" on '
        'the other, "within noise" when it holds 0. pos_ppl is context: mean ± sd over the seeds. The intervals '
        "cover the draw of samples and images given the trained models; the seeds are the only retraining. Paper "
        "numbers: results/paper/ablations.csv (docs/papers/alitok.md §3.5, §1.7; docs/papers/ctf.md §3.1, §3.3).",
        "",
        f"Lowest class-consistency lower bound over the rows and points: {lowest_cc:.1f} %.",
        "",
        "## Central claims",
        "",
        f"- **AliTok: a causal stage-1 decoder makes tokens more predictable at comparable rFID: {a['verdict']}.** "
        f"Held-out AR accuracy A {a['acc_A']} % -> B {a['acc_B']} %, B − A {a['acc_difference']} points "
        f"({a['acc_verdict']}; paper {a['paper_acc_A']:g} -> {a['paper_acc_B']:g} %); rFID A {a['rfid_A']} -> B "
        f"{a['rfid_B']}, B − A {a['rfid_difference']} ({'comparable' if a['rfid_comparable'] else 'not comparable'}; "
        "comparable means the paired difference is within noise or at most "
        f"{p['ablations']['rfid_tolerance']:.0%} of A's mean).",
        f"- **CTF: coarse-to-fine beats plain AR on the same tokens: {k['verdict']}** (gFID). Row {k['plain']} "
        f"{k['gfid_plain']} against CTF {k['gfid_ctf']} at point {k['point']}, CTF − plain {k['gfid_difference']} "
        f"(paper, LlamaGen-B: {k['paper_gfid_plain']} -> {k['paper_gfid_ctf']}). Class-consistency "
        f"{k['cc_plain']} % -> {k['cc_ctf']} %, CTF − plain {k['cc_difference']} points (higher is better: "
        f"{k['cc_verdict']}).",
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
        "lowest_cc_lower_bound": lowest_cc,
        "units": {u: {m: _mean(v) for m, v in ms.items()} for u, ms in values.items()},
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
