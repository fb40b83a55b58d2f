# One DAG from raw images to the papers' tables. Rules are thin: each calls one `alitok` subcommand
# with explicit paths; all logic lives in the alitok package. params.yaml is the only configuration;
# choose the params profile with `snakemake --config profile=<name>` (tiny | smoke | imagenet256 | imagenet512).
import os
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

from alitok import config as alitok_config
from alitok import sharing

# Jobs call `alitok`: make the interpreter that runs Snakemake (the project's .venv) provide it, even when
# the venv is not activated.
os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")

# params.yaml, except in the `snakemake --touch` that marks pulled results up to date with dvc.lock's params
configfile: os.environ.get(sharing.PARAMS_FILE, "params.yaml")

P = alitok_config.load(config)   # resolves and validates every profile before any job starts
PROFILE = P["name"]
try:  # results a `dvc pull` brought in count as computed: verified, then marked up to date (docs/sharing.md)
    sharing.adopt(Path("."), PROFILE)
except sharing.SharingError as e:
    raise WorkflowError(str(e)) from None
OUT = f"results/{PROFILE}"
LOGS = f"logs/{PROFILE}"
# Every rule's command passes {PARAMS} and, written out in each rule since Snakemake formats a command
# once, `--mlflow-rule {rule} --mlflow-wildcards '{wildcards}'`: the tags of the job's MLflow child run.
PARAMS = f"--params params.yaml --profile {PROFILE}"

include: "workflow/rules/common.smk"
include: "workflow/rules/tracking.smk"
if "release" not in P:  # the release256 profile imports weights: no data, no training rules
    include: "workflow/rules/data.smk"
    include: "workflow/rules/classifier.smk"
    include: "workflow/rules/tokenizer.smk"
    include: "workflow/rules/tokens.smk"
include: "workflow/rules/ctf.smk"
include: "workflow/rules/generator.smk"
include: "workflow/rules/evaluation.smk"
include: "workflow/rules/release.smk"
include: "workflow/rules/ablations.smk"  # the `ablations` target, outside `all` (docs/ablations.md)


rule all:
    input:
        final_targets(),
    default_target: True
