# The domain classifier: trained right after data prep, used later only by evaluation (FID/IS features
# and class-consistency of samples), never as a training loss.


rule train_classifier:
    input:
        train=f"{OUT}/data/train.csv",
        val=f"{OUT}/data/val.csv",
        info=f"{OUT}/data/dataset.json",
    output:
        model=f"{OUT}/classifier/model.pt",
        metrics=f"{OUT}/classifier/metrics.json",
        curve=f"{OUT}/classifier/curve.png",
        confusion=f"{OUT}/classifier/confusion.png",
    params:
        classifier=P.get("classifier"),
        out_dir=f"{OUT}/classifier",
    threads: torch_threads("train_classifier")
    resources:
        **job_resources("train_classifier"),
    log:
        f"{LOGS}/train_classifier.log",
    benchmark:
        f"{OUT}/benchmarks/train_classifier.tsv"
    shell:
        "alitok train-classifier {PARAMS} --mlflow-rule {rule} --mlflow-wildcards '{wildcards}' --train {input.train} --val {input.val} --dataset {input.info}"
        " --out-dir {params.out_dir} --log {log}"
