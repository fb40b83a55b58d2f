"""The ablations' units: what each row or sweep point changes in params, and which trained models it shares.

A unit is an AliTok row ("A".."F", "probe") or a CTF sweep point (`point_id`). `derive` turns the active
profile, a unit and a seed into an ordinary params dict, so every `alitok` command runs a unit unchanged:
the rules pass `--profile <profile>/<unit>/seed<N>` and `load` (which every caller that may see such a name uses,
the CLI and the Snakefile included) calls `derive`.
Rows that differ only after a stage share its output: E and F train the tokenizer of D (`tokenizer_of`),
F samples the generator of E (`generator_of`) and decodes with the stage-2 decoder.
"""

from __future__ import annotations

import copy
from pathlib import Path

from alitok import config, geometry
from alitok.config import ParamsError
from alitok.ctf import setting

TOKENIZER_SWITCHES = ("encoder", "decoder", "prefix", "aux")
CTF_KEYS = ("clusters", "stage2", "guidance", "top_k", "tau1", "tau2")
SCALE = "S"  # the ablations' one generator scale: the smoke family's


def rows(p: dict) -> dict:
    return p["ablations"]["alitok"]


def tokenizer_of(p: dict, row: str) -> str:
    """The first row whose tokenizer switches equal `row`'s: the one whose tokenizer `row` uses."""
    want = {k: rows(p)[row][k] for k in TOKENIZER_SWITCHES}
    return next(r for r, s in rows(p).items() if {k: s[k] for k in TOKENIZER_SWITCHES} == want)


def generator_of(p: dict, row: str) -> str:
    """The first row with `row`'s tokens and generator length: the generator `row` samples."""
    tok, steps = tokenizer_of(p, row), rows(p)[row]["generator_steps"]
    return next(r for r, s in rows(p).items() if tokenizer_of(p, r) == tok and s["generator_steps"] == steps)


def decoder_stage(p: dict, row: str) -> int:
    return 2 if rows(p)[row]["two_stage"] else 1


def point_id(settings: dict) -> str:
    s = settings
    return f"K{s['clusters']}-{s['stage2']}-g{s['guidance']:g}-k{s['top_k']}-t{s['tau1']:g}-{s['tau2']:g}"


def table_points(p: dict) -> dict[str, list[tuple[object, str]]]:
    """Each CTF sub-table's (value, point id) pairs, in the paper's order."""
    c = p["ablations"]["ctf"]
    out = {}
    for name, t in c["tables"].items():
        base = c["defaults"] | t["hold"]
        out[name] = [(v, point_id(base | {t["sweep"]: v})) for v in t["values"]]
    return out


def points(p: dict) -> dict[str, dict]:
    """Every CTF sweep point (and the claim's), id -> settings; points shared by sub-tables appear once."""
    c = p["ablations"]["ctf"]
    out = {}
    for t in c["tables"].values():
        for v in t["values"]:
            s = c["defaults"] | t["hold"] | {t["sweep"]: v}
            out[point_id(s)] = s
    claim = c["defaults"] | c["claim"]
    out[point_id(claim)] = claim
    return out


def claim_point(p: dict) -> str:
    c = p["ablations"]["ctf"]
    return point_id(c["defaults"] | c["claim"])


def ctf_models(p: dict) -> dict[tuple[int, str], list[str]]:
    """(K, stage-2 size) -> the points sampled with that stage 2 (and the K's stage 1)."""
    out: dict[tuple[int, str], list[str]] = {}
    for pid, s in points(p).items():
        out.setdefault((s["clusters"], s["stage2"]), []).append(pid)
    return out


def units(p: dict) -> list[str]:
    return [*rows(p), *points(p)]


def load(params: str | Path | dict = "params.yaml", profile: str | None = None, *, schema=None) -> dict:
    """alitok.config.load, plus the names of derived params and the ablations' own checks: the resolved, validated
    params of `profile`, where `<profile>/<unit>/seed<N>` is one ablation unit of `<profile>` (`derive`, with an
    `ablation` key saying which unit and seed) and `<profile>/ctf_setting` its CTF setting
    (alitok.ctf.setting.derive, with a `setting` key); the `name` of both stays `<profile>`.
    `schema`: as in alitok.config.load."""
    schema = schema if schema is not None else config.schema_path(params)
    parts = None if profile is None else split_name(profile)
    p = config.load(params, profile if parts is None else parts[0], schema=schema, checks=[check])
    if parts is None:
        return p
    q = setting.derive(p) if parts[1] == setting.NAME else derive(p, parts[1], parts[2])
    config.validate_profile(q, f"{config.source_name(params)}: derived params '{profile}'", schema)
    return q


