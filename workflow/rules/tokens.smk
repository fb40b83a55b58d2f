# Token extraction: the final (stage-2) tokenizer encodes each split once into uint16 shards that the AR
# training reads memory-mapped. Finished shards wait in work/, outside the outputs, so a killed job resumes.


rule extract_tokens:
    input:
        tokenizer=f"{OUT}/tokenizer/stage2.pt",
        manifest=f"{OUT}/data/{{split}}.csv",
        info=f"{OUT}/data/dataset.json",
    output:
        directory(f"{OUT}/tokens/{{split}}"),
    wildcard_constraints:
        split="train|val",
    params:
        alitok=alitok_launcher,  # torchrun with one process per GPU of the job
        tokens=P["tokens"],
        work=lambda wildcards: f"{OUT}/work/tokens_{wildcards.split}",
    threads: torch_threads("extract_tokens")
    priority: 10  # the critical path: the generators wait for the tokens
    resources:
        **job_resources("extract_tokens"),
    log:
        f"{LOGS}/extract_tokens_{{split}}.log",
    benchmark:
        f"{OUT}/benchmarks/extract_tokens_{{split}}.tsv"
    shell:
        "{params.alitok} extract-tokens {PARAMS} --mlflow-rule {rule} --mlflow-wildcards '{wildcards}' --tokenizer {input.tokenizer} --split {wildcards.split}"
        " --manifest {input.manifest} --dataset {input.info} --work-dir {params.work} --out-dir {output} --log {log}"

