# The AR generator: one training run per scale (params generator.scales), on the extracted tokens, plus the
# evaluation's controls (params evaluation.controls) and CTF's stage 1 (params ctf.run). Run names
# (alitok.generator.runs.parse_run): "S" is scale S; "S-untrained" and "S-shuffled_labels" are scale S untrained
# and trained on permuted labels; "ctf-S" is CTF's stage 1 at S's shape (ctf.smk has its map and stage 2).
# In-progress checkpoints live in work/, outside the declared outputs, so a killed job resumes.

from alitok.generator.runs import CONTROLS, generator_runs as runs_of, parse_run, training_section, training_steps


def generator_runs():
    return runs_of(P)


def run_scale(wildcards):
    return parse_run(wildcards.run)[1]


def run_control_arg(wildcards):
    control = parse_run(wildcards.run)[2]
    return f"--control {control}" if control else ""


def train_args(wildcards, input):
    """--scale, and --control or CTF's stage 1 with its map, as the run's name says."""
    kind, scale, _ = parse_run(wildcards.run)
    return f"--scale {scale} {run_control_arg(wildcards)}" + (f" --ctf-stage 1 --coarse-map {input.coarse_map}" if kind == "ctf" else "")


def sampling_params(wildcards):
    """What sampling reads (its rerun trigger): CTF runs also read ctf.sampling."""
    s = {"sampling": P["generator"]["sampling"], "scale": P["generator"]["scales"][run_scale(wildcards)]}
    return s | ({"ctf": P["ctf"]["sampling"]} if parse_run(wildcards.run)[0] == "ctf" else {})


SCALES = "|".join(P["generator"]["scales"])

wildcard_constraints:
    run=f"(({SCALES})(-({'|'.join(CONTROLS)}))?|ctf-({SCALES}))",


if "release" not in P:  # released weights are imported instead (release.smk)

    rule train_generator:
        input:
            train=f"{OUT}/tokens/train",
            val=f"{OUT}/tokens/val",
            coarse_map=lambda wildcards: ctf_inputs(wildcards).get("coarse_map", []),  # CTF's stage 1 only
        output:
            ckpt=f"{OUT}/generator/{{run}}/model.pt",
            log=f"{OUT}/generator/{{run}}/log.jsonl",
            curve=f"{OUT}/generator/{{run}}/curve.png",
        params:
            alitok=alitok_launcher,  # torchrun with one process per GPU of the job
            generator=lambda wildcards: training_section(P, run_scale(wildcards)),  # not sampling: resampling never retrains
            steps=lambda wildcards: training_steps(P, *parse_run(wildcards.run)[1:]),  # a control's own count
            args=lambda wildcards, input: train_args(wildcards, input),
            work=lambda wildcards: f"{OUT}/work/generator_{wildcards.run}",
        threads: torch_threads("train_generator")
        priority: 5  # the longest jobs start first; short ones fill the other core around them
        resources:
            **job_resources("train_generator"),
        log:
            f"{LOGS}/train_generator_{{run}}.log",
        benchmark:
            f"{OUT}/benchmarks/train_generator_{{run}}.tsv"
        shell:
            "{params.alitok} train-generator {PARAMS} --mlflow-rule {rule} --mlflow-wildcards '{wildcards}' {params.args} --train-tokens {input.train} --val-tokens {input.val}"
            " --work-dir {params.work} --out {output.ckpt} --log-out {output.log} --curve-out {output.curve} --log {log}"


rule sample_generator:
    input:
        unpack(ctf_inputs),
        generator=f"{OUT}/generator/{{run}}/model.pt",
        tokenizer=f"{OUT}/tokenizer/stage2.pt",
    output:
        archive=f"{OUT}/generator/{{run}}/samples.npz",
        grid=f"{OUT}/generator/{{run}}/samples_grid.png",
    params:
        alitok=alitok_launcher,  # torchrun with one process per GPU of the job
        sampling=sampling_params,
        scale=run_scale,
        ctf=lambda wildcards, input: ctf_args(input),
        work=lambda wildcards: f"{OUT}/work/samples_{wildcards.run}",
    threads: torch_threads("sample_generator")
    resources:
        **job_resources("sample_generator"),
    log:
        f"{LOGS}/sample_generator_{{run}}.log",
    benchmark:
        f"{OUT}/benchmarks/sample_generator_{{run}}.tsv"
    shell:
        "{params.alitok} sample {PARAMS} --mlflow-rule {rule} --mlflow-wildcards '{wildcards}' --scale {params.scale} --generator {input.generator} --tokenizer {input.tokenizer}"
        " {params.ctf} --work-dir {params.work} --out-archive {output.archive} --out-grid {output.grid} --log {log}"
