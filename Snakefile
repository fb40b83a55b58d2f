# One DAG from raw images to the papers' tables. Rules are thin: each calls one `alitok` subcommand
# with explicit paths; all logic lives in the alitok package. params.yaml is the only configuration;
# choose the params profile with `snakemake --config profile=<name>` (tiny | smoke | imagenet256 | imagenet512).
import os
import sys

from alitok import config as alitok_config

# Jobs call `alitok`: make the interpreter that runs Snakemake (the project's .venv) provide it, even when
# the venv is not activated.
os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")

configfile: "params.yaml"

P = alitok_config.load(config)   # resolves and validates every profile before any job starts
PROFILE = P["name"]
OUT = f"results/{PROFILE}"
LOGS = f"logs/{PROFILE}"
PARAMS = f"--params params.yaml --profile {PROFILE}"   # every rule's command passes these

include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/classifier.smk"
include: "workflow/rules/tokenizer.smk"
include: "workflow/rules/tokens.smk"
include: "workflow/rules/generator.smk"


rule all:
    input:
        final_targets(),
    default_target: True
