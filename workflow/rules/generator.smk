# The AR generator: one training run per scale (params generator.scales), on the extracted tokens, plus the
# evaluation's controls (params evaluation.controls) and CTF's stage 1 (params ctf.run). Run names
# (alitok.generator.runs.parse_run): "S" is scale S; "S-untrained" and "S-shuffled_labels" are scale S untrained
# and trained on permuted labels; "ctf-S" is CTF's stage 1 at S's shape (ctf.smk has its map and stage 2);
# "S-at_ctf" is S's trained model sampled at CTF's protocol (params ctf.matched_plain), never trained itself.
# In-progress checkpoints live in work/, outside the declared outputs, so a killed job resumes.

from alitok.generator.runs import AT_CTF, CONTROLS


def train_args(wildcards, input):
    """--scale, and --control or CTF's stage 1 with its map, as the run's name says."""
    ctf = f" --ctf-stage 1 --coarse-map {input.coarse_map}" if is_ctf_run(wildcards) else ""
    return f"--scale {run_scale(wildcards)} {run_control_arg(wildcards)}{ctf}"


SCALES = "|".join(P["generator"]["scales"])

wildcard_constraints:
    run=f"(({SCALES})(-({'|'.join(CONTROLS)}|{AT_CTF}))?|ctf-({SCALES}))",


if not imports_generators(P):  # released weights are imported instead (release.smk)

    rule train_generator:
        input:
            train=tokens_dir("train"),
            val=tokens_dir("val"),
            coarse_map=lambda wildcards: coarse_map(wildcards) if is_ctf_run(wildcards) else [],  # CTF's stage 1
        output:
            **trained(f"{U}generator/{{run}}/"),
        params:
            **command("train-generator", ddp=True, scale=run_scale, control=run_control),  # sampling not read
            args=train_args,
            work=lambda w: f"{OUT}/{w.u}work/generator_{w.run}",
        threads: torch_threads("train_generator")
        # the longest jobs start first, short ones fill the other core around them; a control is short (its labels
        # carry nothing, or it does not train), so a free core takes S or CTF's stage 1 before it
        priority: lambda wildcards: 4 if run_control(wildcards) else 5
        resources:
            **job_resources("train_generator"),
        log:
            f"{LOGS}/{{u}}train_generator_{{run}}.log",
        benchmark:
            f"{U}benchmarks/train_generator_{{run}}.tsv"
        shell:
            CALL + " {params.args} --train-tokens {input.train} --val-tokens {input.val} --work-dir {params.work}"
            " --out {output.ckpt} --log-out {output.log} --curve-out {output.curve}"


rule sample_generator:
    input:
        unpack(ctf_inputs),
        generator=run_model,
        tokenizer=final_tokenizer,
    output:
        archive=f"{U}generator/{{run}}/samples.npz",
        grid=report_file(
            f"{U}generator/{{run}}/samples_grid.png", "samples_grid", "samples", labels={"run": "{u}{run}"}
        ),
    params:
        **command("sample", ddp=True, scale=run_scale, ctf_stage2=is_ctf_run, protocol=run_protocol),
        scale=run_scale,
        ctf=lambda wildcards, input: f"{ctf_args(wildcards, input)} {run_protocol_arg(wildcards)}",
        work=lambda wildcards: f"{OUT}/{wildcards.u}work/samples_{wildcards.run}",
    threads: torch_threads("sample_generator")
    resources:
        **job_resources("sample_generator"),
    log:
        f"{LOGS}/{{u}}sample_generator_{{run}}.log",
    benchmark:
        f"{U}benchmarks/sample_generator_{{run}}.tsv"
    shell:
        CALL + " --scale {params.scale} --generator {input.generator} --tokenizer {input.tokenizer} {params.ctf}"
        " --work-dir {params.work} --out-archive {output.archive} --out-grid {output.grid}"
