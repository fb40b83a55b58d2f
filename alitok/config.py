"""Params: read params.yaml, resolve the active params profile, validate it against the schema.

Both the Snakefile and every CLI entry point go through `load`, so a typo, a wrong type or an
out-of-range value stops the run before any work starts, with the key and what is allowed. This loader is
generic: checks that belong to one section's owner come in as `checks` (alitok.ablations.units.load adds the
ablations' and resolves ablation-unit names, which plain profiles never are).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Iterable
from pathlib import Path

# The schema's place in the project's checkout, relative to the folder of params.yaml (its only copy).
SCHEMA = Path("workflow") / "schemas" / "params.schema.yaml"

# A check a JSON schema cannot express: (resolved profile, where) -> None, or a ParamsError naming the key.
Check = Callable[[dict, str], None]


class ParamsError(ValueError):
    """Invalid params.yaml; the message names the profile, the key and what is allowed."""


def _read_yaml(path: Path):
    import yaml

    if not path.is_file():
        raise ParamsError(f"params file {path} does not exist")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ParamsError(f"{path} is not valid YAML: {e}") from e


def schema_path(params: str | Path | dict = "params.yaml") -> Path:
    """The default schema: `SCHEMA` beside the params file, else under the working directory (a params mapping,
    or a params file copied out of the checkout, as tests and hand runs do)."""
    here = Path.cwd() / SCHEMA
    if isinstance(params, dict):
        return here
    beside = Path(params).parent / SCHEMA
    return beside if beside.is_file() or not here.is_file() else here


def read_schema(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ParamsError(
            f"params schema {path} does not exist: run from the project's checkout (the folder holding {SCHEMA}) "
            "or give the schema's path"
        )
    return _read_yaml(path)


def source_name(params: str | Path | dict) -> str:
    """How messages name the params: the file, or 'params' for an already-loaded mapping."""
    return "params" if isinstance(params, dict) else str(params)


def deep_merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def resolve_profile(profiles: dict, name: str) -> dict:
    """Follow the `base` chain of profile `name` and merge, base first."""
    chain, current = [], name
    while current is not None:
        if current not in profiles:
            where = f"profile '{chain[-1]}' names base" if chain else "profile"
            raise ParamsError(f"{where} '{current}', which is not defined; defined: {', '.join(sorted(profiles))}")
        if current in chain:
            raise ParamsError(f"profiles: base chain loops: {' -> '.join(chain + [current])}")
        chain.append(current)
        current = profiles[current].get("base")
    resolved: dict = {}
    for link in reversed(chain):
        body = {k: v for k, v in profiles[link].items() if k != "base"}
        resolved = deep_merge(resolved, body)
    return resolved


def _format_error(error, where: str) -> str:
    key = ".".join(str(p) for p in error.absolute_path) or "<top level>"
    v, s, inst = error.validator, error.schema, error.instance
    if v == "additionalProperties":
        allowed = sorted(s.get("properties", {}))
        extra = sorted(set(inst) - set(allowed))
        prefix = f"{key}." if error.absolute_path else ""
        return f"{where}: unknown key {', '.join(prefix + k for k in extra)}; allowed here: {', '.join(allowed)}"
    if v == "required":
        missing = [k for k in error.validator_value if k not in inst]
        prefix = f"{key}." if error.absolute_path else ""
        return f"{where}: missing key {', '.join(prefix + k for k in missing)}"
    if v == "type":
        return f"{where}: {key} must be of type {error.validator_value}, got {inst!r}"
    if v in ("enum", "const"):
        allowed = error.validator_value if v == "enum" else [error.validator_value]
        return f"{where}: {key} = {inst!r} is not allowed; allowed: {', '.join(map(repr, allowed))}"
    bounds = {
        "minimum": ">=",
        "maximum": "<=",
        "exclusiveMinimum": ">",
        "exclusiveMaximum": "<",
        "multipleOf": "a multiple of",
        "minLength": "of length >=",
        "minProperties": "with entries >=",
    }
    if v in bounds:
        return f"{where}: {key} = {inst!r} is out of range; must be {bounds[v]} {error.validator_value}"
    return f"{where}: {key}: {error.message}"


def _validate(instance, schema_doc: dict, where: str) -> None:
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema_doc)
    errors = sorted(
        validator.iter_errors(instance), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path)))
    )
    if errors:
        # Report the deepest, most specific error: `if/then` failures come with a more precise child.
        best = max(errors, key=lambda e: len(e.absolute_path))
        raise ParamsError(_format_error(best, where))


def _profile_schema(full: dict) -> dict:
    """The schema of one resolved params profile."""
    return {"$schema": full["$schema"], "$defs": full["$defs"], "$ref": "#/$defs/profile"}


def validate_document(
    doc, source: str = "params.yaml", *, schema: str | Path | None = None, checks: Iterable[Check] = ()
) -> None:
    """Validate the whole file: structure, the active profile's name, and every profile resolved, against the
    schema at `schema` (default: `SCHEMA` under the working directory); each of `checks` runs on every resolved
    profile after the schema and the generic reference checks."""
    if not isinstance(doc, dict):
        raise ParamsError(f"{source}: must be a mapping with keys profile and profiles")
    full = read_schema(schema if schema is not None else schema_path(doc))
    top = {k: v for k, v in full.items() if k != "$defs"}
    _validate(doc, top, source)
    profiles = doc["profiles"]
    if doc["profile"] not in profiles:
        raise ParamsError(
            f"{source}: profile = {doc['profile']!r} is not defined; defined: {', '.join(sorted(profiles))}"
        )
    profile_schema = _profile_schema(full)
    for name in profiles:
        resolved, where = resolve_profile(profiles, name), f"{source}: params profile '{name}'"
        _validate(resolved, profile_schema, where)
        _check_references(resolved, where)
        for check in checks:
            check(resolved, where)


def validate_profile(p: dict, where: str, schema: str | Path) -> None:
    """Validate one resolved profile (a derived one: its `name`, `ablation` and `setting` keys aside) against the
    schema."""
    body = {k: v for k, v in p.items() if k not in ("name", "ablation", "setting")}
    _validate(body, _profile_schema(read_schema(schema)), where)


def _check_references(p: dict, where: str) -> None:
    """What a JSON schema cannot say: names that must point at keys elsewhere in the profile, and widths that
    the release discriminator's GroupNorm must divide."""
    g = p.get("generator")
    if g is not None:
        unknown = [s for s in g["run"] if s not in g["scales"]]
        if unknown:
            raise ParamsError(
                f"{where}: generator.run names {', '.join(unknown)}, not in generator.scales ({', '.join(g['scales'])})"
            )
        unknown = [s for s in p.get("ctf", {}).get("run", []) if s not in g["scales"]]
        if unknown:
            raise ParamsError(
                f"{where}: ctf.run names {', '.join(unknown)}, not in generator.scales ({', '.join(g['scales'])})"
            )
    disc = p.get("tokenizer", {}).get("discriminator")
    if disc is not None and disc["recipe"] == "release":
        widths = [disc["channels"] * 2**i for i in range(disc["layers"])]
        if any(w % disc["groups"] for w in widths):
            raise ParamsError(
                f"{where}: tokenizer.discriminator.groups {disc['groups']} must divide every width of the release "
                f"discriminator ({', '.join(map(str, widths))})"
            )


