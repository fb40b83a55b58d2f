import functools
import os

from snakemake.exceptions import WorkflowError

from alitok import reads
from alitok.ctf import setting as ctf_setting
from alitok.evaluation.summary import curve_names
from alitok.generator.runs import generator_runs as runs_of, imports_generators, parse_run, tokenizer_final_stage, trained_run

# Helpers of the rule files (which call only these, never each other's): which inputs exist depends on the profile.

# A rule's shell command starts with this: `params.alitok` (from `command`) is the launcher, the subcommand, its
# params profile and the tags of the job's MLflow child run; then the job's log. The rule adds its own paths.
CALL = "{params.alitok} --mlflow-rule {rule} --log {log}"

# Rules that derived params reuse write under {OUT}/{u}: `u` is empty for the profile's own runs,
# "ablation/seed<N>/<unit>/" for an ablation unit and "ctf_setting/" for the profile's CTF setting
# (alitok/ctf/setting.py), whose files keep the same layout below it.
U = f"{OUT}/{{u}}"
SETTING = f"{ctf_setting.NAME}/"

wildcard_constraints:
    u=rf"(ablation/seed\d+/[^/]+/|{SETTING})?",


def data_files(*names):
    """The data stage's outputs a rule reads: `train`, `val` (manifests), `info` (dataset.json)."""
    files = {"train": f"{OUT}/data/train.csv", "val": f"{OUT}/data/val.csv", "info": f"{OUT}/data/dataset.json"}
    return {name: files[name] for name in names}


def trained(stem):
    """A trainer's checkpoint, per-step log and curves: <stem>.pt, <stem>_log.jsonl, <stem>_curve.png; a folder
    (a stem ending in /) holds them as model.pt, log.jsonl, curve.png."""
    sep = "" if stem.endswith("/") else "_"
    return {"ckpt": f"{stem}{'model' if not sep else ''}.pt", "log": f"{stem}{sep}log.jsonl",
            "curve": f"{stem}{sep}curve.png"}


def classifier_files(folder):
    """What the classifier trainer writes into `folder`."""
    return {name: f"{folder}/{name}.{ext}" for name, ext in
            (("model", "pt"), ("metrics", "json"), ("curve", "png"), ("confusion", "png"))}


def unit_prefix(unit, seed):
    return f"ablation/seed{seed}/{unit}/"


def unit_file(unit, seed, path):
    return f"{OUT}/{unit_prefix(unit, seed)}{path}"


def unit_of(wildcards):
    """(unit, seed) of an ablation job, None for the profile's own or its CTF setting's."""
    u = getattr(wildcards, "u", "")
    if not u.startswith("ablation/"):
        return None
    _, seed, unit = u.strip("/").split("/")
    return unit, int(seed.removeprefix("seed"))


@functools.cache
def derived_params(name):
    """The params of an ablation unit (`<profile>/<unit>/seed<N>`, alitok.ablations.units.derive) or of the profile's
    CTF setting (`<profile>/ctf_setting`, alitok.ctf.setting.derive)."""
    return ablation_units.load(config, name, schema=SCHEMA)


def setting_params():
    return derived_params(f"{PROFILE}/{ctf_setting.NAME}")


def job_profile(wildcards, u=None):
    """The params name a job runs under: the profile's, an ablation unit's or the CTF setting's, from the job's `u`
    (a wildcard, or given for rules without one)."""
    unit = unit_of(wildcards)
    if unit is not None:
        return "{}/{}/seed{}".format(PROFILE, *unit)
    return f"{PROFILE}/{ctf_setting.NAME}" if (u or getattr(wildcards, "u", "")) == SETTING else PROFILE


def job_params(wildcards, u=None):
    name = job_profile(wildcards, u)
    return P if name == PROFILE else derived_params(name)


def command(name, *, ddp=False, u=None, **options):
    """A rule's `params:` for `alitok <name>`: `alitok`, its call (torchrun with one process per GPU of the job when
    `ddp`) under the job's profile (an ablation unit's, from `u`) with its MLflow tags, and `reads`, what it reads
    from params (alitok.reads: the rerun trigger, and what MLflow logs). `options` (values or functions of the
    wildcards) are the declaration's, as in alitok.reads. `u`: the params' folder prefix (as the wildcard) for a
    rule without the wildcard."""

    def call(wildcards, resources):
        profile = job_profile(wildcards, u)
        launch = f"torchrun --standalone --nproc-per-node {resources.gpu} -m alitok" if ddp and resources.gpu > 1 else "alitok"
        tags = ",".join(f"{k}={v}" for k, v in wildcards.items() if k != "u")
        return f"{launch} {name} --params params.yaml --profile {profile} --mlflow-wildcards '{tags}'"

    def read(wildcards):
        p = job_params(wildcards, u)
        given = {k: v(wildcards) if callable(v) else v for k, v in options.items()}
        return reads.of(name, p, **given)

    return {"alitok": call, "reads": read}


def _resources(rule):
    return P["resources"].get(rule, P["resources"]["default"])


