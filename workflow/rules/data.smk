# Data: generate the embedded dataset (embedded source only), then scan any ImageFolder tree into
# manifests of the original images. Crops are load-time transforms of each consumer (docs/data.md).


if P["data"]["source"] == "embedded":

    rule make_dataset:
        output:
            directory(f"{OUT}/data/images"),
        params:
            data=P["data"],
        resources:
            **job_resources("make_dataset"),
        log:
            f"{LOGS}/make_dataset.log",
        benchmark:
            f"{OUT}/benchmarks/make_dataset.tsv"
        shell:
            "alitok make-dataset {PARAMS} --mlflow-rule {rule} --mlflow-wildcards '{wildcards}' --out {output} --log {log}"


rule prepare_data:
    input:
        root=dataset_root(),
    output:
        train=f"{OUT}/data/train.csv",
        val=f"{OUT}/data/val.csv",
        info=f"{OUT}/data/dataset.json",
        report=f"{OUT}/data/report.json",
        preview=f"{OUT}/data/preview.png",
    params:
        data=P["data"],
        out_dir=f"{OUT}/data",
    threads: P["data"]["workers"]
    resources:
        **job_resources("prepare_data"),
    log:
        f"{LOGS}/prepare_data.log",
    benchmark:
        f"{OUT}/benchmarks/prepare_data.tsv"
    shell:
        "alitok prepare-data {PARAMS} --mlflow-rule {rule} --mlflow-wildcards '{wildcards}' --root {input.root} --out-dir {params.out_dir} --log {log}"
