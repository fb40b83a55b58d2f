# CTF (coarse-to-fine token prediction, docs/ctf.md) on the same tokens as the plain generator: the coarse map
# (k-means over the final tokenizer's codebook), one stage-2 model serving every stage 1, and the redundancy
# measurement. Each stage 1 is a generator run "ctf-<scale>" (generator.smk), sampled and evaluated beside
# the plain run of that scale.

from alitok.generator.runs import parse_run

CTF = f"{OUT}/ctf"


def uses_ctf():
    return bool(P.get("ctf", {}).get("run")) and "release" not in P


def ctf_inputs(wildcards):
    """A run's CTF files: the coarse map for stage 1, and stage 2 too for sampling and timing."""
    if parse_run(wildcards.run)[0] != "ctf":
        return {}
    return {"coarse_map": f"{CTF}/coarse_map.json", "stage2": f"{CTF}/stage2/model.pt"}


def ctf_args(input):
    return f"--ctf-stage2 {input.stage2} --coarse-map {input.coarse_map}" if "stage2" in input.keys() else ""


if uses_ctf():

    rule ctf_clusters:
        input:
            tokenizer=f"{OUT}/tokenizer/stage2.pt",
            train=f"{OUT}/tokens/train",
        output:
            f"{CTF}/coarse_map.json",
        params:
            clusters=P["ctf"]["clusters"],
        threads: torch_threads("ctf_clusters")
        priority: 10  # CTF's stage 1, one of the two longest jobs, waits for the map: make it before the others
        resources:
            **job_resources("ctf_clusters"),
        log:
            f"{LOGS}/ctf_clusters.log",
        benchmark:
            f"{OUT}/benchmarks/ctf_clusters.tsv"
        shell:
            "alitok ctf-clusters {PARAMS} --mlflow-rule {rule} --mlflow-wildcards '{wildcards}' --tokenizer {input.tokenizer}"
            " --train-tokens {input.train} --out {output} --log {log}"


    rule train_ctf_stage2:
        """Fine labels from the class and the ground-truth coarse map, in one bidirectional pass."""
        input:
            train=f"{OUT}/tokens/train",
            val=f"{OUT}/tokens/val",
            coarse_map=f"{CTF}/coarse_map.json",
        output:
            ckpt=f"{CTF}/stage2/model.pt",
            log=f"{CTF}/stage2/log.jsonl",
            curve=f"{CTF}/stage2/curve.png",
        params:
            alitok=alitok_launcher,
            generator=lambda wildcards: training_section(P, None),  # ctf.stage2's shape and schedule
            work=f"{OUT}/work/ctf_stage2",
        threads: torch_threads("train_ctf_stage2")
        priority: 5  # one of the long jobs: started with the generators, so short jobs fill in around it at the end
        resources:
            **job_resources("train_ctf_stage2"),
        log:
            f"{LOGS}/train_ctf_stage2.log",
        benchmark:
            f"{OUT}/benchmarks/train_ctf_stage2.tsv"
        shell:
            "{params.alitok} train-generator {PARAMS} --mlflow-rule {rule} --mlflow-wildcards '{wildcards}' --ctf-stage 2 --coarse-map {input.coarse_map}"
            " --train-tokens {input.train} --val-tokens {input.val} --work-dir {params.work} --out {output.ckpt}"
            " --log-out {output.log} --curve-out {output.curve} --log {log}"


if uses_ctf() and uses_classifier():  # rFID with the domain classifier, as eval_tokenizer

    rule ctf_redundancy:
        """The paper's Fig. 1b as numbers: every held-out token swapped within its cluster, or anywhere."""
        input:
            tokenizer=f"{OUT}/tokenizer/stage2.pt",
            coarse_map=f"{CTF}/coarse_map.json",
            val=f"{OUT}/data/val.csv",
            info=f"{OUT}/data/dataset.json",
            classifier=f"{OUT}/classifier/model.pt",
        output:
            f"{CTF}/redundancy.json",
        params:
            seed=P["ctf"]["redundancy_seed"],
        threads: torch_threads("ctf_redundancy")
        resources:
            **job_resources("ctf_redundancy"),
        log:
            f"{LOGS}/ctf_redundancy.log",
        benchmark:
            f"{OUT}/benchmarks/ctf_redundancy.tsv"
        shell:
            "alitok ctf-redundancy {PARAMS} --mlflow-rule {rule} --mlflow-wildcards '{wildcards}' --tokenizer {input.tokenizer}"
            " --coarse-map {input.coarse_map} --val {input.val} --dataset {input.info} --classifier {input.classifier}"
            " --out {output} --log {log}"
