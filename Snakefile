# One DAG from raw images to the papers' tables. Rules are thin: each calls one `alitok` subcommand
# with explicit paths; all logic lives in the alitok package. params.yaml is the only configuration;
# choose the params profile with `snakemake --config profile=<name>` (tiny | smoke | imagenet256 | imagenet512).
import os
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

from alitok import sharing
from alitok.ablations import units as ablation_units  # its load: alitok.config.load, plus ablation units

# Jobs call `alitok`: make the interpreter that runs Snakemake (the project's .venv) provide it, even when
# the venv is not activated.
os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")

# params.yaml, except in `alitok pull`'s `snakemake --touch` that marks pulled results up to date with dvc.lock's
# params
configfile: os.environ.get(sharing.PARAMS_FILE, "params.yaml")

# `--config data_root=PATH`: the labelled folder (train/<class>/*, val/<class>/*) of an imagefolder profile such as
# `folder`, for this invocation (docs/data.md). Only the data stage reads it, as its --root; the stages after it read
# the folder's manifests, and dataset.json records the path. Set data.root in params.yaml to make it permanent.
DATA_ROOT = config.pop("data_root", None)
if DATA_ROOT is not None and config["profile"] in config["profiles"]:
    config["profiles"][config["profile"]].setdefault("data", {})["root"] = str(DATA_ROOT)
SCHEMA = Path(workflow.basedir) / "workflow" / "schemas" / "params.schema.yaml"  # the params schema, its only copy
P = ablation_units.load(config, schema=SCHEMA)   # resolves and validates every profile before any job starts
PROFILE = P["name"]
if DATA_ROOT is not None and P["data"]["source"] != "imagefolder":
    raise WorkflowError(f"data_root={DATA_ROOT}: params profile '{PROFILE}' generates its data (data.source "
                        f"{P['data']['source']}); run a folder with an imagefolder profile: --config profile=folder")
# Pulled results count as computed once `alitok pull` has verified and marked them (docs/sharing.md). Parsing only
# looks (dvc.lock and a marker: no hashing, no writing, no process): a dry run warns, and onstart
# (workflow/rules/tracking.smk) refuses a real run before any job rather than silently recompute them.
UNADOPTED = sharing.pending(Path("."), PROFILE)
if UNADOPTED:
    print(f"alitok: warning: {UNADOPTED}", file=sys.stderr)
OUT = f"results/{PROFILE}"
LOGS = f"logs/{PROFILE}"

report: "workflow/report/workflow.rst"  # `snakemake --report`'s description; each result's caption: report_file

include: "workflow/rules/common.smk"
include: "workflow/rules/tracking.smk"
if not imports_generators(P):  # release256, llamagen256 import every weight: no data, no training rules
    include: "workflow/rules/data.smk"
    include: "workflow/rules/classifier.smk"
    include: "workflow/rules/tokens.smk"
if "release" not in P:  # ctf256 imports its tokenizer and trains the rest
    include: "workflow/rules/tokenizer.smk"
include: "workflow/rules/ctf.smk"
include: "workflow/rules/generator.smk"
include: "workflow/rules/evaluation.smk"
include: "workflow/rules/release.smk"
include: "workflow/rules/ablations.smk"  # the `ablations` target, outside `all` (docs/ablations.md)


rule all:
    input:
        final_targets(),
    default_target: True


MISSING_INPUTS = missing_inputs_error()  # the user's files not in place, all of them in one message (common.smk)
if MISSING_INPUTS:
    raise MISSING_INPUTS
