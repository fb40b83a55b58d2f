# CTF (coarse-to-fine token prediction, docs/ctf.md) on the same tokens as the plain generator: the coarse map
# (k-means over the final tokenizer's codebook), one stage-2 model serving every stage 1, and the redundancy
# measurement. Each stage 1 is a generator run "ctf-<scale>" (generator.smk), sampled and evaluated beside
# the plain run of that scale.


if uses_ctf():

    rule ctf_clusters:
        input:
            tokenizer=clustered_tokenizer,
            train=tokens_dir("train"),
        output:
            f"{U}ctf/coarse_map.json",
        params:
            **command("ctf-clusters"),
        threads: torch_threads("ctf_clusters")
        priority: 10  # CTF's stage 1, one of the two longest jobs, waits for the map: make it before the others
        resources:
            **job_resources("ctf_clusters"),
        log:
            f"{LOGS}/{{u}}ctf_clusters.log",
        benchmark:
            f"{U}benchmarks/ctf_clusters.tsv"
        shell:
            CALL + " --tokenizer {input.tokenizer} --train-tokens {input.train} --out {output}"


    rule train_ctf_stage2:
        """Fine labels from the class and the ground-truth coarse map, in one bidirectional pass."""
        input:
            train=tokens_dir("train"),
            val=tokens_dir("val"),
            coarse_map=coarse_map,
        output:
            **trained(f"{U}ctf/stage2/"),
        params:
            **command("train-generator", ddp=True),  # scale None: ctf.stage2's shape and schedule
            work=lambda w: f"{OUT}/{w.u}work/ctf_stage2",
        threads: torch_threads("train_ctf_stage2")
        priority: 5  # one of the long jobs: started with the generators, so short jobs fill in around it at the end
        resources:
            **job_resources("train_ctf_stage2"),
        log:
            f"{LOGS}/{{u}}train_ctf_stage2.log",
        benchmark:
            f"{U}benchmarks/train_ctf_stage2.tsv"
        shell:
            CALL + " --ctf-stage 2 --coarse-map {input.coarse_map} --train-tokens {input.train}"
            " --val-tokens {input.val} --work-dir {params.work} --out {output.ckpt} --log-out {output.log}"
            " --curve-out {output.curve}"


if uses_ctf() and uses_classifier():  # rFID with the domain classifier, as eval_tokenizer

    rule ctf_redundancy:
        """The paper's Fig. 1b as numbers: every held-out token swapped within its cluster, or anywhere."""
        input:
            tokenizer=final_tokenizer,
            coarse_map=f"{U}ctf/coarse_map.json",
            **data_files("val", "info"),
            classifier=f"{OUT}/classifier/model.pt",
        output:
            f"{U}ctf/redundancy.json",
        params:
            **command("ctf-redundancy"),
        threads: torch_threads("ctf_redundancy")
        resources:
            **job_resources("ctf_redundancy"),
        log:
            f"{LOGS}/{{u}}ctf_redundancy.log",
        benchmark:
            f"{U}benchmarks/ctf_redundancy.tsv"
        shell:
            CALL + " --tokenizer {input.tokenizer} --coarse-map {input.coarse_map} --val {input.val}"
            " --dataset {input.info} --classifier {input.classifier} --out {output}"
