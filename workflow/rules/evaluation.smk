# Evaluation: FID / IS / precision-recall (torch-fidelity features, one pass per set) and class-consistency of
# every generator run and control, plus the real held-out images for context (the FID floor and the
# classifier's accuracy, the ceiling). Reference statistics are cached in evaluation/cache/, keyed by the
# reference's content and the extractor weights' hash.

from alitok.evaluation.report import FIGURES as REPORT_FIGURES
from alitok.evaluation.summary import curve_names

EVAL = P["evaluation"]


def report_file(path):
    return report(path, category="results")


def extractor_weights():
    # the embedded data's extractor is the pipeline's own classifier; Inception weights come from a local file
    if EVAL["extractor"] == "domain_classifier":
        return f"{OUT}/classifier/model.pt"
    return local_file(EVAL["extractor_weights"], "evaluation.extractor_weights",
                      "torch-fidelity's Inception-v3 weights (weights-inception-2015-12-05-6726825d.pth)")


def reference_inputs(wildcards=None):
    ref = EVAL["reference"]
    if ref["kind"] == "split":
        return {"reference": f"{OUT}/data/{ref['split']}.csv"}
    return {"reference": local_file(ref["path"], "evaluation.reference.path",
                                    "the ADM reference batch (e.g. VIRTUAL_imagenet256_labeled.npz)")}


def dataset_info(wildcards):
    # class count for chance, and split references; the released-weights profile reads no dataset
    return {"info": f"{OUT}/data/dataset.json"} if uses_classifier() or EVAL["reference"]["kind"] == "split" else {}


def reference_arg(input):
    return f"--reference-manifest {input.reference}" if EVAL["reference"]["kind"] == "split" else ""


rule evaluate_generator:
    input:
        unpack(reference_inputs),
        unpack(dataset_info),
        unpack(ctf_inputs),  # CTF runs: stage 2 and the map, to time both stages
        samples=f"{OUT}/generator/{{run}}/samples.npz",
        generator=f"{OUT}/generator/{{run}}/model.pt",
        tokenizer=f"{OUT}/tokenizer/stage2.pt",
        weights=extractor_weights(),
    output:
        f"{OUT}/evaluation/{{run}}.json",
    params:
        evaluation=EVAL,
        scale=run_scale,
        control=run_control_arg,
        reference=lambda wildcards, input: reference_arg(input),
        dataset=lambda wildcards, input: f"--dataset {input.info}" if "info" in input.keys() else "",
        ctf=lambda wildcards, input: ctf_args(input),
        cache=f"{OUT}/evaluation/cache",
    threads: torch_threads("evaluate_generator")
    resources:
        **job_resources("evaluate_generator"),
    log:
        f"{LOGS}/evaluate_generator_{{run}}.log",
    benchmark:
        f"{OUT}/benchmarks/evaluate_generator_{{run}}.tsv"
    shell:
        "alitok evaluate {PARAMS} --mlflow-rule {rule} --mlflow-wildcards '{wildcards}' --samples {input.samples} --scale {params.scale} {params.control}"
        " --generator {input.generator} --tokenizer {input.tokenizer} {params.ctf} --extractor-weights {input.weights}"
        " {params.dataset} {params.reference} --cache-dir {params.cache} --out {output} --log {log}"


rule evaluate_real:
    """Real held-out images through the same evaluation: the FID floor and the class-consistency ceiling."""
    input:
        unpack(reference_inputs),
        split=f"{OUT}/data/val.csv",
        weights=extractor_weights(),
        info=f"{OUT}/data/dataset.json",
    output:
        f"{OUT}/evaluation/real_val.json",
    params:
        evaluation=EVAL,
        reference=lambda wildcards, input: reference_arg(input),
        cache=f"{OUT}/evaluation/cache",
    threads: torch_threads("evaluate_real")
    resources:
        **job_resources("evaluate_real"),
    log:
        f"{LOGS}/evaluate_real.log",
    shell:
        "alitok evaluate {PARAMS} --mlflow-rule {rule} --mlflow-wildcards '{wildcards}' --real-split {input.split} --extractor-weights {input.weights}"
        " --dataset {input.info} {params.reference} --cache-dir {params.cache} --out {output} --log {log}"


