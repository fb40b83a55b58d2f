# The papers' ablations with seeds (docs/ablations.md), a target outside the default run:
#   snakemake --cores 2 --config profile=ablations -- ablations
# A unit (an AliTok row or a CTF sweep point) at a seed is an ordinary params profile, `<profile>/<unit>/seed<N>`
# (alitok.ablations.units.derive), run by the pipeline's own commands; files sit under {OUT}/ablation as
# alitok.ablations.layout says. Rows share what they share in the paper: E and F use D's tokenizer, F samples
# E's generator and decodes with the stage-2 decoder; CTF's points share stage 1 per K and stage 2 per (K, size).

import functools

from alitok.ablations import layout, units as abl

ABL = f"{OUT}/ablation"
# Ablation jobs are many and small: one thread each lets two run side by side on a 2-core machine.
ABL_THREADS = 1


def abl_profile(unit, seed):
    return f"--params params.yaml --profile {PROFILE}/{unit}/seed{seed}"


@functools.cache
def unit_params(unit, seed):
    return alitok_config.load(config, f"{PROFILE}/{unit}/seed{seed}")


def abl_params(unit, seed, *sections):
    """What a unit's job reads (its rerun trigger)."""
    q = unit_params(unit, seed)
    return {s: q[s] for s in sections}


def at(path):
    return str(path)