def load(
    params: str | Path | dict = "params.yaml",
    profile: str | None = None,
    *,
    schema: str | Path | None = None,
    checks: Iterable[Check] = (),
) -> dict:
    """The resolved, validated params of plain profile `profile` (default: the file's `profile` key).

    `params` is a path to params.yaml or the already-loaded mapping (Snakemake's `config`); `schema` the schema's
    path (default: `schema_path(params)`); `checks` run on every profile (see `validate_document`). Ablation
    units (`<profile>/<unit>/seed<N>`) are alitok.ablations.units.load's: every caller that may see one uses it.
    """
    doc = copy.deepcopy(params) if isinstance(params, dict) else _read_yaml(Path(params))
    if profile is not None and isinstance(doc, dict):
        doc["profile"] = profile
    validate_document(
        doc, source_name(params), schema=schema if schema is not None else schema_path(params), checks=checks
    )
    resolved = resolve_profile(doc["profiles"], doc["profile"])
    resolved["name"] = doc["profile"]
    return resolved


def section_hash(section) -> str:
    """A stable short hash of a params section: checkpoints record it to refuse a mismatched resume."""
    blob = json.dumps(section, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def add_arguments(parser) -> None:
    """`alitok params` takes only the common options."""


def main(args, p: dict) -> None:
    """`alitok params`: the resolved profile, as every command receives it."""
    import sys

    import yaml

    yaml.safe_dump(p, sys.stdout, sort_keys=False)
