# Data: generate the embedded dataset (embedded source only), then scan any ImageFolder tree into
# manifests of the original images. Crops are load-time transforms of each consumer (docs/data.md).


if P["data"]["source"] == "embedded":

    rule make_dataset:
        output:
            directory(f"{OUT}/data/images"),
        params:
            **command("make-dataset"),
        resources:
            **job_resources("make_dataset"),
        log:
            f"{LOGS}/make_dataset.log",
        benchmark:
            f"{OUT}/benchmarks/make_dataset.tsv"
        shell:
            CALL + " --out {output}"


rule prepare_data:
    input:
        root=dataset_root(),
    output:
        **data_files("train", "val", "info"),
        report=f"{OUT}/data/report.json",
        preview=f"{OUT}/data/preview.png",
    params:
        **command("prepare-data"),
        out_dir=f"{OUT}/data",
    threads: P["data"]["workers"]
    resources:
        **job_resources("prepare_data"),
    log:
        f"{LOGS}/prepare_data.log",
    benchmark:
        f"{OUT}/benchmarks/prepare_data.tsv"
    shell:
        CALL + " --root {input.root} --out-dir {params.out_dir}"