def job_resources(rule):
    """What a cluster executor asks for: params `resources.<rule>`, else `resources.default` (docs/cluster.md)."""
    return {k: v for k, v in _resources(rule).items() if k != "core_share"}


def torch_threads(rule):
    """A torch job's threads: its params `core_share` of --cores, at least one; one for an ablation unit's jobs,
    which are many and small, so two run side by side on a 2-core machine.

    Snakemake sets OMP_NUM_THREADS to a job's `threads` (1 when a rule declares none), and torch obeys it.
    At share 1 a job takes every core and jobs run one after another; at 0.5 two run side by side, which on a
    2-core machine gains what one job cannot use of the second core and hides each job's start-up
    (docs/cluster.md). The thread count changes the float rounding of some kernels (convolutions), so a
    profile's numbers are reproducible for a given --cores and share, not across them. On a cluster the executor
    turns the count into the job's CPU request.
    """
    share = max(1, round(workflow.cores * _resources(rule).get("core_share", 1.0)))
    return lambda wildcards: 1 if unit_of(wildcards) else share


# Files the user provides (the dataset, weights, reference batches) that do not exist: each rule that reads one
# names it here while the rules are parsed, and the Snakefile lists them all at once afterwards, each with what to
# put where, so one dry run shows everything a paper-scale profile still needs. A dict: each message once, in order.
MISSING = {}


def dataset_root():
    """The ImageFolder tree the data stage scans: generated for the embedded source, else params."""
    if P["data"]["source"] == "embedded":
        return f"{OUT}/data/images"
    root = P["data"]["root"]
    if not os.path.isdir(root):
        MISSING[f"data.root = {root} is not a directory. Put the dataset there (train/<wnid>/*.JPEG and val/, "
                "see docs/data.md) or set data.root in params.yaml."] = None
    return root


def local_file(path, key, what):
    """A file the user provides (weights, reference batches): a missing one is listed, saying what goes where."""
    if not os.path.isfile(path):
        MISSING[f"{key} = {path} does not exist. Put {what} there or set {key} in params.yaml "
                "(docs/evaluation.md)."] = None
    return path


def missing_inputs_error():
    """One error listing every missing user file (None when all are in place)."""
    if not MISSING:
        return None
    lines = "\n".join(f"  - {m}" for m in MISSING)
    return WorkflowError(f"params profile '{PROFILE}': {len(MISSING)} input(s) the pipeline cannot make are "
                         f"missing:\n{lines}")


def uses_classifier():
    """The evaluation's features come from the domain classifier the pipeline trains on the profile's own data (the
    embedded data or any labelled folder), not from Inception; the report says which."""
    return P["evaluation"]["extractor"] == "domain_classifier"


def uses_ctf(p=None):
    p = P if p is None else p
    return bool(p.get("ctf", {}).get("run")) and not imports_generators(p)


def has_ctf_setting():
    return "ctf_setting" in P and not imports_generators(P) and uses_classifier()


def final_tokenizer(wildcards=None):
    """The checkpoint that encodes the tokens and decodes the samples (AliTok's stage 2, VQ-16's one stage)."""
    u = getattr(wildcards, "u", "") if wildcards is not None else ""
    p = P if wildcards is None else job_params(wildcards)
    return f"{OUT}/{u}tokenizer/stage{tokenizer_final_stage(p)}.pt"


def perceptual_net_input(wildcards):
    tok = P["tokenizer"]["perceptual"]
    uses_domain = "domain" in (tok["logits_net"], tok["lpips_net"])
    return {"perceptual": f"{OUT}/perceptual_net/model.pt"} if uses_domain else {}


def perceptual_net_arg(wildcards, input):
    return f"--perceptual-net {input.perceptual}" if "perceptual" in input.keys() else ""


def tokens_dir(split):
    """The tokens a job reads: the profile's, or those of the ablation row whose tokenizer its unit uses."""

    def path(wildcards):
        unit = unit_of(wildcards)
        owner = wildcards.u if unit is None else unit_prefix(ablation_units.tokenizer_unit(P, unit[0]), unit[1])
        return f"{OUT}/{owner}tokens/{split}"

    return path


def tokens_tokenizer(wildcards):
    """Tokens come from the final tokenizer; an ablation row's from its stage 1 (stage 2 freezes the encoder)."""
    return f"{OUT}/{wildcards.u}tokenizer/stage1.pt" if unit_of(wildcards) else final_tokenizer(wildcards)


def ablation_decoder(unit, seed):
    """The tokenizer checkpoint that decodes an ablation unit's codes: its row's, at the row's decoder stage."""
    row = unit if unit in ablation_units.rows(P) else P["ablations"]["ctf"]["tokens_of"]
    stage = ablation_units.decoder_stage(P, row)
    return f"{OUT}/{unit_prefix(ablation_units.tokenizer_of(P, row), seed)}tokenizer/stage{stage}.pt"


def clustered_tokenizer(wildcards):
    unit = unit_of(wildcards)
    return final_tokenizer(wildcards) if unit is None else ablation_decoder(*unit)


