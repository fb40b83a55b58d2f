# The papers' ablations with seeds (docs/ablations.md), a target outside the default run:
#   snakemake --cores 2 --config profile=ablations -- ablations
# A unit (an AliTok row or a CTF sweep point) at a seed is an ordinary params profile, `<profile>/<unit>/seed<N>`
# (alitok.ablations.units.derive). The main rules train it: their outputs under {OUT}/ablation/seed<N>/<unit>/ keep
# the main layout (common.smk, `u`). Rows share what they share in the paper: E and F use D's tokenizer, F samples
# E's generator and decodes with the stage-2 decoder; CTF's points share stage 1 per K and stage 2 per (K, size),
# trained under the first such point's profile (`ctf_owner`). Only the scoring and the report are rules of their own.

import json

from alitok.evaluation.report_data import files as manifest_files

ABL = f"{OUT}/ablation"



if "ablations" in P and "release" not in P and uses_classifier() and uses_ctf():
    A, SCALE, SEEDS = ablation_units, ablation_units.SCALE, P["ablations"]["seeds"]
    CTF_MODELS = A.ctf_models(P)  # (K, stage-2 size) -> its points; the owner of each trains its stage 2:
    CTF_OWNED = {A.ctf_owner(P, k, size): (k, size) for k, size in CTF_MODELS}

    def row_files(row, seed):
        tok = A.tokenizer_of(P, row)
        return {"scores": f"{ABL}/seed{seed}/{row}/scores.json",
                "generator_log": unit_file(A.generator_of(P, row), seed, f"generator/{SCALE}/log.jsonl"),
                "tokenizer_metrics": ablation_decoder(row, seed).replace(".pt", "_metrics.json"),
                "tokens_val": unit_file(tok, seed, "tokens/val")}

    def ctf_files(k, size, seed):
        return {"scores": f"{ABL}/seed{seed}/{A.ctf_owner(P, k, size)}/ctf_scores.json",
                "stage1_log": unit_file(A.ctf_owner(P, k), seed, f"generator/ctf-{SCALE}/log.jsonl")}

    def ablation_manifest():
        """seed -> the files the report reads: per row, and per CTF (K, stage-2 size)."""
        return {str(seed): {"rows": {row: row_files(row, seed) for row in A.rows(P)},
                            "ctf": {f"K{k}-{size}": ctf_files(k, size, seed) for k, size in CTF_MODELS}}
                for seed in SEEDS}

    wildcard_constraints:
        seed=r"\d+",
        row="|".join(A.rows(P)),
        point="|".join(CTF_OWNED),

    rule ablation_score_row:
        input:
            weights=extractor_weights(),
            reference=f"{OUT}/data/train.csv",
            **data_files("info"),
            generator=lambda w: unit_file(A.generator_of(P, w.row), w.seed, f"generator/{SCALE}/model.pt"),
            tokenizer=lambda w: ablation_decoder(w.row, w.seed),
        output:
            scores=f"{ABL}/seed{{seed}}/{{row}}/scores.json",
            grids=directory(f"{ABL}/seed{{seed}}/{{row}}/grids"),
        params:
            **command("ablation-score", units=lambda w: [w.row], seed=lambda w: int(w.seed)),
            units=lambda w: w.row,
            ctf="",
            work=lambda w: f"{ABL}/work/seed{w.seed}/score_{w.row}",
            cache=f"{ABL}/evaluation_cache",
        threads: 1
        resources:
            **job_resources("evaluate_generator"),
        log:
            f"{LOGS}/ablation/seed{{seed}}/score_{{row}}.log",
        benchmark:
            f"{ABL}/benchmarks/seed{{seed}}/score_{{row}}.tsv"
        shell:
            CALL + " --seed {wildcards.seed} --units {params.units} --generator {input.generator} {params.ctf}"
            " --tokenizer {input.tokenizer} --extractor-weights {input.weights} --dataset {input.info}"
            " --reference-manifest {input.reference} --cache-dir {params.cache} --work-dir {params.work}"
            " --out {output.scores} --out-grids {output.grids}"

    use rule ablation_score_row as ablation_ctf_score with:  # every point of a stage 1 (K) and stage 2 (K, size)
        input:
            weights=extractor_weights(),
            reference=f"{OUT}/data/train.csv",
            **data_files("info"),
            generator=lambda w: unit_file(A.ctf_owner(P, CTF_OWNED[w.point][0]), w.seed, f"generator/ctf-{SCALE}/model.pt"),
            stage2=lambda w: unit_file(w.point, w.seed, "ctf/stage2/model.pt"),
            coarse_map=lambda w: unit_file(A.ctf_owner(P, CTF_OWNED[w.point][0]), w.seed, "ctf/coarse_map.json"),
            tokenizer=lambda w: ablation_decoder(w.point, w.seed),
        output:
            scores=f"{ABL}/seed{{seed}}/{{point}}/ctf_scores.json",
            grids=directory(f"{ABL}/seed{{seed}}/{{point}}/ctf_grids"),
        params:
            **command("ablation-score", units=lambda w: CTF_MODELS[CTF_OWNED[w.point]], seed=lambda w: int(w.seed)),
            units=lambda w: " ".join(CTF_MODELS[CTF_OWNED[w.point]]),
            ctf=lambda w, input: f"--ctf-stage2 {input.stage2} --coarse-map {input.coarse_map}",
            work=lambda w: f"{ABL}/work/seed{w.seed}/score_ctf_{w.point}",
        log:
            f"{LOGS}/ablation/seed{{seed}}/score_ctf_{{point}}.log",
        benchmark:
            f"{ABL}/benchmarks/seed{{seed}}/score_ctf_{{point}}.tsv"

    rule ablation_report:
        input:
            runs=lambda w: sorted(set(manifest_files(ablation_manifest()))),
            paper="results/paper/ablations.csv",
        output:
            report=f"{ABL}/report.md",
            metrics=f"{ABL}/metrics.json",
            tables=directory(f"{ABL}/tables"),
            figures=[
                report_file(f"{ABL}/figures/{f}.png", f"ablations_{f}", "ablations") for f in ("alitok", "ctf_table3")
            ],
        params:
            **command("ablation-report"),
            manifest=lambda w: json.dumps(ablation_manifest()),
        resources:
            **job_resources("write_report"),
        log:
            f"{LOGS}/ablation/report.log",
        shell:
            CALL + " --manifest {params.manifest:q} --paper {input.paper} --out {output.report}"
            " --figure-dir {ABL}/figures --out-tables {output.tables} --metrics-out {output.metrics}"

    rule ablations:  # the ablation target, not part of `all` (docs/ablations.md)
        input:
            f"{ABL}/report.md",