def check(p: dict, where: str) -> None:
    """What the schema cannot say about the ablations section (a profile without one passes)."""
    if "ablations" not in p:
        return
    a = p["ablations"]
    for row, s in a["alitok"].items():
        if s["aux"] and not s["prefix"]:
            raise ParamsError(f"{where}: ablations.alitok.{row}: aux needs prefix (the loss is on the prefix tokens)")
    c = a["ctf"]
    if c["tokens_of"] not in a["alitok"]:
        raise ParamsError(
            f"{where}: ablations.ctf.tokens_of = {c['tokens_of']!r} is not a row of ablations.alitok "
            f"({', '.join(a['alitok'])})"
        )
    sizes = {s["stage2"] for s in points(p).values()}
    if sizes - set(c["stage2_sizes"]):
        raise ParamsError(
            f"{where}: ablations.ctf names stage-2 sizes {', '.join(sorted(map(str, sizes - set(c['stage2_sizes']))))}"
            f", not in ablations.ctf.stage2_sizes ({', '.join(c['stage2_sizes'])})"
        )
    if SCALE not in p["generator"]["scales"]:
        raise ParamsError(f"{where}: ablations train generator scale {SCALE}, which generator.scales lacks")
    codes = geometry.from_params(p).codebook_size
    too_many = [s["clusters"] for s in points(p).values() if s["clusters"] > codes]
    if too_many:
        raise ParamsError(f"{where}: ablations.ctf asks for {max(too_many)} clusters of {codes} codes")


def _with_row(p: dict, row: str) -> dict:
    s, q = rows(p)[row], copy.deepcopy(p)
    model, scale = q["tokenizer"]["model"], q["generator"]["scales"][SCALE]
    model["encoder_attention"] = s["encoder"]
    model["stage1_decoder"] = s["decoder"]
    if not s["prefix"]:
        model["prefix"] = "none"
    if not s["aux"]:
        q["tokenizer"]["loss"]["aux_weight"] = 0.0
    scale["steps"] = p["generator"]["scales"][SCALE]["steps"] * s["generator_steps"]
    return q


def derive(p: dict, unit: str, seed: int) -> dict:
    """The params of `unit` at `seed`: the profile with the row's switches or the point's CTF settings."""
    a = p.get("ablations")
    if a is None:
        raise ParamsError(f"params profile '{p['name']}' has no ablations section")
    if seed not in a["seeds"]:
        raise ParamsError(f"seed {seed} is not in ablations.seeds {a['seeds']} of profile '{p['name']}'")
    if unit in rows(p):
        q = _with_row(p, unit)
    elif unit in points(p):
        s, c = points(p)[unit], a["ctf"]
        q = _with_row(p, c["tokens_of"])
        q["ctf"]["run"] = [SCALE]
        q["ctf"]["clusters"]["count"] = s["clusters"]
        q["ctf"]["stage2"] = copy.deepcopy(c["stage2_sizes"][s["stage2"]])
        q["ctf"]["sampling"] |= {  # the guidance schedule (guidance_power) stays the profile's ctf.sampling's
            "guidance": s["guidance"],
            "top_k": s["top_k"],
            "tau1": s["tau1"],
            "tau2": s["tau2"],
        }
    else:
        raise ParamsError(
            f"ablation unit {unit!r} is neither a row of ablations.alitok ({', '.join(rows(p))}) nor a "
            f"CTF sweep point ({', '.join(points(p))})"
        )
    q["tokenizer"]["training"]["seed"] = seed
    q["generator"]["training"]["seed"] = seed
    q["generator"]["scales"][SCALE]["sample_seed"] = seed
    q["ctf"]["clusters"]["seed"] = seed
    q["ablation"] = {"unit": unit, "seed": seed}
    return q


def split_name(profile: str) -> tuple[str, str, int | None] | None:
    """'<profile>/<unit>/seed<N>' -> (profile, unit, N); '<profile>/ctf_setting' -> (profile, 'ctf_setting',
    None); a plain profile name -> None."""
    parts = profile.split("/")
    if len(parts) == 1:
        return None
    if len(parts) == 2 and parts[1] == setting.NAME:
        return parts[0], parts[1], None
    if len(parts) != 3 or not parts[2].startswith("seed") or not parts[2][4:].isdigit():
        raise ParamsError(
            f"profile {profile!r}: derived params are named <profile>/<unit>/seed<N> (an ablation unit) or "
            f"<profile>/{setting.NAME}"
        )
    return parts[0], parts[1], int(parts[2][4:])


def tokenizer_unit(p: dict, unit: str) -> str:
    """The row whose tokenizer (and tokens) `unit` uses: a CTF point uses that of `ablations.ctf.tokens_of`."""
    return tokenizer_of(p, unit if unit in rows(p) else p["ablations"]["ctf"]["tokens_of"])


def ctf_owner(p: dict, clusters: int, size: str | None = None) -> str:
    """The point whose profile trains the CTF models shared by every point with these clusters (and stage-2 size)."""
    return next(pids[0] for (k, s), pids in ctf_models(p).items() if k == int(clusters) and size in (None, s))