def coarse_map(wildcards):
    """CTF's map: the profile's, or that of the point that owns an ablation unit's cluster count."""
    unit = unit_of(wildcards)
    if unit is None:
        return f"{OUT}/{wildcards.u}ctf/coarse_map.json"
    owner = ablation_units.ctf_owner(P, ablation_units.points(P)[unit[0]]["clusters"])
    return f"{OUT}/{unit_prefix(owner, unit[1])}ctf/coarse_map.json"


def generator_runs(p=None):
    return runs_of(P if p is None else p)


def run_scale(wildcards):
    return parse_run(wildcards.run)[1]


def run_control(wildcards):
    return parse_run(wildcards.run)[2]


def run_control_arg(wildcards):
    control = run_control(wildcards)
    return f"--control {control}" if control else ""


def is_ctf_run(wildcards):
    return parse_run(wildcards.run)[0] == "ctf"


def run_protocol(wildcards):
    """"ctf" for a plain generator sampled at CTF's protocol (run "<scale>-at_ctf"), else "own"."""
    return parse_run(wildcards.run)[3]


def run_protocol_arg(wildcards):
    return "--protocol ctf" if run_protocol(wildcards) == "ctf" else ""


def run_model(wildcards):
    """The model.pt a run samples: a protocol-matched run samples its scale's trained generator."""
    return f"{OUT}/{wildcards.u}generator/{trained_run(wildcards.run)}/model.pt"


def ctf_inputs(wildcards):
    """A run's CTF files: the coarse map for stage 1, and stage 2 too for sampling and timing."""
    if not is_ctf_run(wildcards):
        return {}
    ctf = f"{OUT}/{wildcards.u}ctf"
    return {"coarse_map": f"{ctf}/coarse_map.json", "stage2": f"{ctf}/stage2/model.pt"}


def ctf_args(wildcards, input):
    return f"--ctf-stage2 {input.stage2} --coarse-map {input.coarse_map}" if "stage2" in input.keys() else ""


def extractor_weights():
    # the embedded data's extractor is the pipeline's own classifier; Inception weights come from a local file
    if P["evaluation"]["extractor"] == "domain_classifier":
        return f"{OUT}/classifier/model.pt"
    return local_file(P["evaluation"]["extractor_weights"], "evaluation.extractor_weights",
                      "torch-fidelity's Inception-v3 weights (weights-inception-2015-12-05-6726825d.pth)")


def report_file(path, caption, category="results", **kwargs):
    """An output `snakemake --report` shows, with its caption workflow/report/<caption>.rst (a path relative to the
    rule files, which all sit in workflow/rules/; Jinja in it sees `snakemake.wildcards` and `snakemake.config`)."""
    return report(path, caption=f"../report/{caption}.rst", category=category, **kwargs)


def compares_tokenizer_stages(p=None):
    """Stage 2 against stage 1 trained on (docs/tokenizer.md): AliTok's two stages, when params ask for it."""
    p = P if p is None else p
    return tokenizer_final_stage(p) == 2 and p["tokenizer"]["training"]["compare_stage1_continued"]


def reported_tokenizer_stages(p=None):
    """The tokenizer stages the report covers (embedded data only: their metrics use the domain classifier)."""
    p = P if p is None else p
    if not uses_classifier() or "release" in p:
        return []
    continued = ["stage1_continued"] if compares_tokenizer_stages(p) else []
    return ["stage1", *continued, *(["stage2"] if tokenizer_final_stage(p) == 2 else [])]


def report_curves(u="", p=None):
    """The per-run curve files a report writes (what `dvc plots` draws): none for imported generators."""
    p = P if p is None else p
    if imports_generators(p):
        return []
    trained = [r for r in generator_runs(p) if trained_run(r) == r]  # a protocol-matched run has no curve of its own
    names = curve_names(trained, reported_tokenizer_stages(p), ["ctf_stage2"] if uses_ctf(p) else [])
    return [f"{OUT}/{u}curves/{kind}/{name}.json" for kind in names for name in names[kind]]


def final_targets():
    if imports_generators(P):  # released weights: no data, no training; sample, evaluate, report
        return [final_tokenizer(), f"{OUT}/report.md", f"{OUT}/metrics.json"]  # no logs, no curves
    targets = [f"{OUT}/data/dataset.json", final_tokenizer()]
    targets += [f"{OUT}/generator/{run}/samples_grid.png" for run in generator_runs()]
    targets += [f"{OUT}/report.md", f"{OUT}/metrics.json", *report_curves()]  # every output DVC reads
    if uses_classifier():
        # reconstruction metrics use the domain classifier; ImageNet rFID (Inception) comes with evaluation
        targets.append(f"{OUT}/classifier/metrics.json")
        targets += [f"{OUT}/tokenizer/{v}_metrics.json" for v in reported_tokenizer_stages() if v != "stage1_continued"]
        if compares_tokenizer_stages():
            targets.append(f"{OUT}/tokenizer/stage_comparison.md")
    return targets


def setting_targets():
    """The CTF setting's report and what DVC reads of it (`snakemake ctf_setting`, outside `all`)."""
    out = f"{OUT}/{SETTING}"
    return [f"{out}report.md", f"{out}metrics.json", *report_curves(SETTING, setting_params())]
