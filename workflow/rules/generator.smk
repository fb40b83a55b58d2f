# The AR generator: one training run per scale (params generator.scales), on the extracted tokens, plus the
# evaluation's controls (params evaluation.controls): run "S-untrained" and "S-shuffled_labels" are scale S
# untrained and trained on permuted labels. In-progress checkpoints live in work/, outside the declared
# outputs, so a killed job resumes.

from alitok.generator.config import training_section

CONTROLS = ["untrained", "shuffled_labels"]


def run_scale(wildcards):
    return wildcards.run.split("-")[0]


def run_control_arg(wildcards):
    parts = wildcards.run.split("-")
    return f"--control {parts[1]}" if len(parts) > 1 else ""


def generator_runs():
    """Every generator the pipeline trains and samples: the scales to run, then their controls."""
    runs = list(P["generator"]["run"])
    return runs + [f"{scale}-{c}" for scale in runs for c in P["evaluation"]["controls"]]


wildcard_constraints:
    run="(" + "|".join(P["generator"]["scales"]) + ")(-(" + "|".join(CONTROLS) + "))?",


if "release" not in P:  # released weights are imported instead (release.smk)

    rule train_generator:
        input:
            train=f"{OUT}/tokens/train",
            val=f"{OUT}/tokens/val",
        output:
            ckpt=f"{OUT}/generator/{{run}}/model.pt",
            log=f"{OUT}/generator/{{run}}/log.jsonl",
            curve=f"{OUT}/generator/{{run}}/curve.png",
        params:
            alitok=alitok_launcher,  # torchrun with one process per GPU of the job
            generator=lambda wildcards: training_section(P, run_scale(wildcards)),  # not sampling: resampling never retrains
            control=run_control_arg,
            scale=run_scale,
            work=lambda wildcards: f"{OUT}/work/generator_{wildcards.run}",
        threads: TORCH_THREADS
        resources:
            **job_resources("train_generator"),
        log:
            f"{LOGS}/train_generator_{{run}}.log",
        benchmark:
            f"{OUT}/benchmarks/train_generator_{{run}}.tsv"
        shell:
            "{params.alitok} train-generator {PARAMS} --mlflow-rule {rule} --mlflow-wildcards '{wildcards}' --scale {params.scale} {params.control} --train-tokens {input.train} --val-tokens {input.val}"
            " --work-dir {params.work} --out {output.ckpt} --log-out {output.log} --curve-out {output.curve} --log {log}"


rule sample_generator:
    input:
        generator=f"{OUT}/generator/{{run}}/model.pt",
        tokenizer=f"{OUT}/tokenizer/stage2.pt",
    output:
        archive=f"{OUT}/generator/{{run}}/samples.npz",
        grid=f"{OUT}/generator/{{run}}/samples_grid.png",
    params:
        alitok=alitok_launcher,  # torchrun with one process per GPU of the job
        sampling=P["generator"]["sampling"],
        scale_params=lambda wildcards: P["generator"]["scales"][run_scale(wildcards)],
        scale=run_scale,
        work=lambda wildcards: f"{OUT}/work/samples_{wildcards.run}",
    threads: TORCH_THREADS
    resources:
        **job_resources("sample_generator"),
    log:
        f"{LOGS}/sample_generator_{{run}}.log",
    benchmark:
        f"{OUT}/benchmarks/sample_generator_{{run}}.tsv"
    shell:
        "{params.alitok} sample {PARAMS} --mlflow-rule {rule} --mlflow-wildcards '{wildcards}' --scale {params.scale} --generator {input.generator} --tokenizer {input.tokenizer}"
        " --work-dir {params.work} --out-archive {output.archive} --out-grid {output.grid} --log {log}"
