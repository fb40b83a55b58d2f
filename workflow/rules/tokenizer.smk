# The AliTok tokenizer: stage 1 (causal decoder), stage 2 (bidirectional decoder, frozen encoder and
# codebook), each one rule running its phases from params; in-progress checkpoints live in work/, outside
# the declared outputs, so a killed job resumes instead of restarting. docs/tokenizer.md has the recipe.

TOK = P["tokenizer"]
TOK_COMMON = {k: TOK[k] for k in ["model", "quantizer", "loss", "perceptual", "discriminator", "optimizer", "training"]}


def perceptual_net_input(wildcards):
    uses_domain = "domain" in (TOK["perceptual"]["logits_net"], TOK["perceptual"]["lpips_net"])
    return {"perceptual": f"{OUT}/perceptual_net/model.pt"} if uses_domain else {}


def perceptual_net_arg(input):
    return f"--perceptual-net {input.perceptual}" if "perceptual" in input.keys() else ""


rule train_perceptual_net:
    input:
        train=f"{OUT}/data/train.csv",
        val=f"{OUT}/data/val.csv",
        info=f"{OUT}/data/dataset.json",
    output:
        model=f"{OUT}/perceptual_net/model.pt",
        metrics=f"{OUT}/perceptual_net/metrics.json",
        curve=f"{OUT}/perceptual_net/curve.png",
        confusion=f"{OUT}/perceptual_net/confusion.png",
    params:
        section=P.get("perceptual_net"),
        out_dir=f"{OUT}/perceptual_net",
    threads: torch_threads("train_perceptual_net")
    priority: 10  # the critical path: first when cores free up
    resources:
        **job_resources("train_perceptual_net"),
    log:
        f"{LOGS}/train_perceptual_net.log",
    benchmark:
        f"{OUT}/benchmarks/train_perceptual_net.tsv"
    shell:
        "alitok train-classifier {PARAMS} --mlflow-rule {rule} --mlflow-wildcards '{wildcards}' --section perceptual_net --train {input.train} --val {input.val}"
        " --dataset {input.info} --out-dir {params.out_dir} --log {log}"


rule train_tokenizer_stage1:
    input:
        unpack(perceptual_net_input),
        train=f"{OUT}/data/train.csv",
        info=f"{OUT}/data/dataset.json",
    output:
        ckpt=f"{OUT}/tokenizer/stage1.pt",
        log=f"{OUT}/tokenizer/stage1_log.jsonl",
        curve=f"{OUT}/tokenizer/stage1_curve.png",
    params:
        alitok=alitok_launcher,  # torchrun with one process per GPU of the job
        tokenizer={**TOK_COMMON, "stage1": TOK["stage1"]},
        work=f"{OUT}/work/tokenizer_stage1",
        perceptual=lambda wildcards, input: perceptual_net_arg(input),
    threads: torch_threads("train_tokenizer_stage1")
    priority: 10  # the critical path: first when cores free up
    resources:
        **job_resources("train_tokenizer_stage1"),
    log:
        f"{LOGS}/train_tokenizer_stage1.log",
    benchmark:
        f"{OUT}/benchmarks/train_tokenizer_stage1.tsv"
    shell:
        "{params.alitok} train-tokenizer {PARAMS} --mlflow-rule {rule} --mlflow-wildcards '{wildcards}' --stage 1 --train {input.train} --dataset {input.info} {params.perceptual}"
        " --work-dir {params.work} --out {output.ckpt} --log-out {output.log} --curve-out {output.curve} --log {log}"