if "ablations" in P and "release" not in P and uses_classifier():
    ROWS = list(abl.rows(P))
    CTF_ROW = P["ablations"]["ctf"]["tokens_of"]
    CTF_TOK, CTF_STAGE = abl.tokenizer_of(P, CTF_ROW), abl.decoder_stage(P, CTF_ROW)
    CTF_MODELS = abl.ctf_models(P)  # (K, stage-2 size) -> points
    SEEDS = P["ablations"]["seeds"]

    def ctf_unit(k, size=None):
        """A point with this K (and stage-2 size): the profile its models are trained under."""
        return next(pids[0] for (kk, s), pids in CTF_MODELS.items() if kk == int(k) and size in (None, s))

    wildcard_constraints:
        seed=r"\d+",
        tok="|".join(sorted({abl.tokenizer_of(P, r) for r in ROWS})),
        gen="|".join(sorted({abl.generator_of(P, r) for r in ROWS})),
        row="|".join(ROWS),
        K=r"\d+",
        size="|".join(P["ablations"]["ctf"]["stage2_sizes"]),
        astage="1|2",

    rule ablation_tokenizer_stage1:
        input:
            unpack(perceptual_net_input),
            train=f"{OUT}/data/train.csv",
            info=f"{OUT}/data/dataset.json",
        output:
            ckpt=at(layout.tokenizer(ABL, "{seed}", "{tok}", 1)),
            log=at(layout.tokenizer(ABL, "{seed}", "{tok}", 1).with_name("stage1_log.jsonl")),
            curve=at(layout.tokenizer(ABL, "{seed}", "{tok}", 1).with_name("stage1_curve.png")),
        params:
            profile=lambda w: abl_profile(w.tok, w.seed),
            tokenizer=lambda w: abl_params(w.tok, w.seed, "tokenizer"),
            perceptual=lambda wildcards, input: perceptual_net_arg(input),
            work=lambda w: f"{ABL}/work/seed{w.seed}/tokenizer_{w.tok}_stage1",
        threads: ABL_THREADS
        resources:
            **job_resources("train_tokenizer_stage1"),
        log:
            f"{LOGS}/ablation/seed{{seed}}/tokenizer_{{tok}}_stage1.log",
        shell:
            "alitok train-tokenizer {params.profile} --mlflow-rule {rule} --mlflow-wildcards '{wildcards}' --stage 1 --train {input.train}"
            " --dataset {input.info} {params.perceptual} --work-dir {params.work} --out {output.ckpt} --log-out {output.log}"
            " --curve-out {output.curve} --log {log}"

    rule ablation_tokenizer_stage2:
        input:
            unpack(perceptual_net_input),
            train=f"{OUT}/data/train.csv",
            info=f"{OUT}/data/dataset.json",
            stage1=at(layout.tokenizer(ABL, "{seed}", "{tok}", 1)),
        output:
            ckpt=at(layout.tokenizer(ABL, "{seed}", "{tok}", 2)),
            log=at(layout.tokenizer(ABL, "{seed}", "{tok}", 2).with_name("stage2_log.jsonl")),
            curve=at(layout.tokenizer(ABL, "{seed}", "{tok}", 2).with_name("stage2_curve.png")),
        params:
            profile=lambda w: abl_profile(w.tok, w.seed),
            tokenizer=lambda w: abl_params(w.tok, w.seed, "tokenizer"),
            perceptual=lambda wildcards, input: perceptual_net_arg(input),
            work=lambda w: f"{ABL}/work/seed{w.seed}/tokenizer_{w.tok}_stage2",
        threads: ABL_THREADS
        resources:
            **job_resources("train_tokenizer_stage2"),
        log:
            f"{LOGS}/ablation/seed{{seed}}/tokenizer_{{tok}}_stage2.log",
        shell:
            "alitok train-tokenizer {params.profile} --mlflow-rule {rule} --mlflow-wildcards '{wildcards}' --stage 2 --init {input.stage1}"
            " --train {input.train} --dataset {input.info} {params.perceptual} --work-dir {params.work} --out {output.ckpt}"
            " --log-out {output.log} --curve-out {output.curve} --log {log}"

    rule ablation_eval_tokenizer:
        input:
            ckpt=at(layout.tokenizer(ABL, "{seed}", "{tok}", "{astage}")),
            val=f"{OUT}/data/val.csv",
            info=f"{OUT}/data/dataset.json",
            classifier=f"{OUT}/classifier/model.pt",
        output:
            metrics=at(layout.tokenizer_metrics(ABL, "{seed}", "{tok}", "{astage}")),
            grid=at(layout.tokenizer(ABL, "{seed}", "{tok}", "{astage}").with_name("stage{astage}_recon.png")),
        params:
            profile=lambda w: abl_profile(w.tok, w.seed),
        threads: ABL_THREADS
        resources:
            **job_resources("eval_tokenizer"),
        log:
            f"{LOGS}/ablation/seed{{seed}}/eval_tokenizer_{{tok}}_stage{{astage}}.log",
        shell:
            "alitok eval-tokenizer {params.profile} --mlflow-rule {rule} --mlflow-wildcards '{wildcards}' --tokenizer {input.ckpt}"
            " --val {input.val} --dataset {input.info} --classifier {input.classifier} --out-metrics {output.metrics}"
            " --out-grid {output.grid} --log {log}"

    rule ablation_tokens:
        """Stage 2 freezes encoder and codebook, so a row's tokens come from its stage-1 checkpoint either way."""
        input:
            tokenizer=at(layout.tokenizer(ABL, "{seed}", "{tok}", 1)),
            manifest=f"{OUT}/data/{{split}}.csv",
            info=f"{OUT}/data/dataset.json",
        output:
            directory(at(layout.tokens(ABL, "{seed}", "{tok}", "{split}"))),
        wildcard_constraints:
            split="train|val",
        params:
            profile=lambda w: abl_profile(w.tok, w.seed),
            tokens=P["tokens"],
            work=lambda w: f"{ABL}/work/seed{w.seed}/tokens_{w.tok}_{w.split}",
        threads: ABL_THREADS
        resources:
            **job_resources("extract_tokens"),
        log:
            f"{LOGS}/ablation/seed{{seed}}/tokens_{{tok}}_{{split}}.log",
        shell:
            "alitok extract-tokens {params.profile} --mlflow-rule {rule} --mlflow-wildcards '{wildcards}' --tokenizer {input.tokenizer}"
            " --split {wildcards.split} --manifest {input.manifest} --dataset {input.info} --work-dir {params.work}"
            " --out-dir {output} --log {log}"

    rule ablation_train_generator:
        input:
            train=lambda w: at(layout.tokens(ABL, w.seed, abl.tokenizer_of(P, w.gen), "train")),
            val=lambda w: at(layout.tokens(ABL, w.seed, abl.tokenizer_of(P, w.gen), "val")),
        output:
            ckpt=at(layout.generator_log(ABL, "{seed}", "{gen}").with_name("model.pt")),
            log=at(layout.generator_log(ABL, "{seed}", "{gen}")),
            curve=at(layout.generator_log(ABL, "{seed}", "{gen}").with_name("curve.png")),
        params:
            profile=lambda w: abl_profile(w.gen, w.seed),
            generator=lambda w: training_section(unit_params(w.gen, w.seed), abl.SCALE),
            work=lambda w: f"{ABL}/work/seed{w.seed}/generator_{w.gen}",
            scale=abl.SCALE,
        threads: ABL_THREADS
        resources:
            **job_resources("train_generator"),
        log:
            f"{LOGS}/ablation/seed{{seed}}/generator_{{gen}}.log",
        shell:
            "alitok train-generator {params.profile} --mlflow-rule {rule} --mlflow-wildcards '{wildcards}' --scale {params.scale}"
            " --train-tokens {input.train} --val-tokens {input.val} --work-dir {params.work} --out {output.ckpt}"
            " --log-out {output.log} --curve-out {output.curve} --log {log}"

    def score_inputs(wildcards):
        return {"weights": extractor_weights(), "reference": f"{OUT}/data/train.csv", "info": f"{OUT}/data/dataset.json"}

    rule ablation_score_row:
        input:
            unpack(score_inputs),
            generator=lambda w: at(layout.generator_log(ABL, w.seed, abl.generator_of(P, w.row)).with_name("model.pt")),
            tokenizer=lambda w: at(layout.tokenizer(ABL, w.seed, abl.tokenizer_of(P, w.row), abl.decoder_stage(P, w.row))),
        output:
            scores=at(layout.row_scores(ABL, "{seed}", "{row}")),
            grids=directory(at(layout.row_scores(ABL, "{seed}", "{row}").with_name("grids"))),
        params:
            profile=f"--params params.yaml --profile {PROFILE}",
            sampling=lambda w: abl_params(w.row, w.seed, "generator", "evaluation"),
            work=lambda w: f"{ABL}/work/seed{w.seed}/score_{w.row}",
            cache=f"{ABL}/evaluation_cache",
        threads: ABL_THREADS
        resources:
            **job_resources("evaluate_generator"),
        log:
            f"{LOGS}/ablation/seed{{seed}}/score_{{row}}.log",
        shell:
            "alitok ablation-score {params.profile} --mlflow-rule {rule} --mlflow-wildcards '{wildcards}' --seed {wildcards.seed}"
            " --units {wildcards.row} --generator {input.generator} --tokenizer {input.tokenizer}"
            " --extractor-weights {input.weights} --dataset {input.info} --reference-manifest {input.reference}"
            " --cache-dir {params.cache} --work-dir {params.work} --out {output.scores} --out-grids {output.grids} --log {log}"

    rule ablation_ctf_clusters:
        input:
            tokenizer=lambda w: at(layout.tokenizer(ABL, w.seed, CTF_TOK, CTF_STAGE)),
            train=lambda w: at(layout.tokens(ABL, w.seed, CTF_TOK, "train")),
        output:
            at(layout.ctf_dir(ABL, "{seed}", "{K}") / "coarse_map.json"),
        params:
            profile=lambda w: abl_profile(ctf_unit(w.K), w.seed),
            clusters=lambda w: abl_params(ctf_unit(w.K), w.seed, "ctf")["ctf"]["clusters"],
        threads: ABL_THREADS
        resources:
            **job_resources("ctf_clusters"),
        log:
            f"{LOGS}/ablation/seed{{seed}}/ctf_clusters_K{{K}}.log",
        shell:
            "alitok ctf-clusters {params.profile} --mlflow-rule {rule} --mlflow-wildcards '{wildcards}' --tokenizer {input.tokenizer}"
            " --train-tokens {input.train} --out {output} --log {log}"

    rule ablation_ctf_stage1:
        input:
            train=lambda w: at(layout.tokens(ABL, w.seed, CTF_TOK, "train")),
            val=lambda w: at(layout.tokens(ABL, w.seed, CTF_TOK, "val")),
            coarse_map=at(layout.ctf_dir(ABL, "{seed}", "{K}") / "coarse_map.json"),
        output:
            ckpt=at(layout.ctf_stage1_log(ABL, "{seed}", "{K}").with_name("model.pt")),
            log=at(layout.ctf_stage1_log(ABL, "{seed}", "{K}")),
            curve=at(layout.ctf_stage1_log(ABL, "{seed}", "{K}").with_name("curve.png")),
        params:
            profile=lambda w: abl_profile(ctf_unit(w.K), w.seed),
            generator=lambda w: training_section(unit_params(ctf_unit(w.K), w.seed), abl.SCALE),
            work=lambda w: f"{ABL}/work/seed{w.seed}/ctf_K{w.K}_stage1",
            scale=abl.SCALE,
        threads: ABL_THREADS
        resources:
            **job_resources("train_generator"),
        log:
            f"{LOGS}/ablation/seed{{seed}}/ctf_K{{K}}_stage1.log",
        shell:
            "alitok train-generator {params.profile} --mlflow-rule {rule} --mlflow-wildcards '{wildcards}' --scale {params.scale}"
            " --ctf-stage 1 --coarse-map {input.coarse_map} --train-tokens {input.train} --val-tokens {input.val}"
            " --work-dir {params.work} --out {output.ckpt} --log-out {output.log} --curve-out {output.curve} --log {log}"

    rule ablation_ctf_stage2:
        input:
            train=lambda w: at(layout.tokens(ABL, w.seed, CTF_TOK, "train")),
            val=lambda w: at(layout.tokens(ABL, w.seed, CTF_TOK, "val")),
            coarse_map=at(layout.ctf_dir(ABL, "{seed}", "{K}") / "coarse_map.json"),
        output:
            ckpt=at(layout.ctf_scores(ABL, "{seed}", "{K}", "{size}").with_name("model.pt")),
            log=at(layout.ctf_scores(ABL, "{seed}", "{K}", "{size}").with_name("log.jsonl")),
            curve=at(layout.ctf_scores(ABL, "{seed}", "{K}", "{size}").with_name("curve.png")),
        params:
            profile=lambda w: abl_profile(ctf_unit(w.K, w.size), w.seed),
            generator=lambda w: training_section(unit_params(ctf_unit(w.K, w.size), w.seed), None),
            work=lambda w: f"{ABL}/work/seed{w.seed}/ctf_K{w.K}_stage2_{w.size}",
        threads: ABL_THREADS
        resources:
            **job_resources("train_ctf_stage2"),
        log:
            f"{LOGS}/ablation/seed{{seed}}/ctf_K{{K}}_stage2_{{size}}.log",
        shell:
            "alitok train-generator {params.profile} --mlflow-rule {rule} --mlflow-wildcards '{wildcards}' --ctf-stage 2"
            " --coarse-map {input.coarse_map} --train-tokens {input.train} --val-tokens {input.val} --work-dir {params.work}"
            " --out {output.ckpt} --log-out {output.log} --curve-out {output.curve} --log {log}"

    rule ablation_ctf_score:
        """Every sweep point sampled with this stage 1 (K) and stage 2 (K, size), in one job."""
        input:
            unpack(score_inputs),
            generator=at(layout.ctf_stage1_log(ABL, "{seed}", "{K}").with_name("model.pt")),
            stage2=at(layout.ctf_scores(ABL, "{seed}", "{K}", "{size}").with_name("model.pt")),
            coarse_map=at(layout.ctf_dir(ABL, "{seed}", "{K}") / "coarse_map.json"),
            tokenizer=lambda w: at(layout.tokenizer(ABL, w.seed, CTF_TOK, CTF_STAGE)),
        output:
            scores=at(layout.ctf_scores(ABL, "{seed}", "{K}", "{size}")),
            grids=directory(at(layout.ctf_scores(ABL, "{seed}", "{K}", "{size}").with_name("grids"))),
        params:
            profile=f"--params params.yaml --profile {PROFILE}",
            units=lambda w: " ".join(CTF_MODELS[(int(w.K), w.size)]),
            sampling=lambda w: {u: abl_params(u, w.seed, "ctf", "generator")
                                for u in CTF_MODELS[(int(w.K), w.size)]},
            work=lambda w: f"{ABL}/work/seed{w.seed}/score_ctf_K{w.K}_{w.size}",
            cache=f"{ABL}/evaluation_cache",
        threads: ABL_THREADS
        resources:
            **job_resources("evaluate_generator"),
        log:
            f"{LOGS}/ablation/seed{{seed}}/score_ctf_K{{K}}_{{size}}.log",
        shell:
            "alitok ablation-score {params.profile} --mlflow-rule {rule} --mlflow-wildcards '{wildcards}' --seed {wildcards.seed}"
            " --units {params.units} --generator {input.generator} --ctf-stage2 {input.stage2} --coarse-map {input.coarse_map}"
            " --tokenizer {input.tokenizer} --extractor-weights {input.weights} --dataset {input.info}"
            " --reference-manifest {input.reference} --cache-dir {params.cache} --work-dir {params.work}"
            " --out {output.scores} --out-grids {output.grids} --log {log}"

    def ablation_inputs(wildcards):
        files = []
        for seed in SEEDS:
            for row in ROWS:
                tok, stage = abl.tokenizer_of(P, row), abl.decoder_stage(P, row)
                files += [at(layout.row_scores(ABL, seed, row)), at(layout.tokenizer_metrics(ABL, seed, tok, stage)),
                          at(layout.generator_log(ABL, seed, abl.generator_of(P, row))), at(layout.tokens(ABL, seed, tok, "val"))]
            for k, size in CTF_MODELS:
                files += [at(layout.ctf_scores(ABL, seed, k, size)), at(layout.ctf_stage1_log(ABL, seed, k))]
        return sorted(set(files))

    rule ablation_report:
        input:
            runs=ablation_inputs,
            paper="results/paper/ablations.csv",
        output:
            report=f"{ABL}/report.md",
            metrics=f"{ABL}/metrics.json",
            tables=directory(f"{ABL}/tables"),
            figures=[report_file(f"{ABL}/figures/{f}") for f in ("alitok.png", "ctf_table3.png")],
        params:
            ablations=P["ablations"],
        resources:
            **job_resources("write_report"),
        log:
            f"{LOGS}/ablation/report.log",
        shell:
            "alitok ablation-report {PARAMS} --mlflow-rule {rule} --mlflow-wildcards '{wildcards}' --runs {ABL} --paper {input.paper}"
            " --out {output.report} --figure-dir {ABL}/figures --out-tables {output.tables} --metrics-out {output.metrics} --log {log}"

    rule ablations:
        """The ablation target (not part of `all`): docs/ablations.md."""
        input:
            f"{ABL}/report.md",
