# The AR generator: one training run per scale (the wildcard; params generator.scales), on the extracted
# tokens. In-progress checkpoints live in work/, outside the declared outputs, so a killed job resumes.

from alitok.generator.config import training_section


rule train_generator:
    input:
        train=f"{OUT}/tokens/train",
        val=f"{OUT}/tokens/val",
    output:
        ckpt=f"{OUT}/generator/{{scale}}/model.pt",
        log=f"{OUT}/generator/{{scale}}/log.jsonl",
        curve=f"{OUT}/generator/{{scale}}/curve.png",
    params:
        generator=lambda wildcards: training_section(P, wildcards.scale),  # not sampling: resampling never retrains
        work=lambda wildcards: f"{OUT}/work/generator_{wildcards.scale}",
    log:
        f"{LOGS}/train_generator_{{scale}}.log",
    benchmark:
        f"{OUT}/benchmarks/train_generator_{{scale}}.tsv"
    shell:
        "alitok train-generator {PARAMS} --scale {wildcards.scale} --train-tokens {input.train} --val-tokens {input.val}"
        " --work-dir {params.work} --out {output.ckpt} --log-out {output.log} --curve-out {output.curve} --log {log}"


rule sample_generator:
    input:
        generator=f"{OUT}/generator/{{scale}}/model.pt",
        tokenizer=f"{OUT}/tokenizer/stage2.pt",
    output:
        archive=f"{OUT}/generator/{{scale}}/samples.npz",
        grid=f"{OUT}/generator/{{scale}}/samples_grid.png",
    params:
        sampling=P["generator"]["sampling"],
        scale=lambda wildcards: P["generator"]["scales"][wildcards.scale],
        work=lambda wildcards: f"{OUT}/work/samples_{wildcards.scale}",
    log:
        f"{LOGS}/sample_generator_{{scale}}.log",
    benchmark:
        f"{OUT}/benchmarks/sample_generator_{{scale}}.tsv"
    shell:
        "alitok sample {PARAMS} --scale {wildcards.scale} --generator {input.generator} --tokenizer {input.tokenizer}"
        " --work-dir {params.work} --out-archive {output.archive} --out-grid {output.grid} --log {log}"
