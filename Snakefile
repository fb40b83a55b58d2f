# One DAG from raw images to the papers' tables. Rules are thin: each calls one `alitok` subcommand
# with explicit paths; all logic lives in the alitok package. params.yaml is the only configuration;
# choose the params profile with `snakemake --config profile=<name>` (tiny | smoke | imagenet256 | imagenet512).
from alitok import config as alitok_config

configfile: "params.yaml"

P = alitok_config.load(config)   # resolves and validates every profile before any job starts
PROFILE = P["name"]
OUT = f"results/{PROFILE}"
LOGS = f"logs/{PROFILE}"
PARAMS = f"--params params.yaml --profile {PROFILE}"   # every rule's command passes these

include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/classifier.smk"


rule all:
    input:
        final_targets(),
    default_target: True
