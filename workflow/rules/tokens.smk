# Token extraction: the final (stage-2) tokenizer encodes each split once into uint16 shards that the AR
# training reads memory-mapped. Finished shards wait in work/, outside the outputs, so a killed job resumes.


rule extract_tokens:
    input:
        tokenizer=tokens_tokenizer,
        manifest=f"{OUT}/data/{{split}}.csv",
        info=f"{OUT}/data/dataset.json",
    output:
        directory(f"{U}tokens/{{split}}"),
    wildcard_constraints:
        split="train|val",
    params:
        **command("extract-tokens", ddp=True),
        work=lambda w: f"{OUT}/{w.u}work/tokens_{w.split}",
    threads: torch_threads("extract_tokens")
    priority: 10  # the critical path: the generators wait for the tokens
    resources:
        **job_resources("extract_tokens"),
    log:
        f"{LOGS}/{{u}}extract_tokens_{{split}}.log",
    benchmark:
        f"{U}benchmarks/extract_tokens_{{split}}.tsv"
    shell:
        CALL + " --tokenizer {input.tokenizer} --split {wildcards.split} --manifest {input.manifest}"
        " --dataset {input.info} --work-dir {params.work} --out-dir {output}"
