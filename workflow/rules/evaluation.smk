# Evaluation: FID / IS / precision-recall (torch-fidelity features, one pass per set) and class-consistency of
# every generator run and control, plus the real held-out images for context (the FID floor and the
# classifier's accuracy, the ceiling). Reference statistics are cached in evaluation/cache/, keyed by the
# reference's content and the extractor weights' hash.

import json

from alitok.evaluation.report import FIGURES as REPORT_FIGURES, files as manifest_files

EVAL = P["evaluation"]


def reference_inputs(wildcards=None):
    ref = EVAL["reference"]
    if ref["kind"] == "split":
        return {"reference": f"{OUT}/data/{ref['split']}.csv"}
    return {"reference": local_file(ref["path"], "evaluation.reference.path",
                                    "the ADM reference batch (e.g. VIRTUAL_imagenet256_labeled.npz)")}


reference_inputs()  # a missing reference batch is listed with the other missing files while parsing (MISSING)


def dataset_info(wildcards):
    # class count for chance, and split references; the released-weights profile reads no dataset
    return {"info": f"{OUT}/data/dataset.json"} if uses_classifier() or EVAL["reference"]["kind"] == "split" else {}


def reference_arg(wildcards, input):
    return f"--reference-manifest {input.reference}" if EVAL["reference"]["kind"] == "split" else ""


rule evaluate_generator:
    input:
        unpack(reference_inputs),
        unpack(dataset_info),
        unpack(ctf_inputs),  # CTF runs: stage 2 and the map, to time both stages
        samples=f"{U}generator/{{run}}/samples.npz",
        generator=run_model,
        tokenizer=final_tokenizer,
        weights=extractor_weights(),
    output:
        f"{U}evaluation/{{run}}.json",
    params:
        **command("evaluate"),
        what=lambda wildcards, input: f"--samples {input.samples} --scale {run_scale(wildcards)} "
        f"{run_control_arg(wildcards)} --generator {input.generator} --tokenizer {input.tokenizer}",
        ctf=lambda wildcards, input: f"{ctf_args(wildcards, input)} {run_protocol_arg(wildcards)}",
        dataset=lambda wildcards, input: f"--dataset {input.info}" if "info" in input.keys() else "",
        reference=reference_arg,
        cache=f"{OUT}/evaluation/cache",
    threads: torch_threads("evaluate_generator")
    resources:
        **job_resources("evaluate_generator"),
    log:
        f"{LOGS}/{{u}}evaluate_generator_{{run}}.log",
    benchmark:
        f"{U}benchmarks/evaluate_generator_{{run}}.tsv"
    shell:
        CALL + " {params.what} {params.ctf} --extractor-weights {input.weights} {params.dataset} {params.reference}"
        " --cache-dir {params.cache} --out {output}"


# Real held-out images through the same evaluation: the FID floor and the class-consistency ceiling.
use rule evaluate_generator as evaluate_real with:
    input:
        unpack(reference_inputs),
        split=f"{OUT}/data/val.csv",
        weights=extractor_weights(),
        info=f"{OUT}/data/dataset.json",
    output:
        f"{OUT}/evaluation/real_val.json",
    params:
        what=lambda wildcards, input: f"--real-split {input.split}",
        ctf="",
    threads: torch_threads("evaluate_real")
    resources:
        **job_resources("evaluate_real"),
    log:
        f"{LOGS}/evaluate_real.log",
    benchmark:
        f"{OUT}/benchmarks/evaluate_real.tsv"


def report_manifest(u="", p=None):
    """The report's input files by role (alitok/evaluation/report_data.py): one entry per generator run, the
    tokenizer stages, CTF's files; `u` and `p`: the CTF setting's folder and params. A new input goes here and in
    report_data.collect, nowhere else."""
    p, out = P if p is None else p, f"{OUT}/{u}"
    runs = {r: {"evaluation": f"{out}evaluation/{r}.json", "generator": f"{out}generator/{trained_run(r)}/model.pt"}
            | ({} if imports_generators(p) or trained_run(r) != r else {"log": f"{out}generator/{r}/log.jsonl"})
            for r in generator_runs(p)}  # imported generators and protocol-matched runs have no log of their own
    manifest = {"runs": runs, "paper": "results/paper/published.csv"}
    if uses_classifier():  # the floor and ceiling of the embedded data's numbers (shared), and the tokenizer's
        manifest |= {"real": f"{OUT}/evaluation/real_val.json", "classifier": f"{OUT}/classifier/metrics.json"}
        if compares_tokenizer_stages(p):
            manifest["comparison"] = f"{out}tokenizer/stage_comparison.md"
        manifest["tokenizer"] = {v: {"metrics": f"{out}tokenizer/{v}_metrics.json",
                                     "log": f"{out}tokenizer/{v}_log.jsonl"} for v in reported_tokenizer_stages(p)}
    if uses_ctf(p):
        manifest["ctf"] = {"map": f"{out}ctf/coarse_map.json", "stage2": f"{out}ctf/stage2/model.pt",
                           "stage2_log": f"{out}ctf/stage2/log.jsonl"}
        if uses_classifier():
            manifest["ctf"]["redundancy"] = f"{out}ctf/redundancy.json"
    return manifest


rule write_report:
    """Our numbers with their context, beside the papers'; `snakemake --report` embeds the same figures."""
    input:
        manifest_files(report_manifest()),
    output:
        report=f"{OUT}/report.md",
        figures=[report_file(f"{OUT}/figures/{f}", Path(f).stem) for f in REPORT_FIGURES],
        metrics=f"{OUT}/metrics.json",  # what `dvc metrics` and `dvc exp show` compare
        curves=report_curves(),  # what `dvc plots` draws
    params:
        **command("report"),
        manifest=json.dumps(report_manifest()),  # the inputs by role, one argument
        figure_dir=f"{OUT}/figures",
        curves_dir=f"{OUT}/curves",
    resources:
        **job_resources("write_report"),
    log:
        f"{LOGS}/report.log",
    shell:
        CALL + " --manifest {params.manifest:q} --out {output.report} --figure-dir {params.figure_dir}"
        " --metrics-out {output.metrics} --curves-dir {params.curves_dir}"


# The CTF setting's report (`snakemake ctf_setting`): its runs with the same context and controls.
if has_ctf_setting():
    SETTING_MANIFEST = report_manifest(SETTING, setting_params())

    use rule write_report as write_setting_report with:
        input:
            manifest_files(SETTING_MANIFEST),
        output:
            report=f"{OUT}/{SETTING}report.md",
            figures=[report_file(f"{OUT}/{SETTING}figures/{f}", Path(f).stem, "ctf setting") for f in REPORT_FIGURES],
            metrics=f"{OUT}/{SETTING}metrics.json",
            curves=report_curves(SETTING, setting_params()),
        params:
            **command("report", u=SETTING),
            manifest=json.dumps(SETTING_MANIFEST),
            figure_dir=f"{OUT}/{SETTING}figures",
            curves_dir=f"{OUT}/{SETTING}curves",
        log:
            f"{LOGS}/{SETTING}report.log",

    rule ctf_setting:  # the target, not part of `all` (docs/ctf.md)
        input:
            setting_targets(),