def report_inputs(wildcards):
    runs = generator_runs()
    inputs = {"evaluations": [f"{OUT}/evaluation/{r}.json" for r in runs],
              "logs": [] if "release" in P else [f"{OUT}/generator/{r}/log.jsonl" for r in runs],
              "generators": [f"{OUT}/generator/{r}/model.pt" for r in runs],
              "paper": "results/paper/published.csv"}
    if uses_classifier():  # the floor and ceiling of the embedded data's numbers
        inputs["real"] = f"{OUT}/evaluation/real_val.json"
    if uses_classifier():
        inputs["classifier"] = f"{OUT}/classifier/metrics.json"
        if P["tokenizer"]["training"]["compare_stage1_continued"]:
            inputs["comparison"] = f"{OUT}/tokenizer/stage_comparison.md"
        inputs["tokenizer"] = [f"{OUT}/tokenizer/{v}_metrics.json" for v in reported_tokenizer_stages()]
        inputs["tokenizer_logs"] = [f"{OUT}/tokenizer/{v}_log.jsonl" for v in reported_tokenizer_stages()]
    if uses_ctf():
        inputs |= {"ctf_map": f"{CTF}/coarse_map.json", "ctf_stage2": f"{CTF}/stage2/model.pt",
                   "ctf_stage2_log": f"{CTF}/stage2/log.jsonl"}
        if uses_classifier():
            inputs["ctf_redundancy"] = f"{CTF}/redundancy.json"
    return inputs


def reported_tokenizer_stages():
    """The tokenizer stages the report covers (embedded data only: their metrics use the domain classifier)."""
    if not uses_classifier():
        return []
    continued = ["stage1_continued"] if P["tokenizer"]["training"]["compare_stage1_continued"] else []
    return ["stage1", *continued, "stage2"]


def report_curves():
    if "release" in P:  # imported weights come without training logs
        return []
    names = curve_names(generator_runs(), reported_tokenizer_stages(), ["ctf_stage2"] if uses_ctf() else [])
    return [f"{OUT}/curves/{kind}/{name}.json" for kind in names for name in names[kind]]


def report_args(input):
    keys = ("classifier", "comparison", "real", "ctf_map", "ctf_stage2", "ctf_stage2_log", "ctf_redundancy")
    args = [f"--{k.replace('_', '-')} {input[k]}" for k in keys if k in input.keys()]
    if "tokenizer" in input.keys():
        args.append("--tokenizer-metrics " + " ".join(input.tokenizer))
        args.append("--tokenizer-logs " + " ".join(input.tokenizer_logs))
    return " ".join(args)


rule write_report:
    """Our numbers with their context, beside the papers'; `snakemake --report` embeds the same figures."""
    input:
        unpack(report_inputs),
    output:
        report=f"{OUT}/report.md",
        figures=[report_file(f"{OUT}/figures/{f}") for f in REPORT_FIGURES],
        metrics=f"{OUT}/metrics.json",  # what `dvc metrics` and `dvc exp show` compare
        curves=report_curves(),  # what `dvc plots` draws
    params:
        optional=lambda wildcards, input: report_args(input),
        logs=lambda wildcards, input: f"--generator-logs {' '.join(input.logs)}" if input.logs else "",
        figure_dir=f"{OUT}/figures",
        curves_dir=f"{OUT}/curves",
    resources:
        **job_resources("write_report"),
    log:
        f"{LOGS}/report.log",
    shell:
        "alitok report {PARAMS} --mlflow-rule {rule} --mlflow-wildcards '{wildcards}' --evaluations {input.evaluations} --paper {input.paper}"
        " {params.logs} --generators {input.generators} {params.optional}"
        " --out {output.report} --figure-dir {params.figure_dir} --metrics-out {output.metrics} --curves-dir {params.curves_dir}"
        " --log {log}"
