# The domain classifier: trained right after data prep, used later only by evaluation (FID/IS features
# and class-consistency of samples), never as a training loss. The smoke perceptual net is the same trainer on
# its own params section.


rule train_classifier:
    input:
        **data_files("train", "val", "info"),
    output:
        **classifier_files(f"{OUT}/classifier"),
    params:
        **command("train-classifier", section="classifier"),
        section="",  # the default, --section classifier
        out_dir=f"{OUT}/classifier",
    threads: torch_threads("train_classifier")
    resources:
        **job_resources("train_classifier"),
    log:
        f"{LOGS}/train_classifier.log",
    benchmark:
        f"{OUT}/benchmarks/train_classifier.tsv"
    shell:
        CALL + " {params.section} --train {input.train} --val {input.val} --dataset {input.info}"
        " --out-dir {params.out_dir}"


use rule train_classifier as train_perceptual_net with:
    output:
        **classifier_files(f"{OUT}/perceptual_net"),
    params:
        **command("train-classifier", section="perceptual_net"),
        section="--section perceptual_net",
        out_dir=f"{OUT}/perceptual_net",
    threads: torch_threads("train_perceptual_net")
    priority: 10  # the critical path: first when cores free up
    resources:
        **job_resources("train_perceptual_net"),
    log:
        f"{LOGS}/train_perceptual_net.log",
    benchmark:
        f"{OUT}/benchmarks/train_perceptual_net.tsv"