rule train_tokenizer_stage2:
    input:
        unpack(perceptual_net_input),
        train=f"{OUT}/data/train.csv",
        info=f"{OUT}/data/dataset.json",
        stage1=f"{OUT}/tokenizer/stage1.pt",
    output:
        ckpt=f"{OUT}/tokenizer/stage2.pt",
        log=f"{OUT}/tokenizer/stage2_log.jsonl",
        curve=f"{OUT}/tokenizer/stage2_curve.png",
    params:
        alitok=alitok_launcher,  # torchrun with one process per GPU of the job
        tokenizer={**TOK_COMMON, "stage2": TOK["stage2"], "stage2_init": TOK["stage2_init"]},
        work=f"{OUT}/work/tokenizer_stage2",
        perceptual=lambda wildcards, input: perceptual_net_arg(input),
    threads: torch_threads("train_tokenizer_stage2")
    priority: 10  # the tokens are extracted with stage 2's checkpoint
    resources:
        **job_resources("train_tokenizer_stage2"),
    log:
        f"{LOGS}/train_tokenizer_stage2.log",
    benchmark:
        f"{OUT}/benchmarks/train_tokenizer_stage2.tsv"
    shell:
        "{params.alitok} train-tokenizer {PARAMS} --mlflow-rule {rule} --mlflow-wildcards '{wildcards}' --stage 2 --init {input.stage1} --train {input.train} --dataset {input.info}"
        " {params.perceptual} --work-dir {params.work} --out {output.ckpt} --log-out {output.log} --curve-out {output.curve} --log {log}"


rule train_tokenizer_stage1_continued:
    """The control stage 2 must beat: the stage-1 model trained on with stage 2's phase table."""
    input:
        unpack(perceptual_net_input),
        train=f"{OUT}/data/train.csv",
        info=f"{OUT}/data/dataset.json",
        stage1=f"{OUT}/tokenizer/stage1.pt",
    output:
        ckpt=f"{OUT}/tokenizer/stage1_continued.pt",
        log=f"{OUT}/tokenizer/stage1_continued_log.jsonl",
        curve=f"{OUT}/tokenizer/stage1_continued_curve.png",
    params:
        alitok=alitok_launcher,  # torchrun with one process per GPU of the job
        tokenizer={**TOK_COMMON, "stage2": TOK["stage2"]},
        work=f"{OUT}/work/tokenizer_stage1_continued",
        perceptual=lambda wildcards, input: perceptual_net_arg(input),
    threads: torch_threads("train_tokenizer_stage1_continued")
    resources:
        **job_resources("train_tokenizer_stage1_continued"),
    log:
        f"{LOGS}/train_tokenizer_stage1_continued.log",
    benchmark:
        f"{OUT}/benchmarks/train_tokenizer_stage1_continued.tsv"
    shell:
        "{params.alitok} train-tokenizer {PARAMS} --mlflow-rule {rule} --mlflow-wildcards '{wildcards}' --stage 1 --phases-from 2 --init {input.stage1} --train {input.train}"
        " --dataset {input.info} {params.perceptual} --work-dir {params.work} --out {output.ckpt}"
        " --log-out {output.log} --curve-out {output.curve} --log {log}"


rule eval_tokenizer:
    input:
        ckpt=f"{OUT}/tokenizer/{{variant}}.pt",
        val=f"{OUT}/data/val.csv",
        info=f"{OUT}/data/dataset.json",
        classifier=f"{OUT}/classifier/model.pt",
    output:
        metrics=f"{OUT}/tokenizer/{{variant}}_metrics.json",
        grid=f"{OUT}/tokenizer/{{variant}}_recon.png",
    wildcard_constraints:
        variant="stage1|stage2|stage1_continued",
    threads: torch_threads("eval_tokenizer")
    resources:
        **job_resources("eval_tokenizer"),
    log:
        f"{LOGS}/eval_tokenizer_{{variant}}.log",
    shell:
        "alitok eval-tokenizer {PARAMS} --mlflow-rule {rule} --mlflow-wildcards '{wildcards}' --tokenizer {input.ckpt} --val {input.val} --dataset {input.info}"
        " --classifier {input.classifier} --out-metrics {output.metrics} --out-grid {output.grid} --log {log}"


rule compare_tokenizer_stages:
    input:
        stage1=f"{OUT}/tokenizer/stage1_metrics.json",
        stage2=f"{OUT}/tokenizer/stage2_metrics.json",
        control=f"{OUT}/tokenizer/stage1_continued_metrics.json",
    output:
        f"{OUT}/tokenizer/stage_comparison.md",
    resources:
        **job_resources("compare_tokenizer_stages"),
    log:
        f"{LOGS}/compare_tokenizer_stages.log",
    shell:
        "alitok compare-tokenizer-stages {PARAMS} --mlflow-rule {rule} --mlflow-wildcards '{wildcards}' --stage1 {input.stage1} --stage2 {input.stage2}"
        " --control {input.control} --out {output} --log {log}"
