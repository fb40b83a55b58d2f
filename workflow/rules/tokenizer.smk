# The AliTok tokenizer: stage 1 (causal decoder), stage 2 (bidirectional decoder, frozen encoder and
# codebook), each one rule running its phases from params; in-progress checkpoints live in work/, outside
# the declared outputs, so a killed job resumes instead of restarting. docs/tokenizer.md has the recipe.


rule train_tokenizer_stage1:
    input:
        unpack(perceptual_net_input),
        **data_files("train", "info"),
    output:
        **trained(f"{U}tokenizer/stage1"),
    params:
        **command("train-tokenizer", ddp=True, stage=1),
        stage=1,
        init="",
        phases="",
        perceptual=perceptual_net_arg,
        work=lambda w: f"{OUT}/{w.u}work/tokenizer_stage1",
    threads: torch_threads("train_tokenizer_stage1")
    priority: 10  # the critical path: first when cores free up
    resources:
        **job_resources("train_tokenizer_stage1"),
    log:
        f"{LOGS}/{{u}}train_tokenizer_stage1.log",
    benchmark:
        f"{U}benchmarks/train_tokenizer_stage1.tsv"
    shell:
        CALL + " --stage {params.stage} {params.phases} {params.init} --train {input.train} --dataset {input.info}"
        " {params.perceptual} --work-dir {params.work} --out {output.ckpt} --log-out {output.log}"
        " --curve-out {output.curve}"


use rule train_tokenizer_stage1 as train_tokenizer_stage2 with:
    input:
        unpack(perceptual_net_input),
        **data_files("train", "info"),
        stage1=f"{U}tokenizer/stage1.pt",
    output:
        **trained(f"{U}tokenizer/stage2"),
    params:
        **command("train-tokenizer", ddp=True, stage=2),
        stage=2,
        init=lambda wildcards, input: f"--init {input.stage1}",
        work=lambda w: f"{OUT}/{w.u}work/tokenizer_stage2",
    threads: torch_threads("train_tokenizer_stage2")
    priority: 10  # the tokens are extracted with stage 2's checkpoint
    resources:
        **job_resources("train_tokenizer_stage2"),
    log:
        f"{LOGS}/{{u}}train_tokenizer_stage2.log",
    benchmark:
        f"{U}benchmarks/train_tokenizer_stage2.tsv"


# The control stage 2 must beat: the stage-1 model trained on with stage 2's phase table.
use rule train_tokenizer_stage2 as train_tokenizer_stage1_continued with:
    output:
        **trained(f"{U}tokenizer/stage1_continued"),
    params:
        **command("train-tokenizer", ddp=True, stage=1, phases_from=2),
        stage=1,
        phases="--phases-from 2",
        work=lambda w: f"{OUT}/{w.u}work/tokenizer_stage1_continued",
    threads: torch_threads("train_tokenizer_stage1_continued")
    priority: 0
    resources:
        **job_resources("train_tokenizer_stage1_continued"),
    log:
        f"{LOGS}/{{u}}train_tokenizer_stage1_continued.log",
    benchmark:
        f"{U}benchmarks/train_tokenizer_stage1_continued.tsv"


rule eval_tokenizer:
    input:
        ckpt=f"{U}tokenizer/{{variant}}.pt",
        **data_files("val", "info"),
        classifier=f"{OUT}/classifier/model.pt",
    output:
        metrics=f"{U}tokenizer/{{variant}}_metrics.json",
        grid=report_file(
            f"{U}tokenizer/{{variant}}_recon.png", "tokenizer_recon", "tokenizer", labels={"variant": "{u}{variant}"}
        ),
    wildcard_constraints:
        variant="stage1|stage2|stage1_continued",
    params:
        **command("eval-tokenizer"),
    threads: torch_threads("eval_tokenizer")
    resources:
        **job_resources("eval_tokenizer"),
    log:
        f"{LOGS}/{{u}}eval_tokenizer_{{variant}}.log",
    shell:
        CALL + " --tokenizer {input.ckpt} --val {input.val} --dataset {input.info} --classifier {input.classifier}"
        " --out-metrics {output.metrics} --out-grid {output.grid}"


rule compare_tokenizer_stages:
    input:
        stage1=f"{OUT}/tokenizer/stage1_metrics.json",
        stage2=f"{OUT}/tokenizer/stage2_metrics.json",
        control=f"{OUT}/tokenizer/stage1_continued_metrics.json",
    output:
        f"{OUT}/tokenizer/stage_comparison.md",
    params:
        **command("compare-tokenizer-stages"),
    resources:
        **job_resources("compare_tokenizer_stages"),
    log:
        f"{LOGS}/compare_tokenizer_stages.log",
    shell:
        CALL + " --stage1 {input.stage1} --stage2 {input.stage2} --control {input.control} --out {output}"
