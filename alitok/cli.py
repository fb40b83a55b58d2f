"""`alitok <stage>`: one subcommand per pipeline stage, each with explicit input and output paths.

Snakemake rules call exactly one subcommand each; the same commands run by hand. Stage modules are
imported inside their handlers so `alitok --help` and the model code never pull in the workflow stack.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger("alitok")


# Errors a user can fix: printed as one line naming the file or key, without a traceback.
def _user_errors() -> tuple[type[BaseException], ...]:
    from alitok.atomic import OutputError
    from alitok.config import ParamsError
    from alitok.training.checkpoint import CheckpointError

    errors: list[type[BaseException]] = [
        ParamsError,
        OutputError,
        CheckpointError,
        FileNotFoundError,
        NotADirectoryError,
    ]
    from alitok.ctf.clusters import CoarseMapError
    from alitok.data.imagefolder import DataError
    from alitok.sharing import SharingError
    from alitok.tokenizer.release import ReleaseError
    from alitok.tokens.store import TokenStoreError

    return tuple(errors + [DataError, ReleaseError, TokenStoreError, SharingError, CoarseMapError])


def _params(args) -> dict:
    from alitok import config

    return config.load(args.params, args.profile)


def _together(args, a: str, b: str) -> None:
    """CTF's options come in pairs: one without the other would silently run the plain generator."""
    if (getattr(args, a) is None) != (getattr(args, b) is None):
        flags = " and ".join("--" + k.replace("_", "-") for k in (a, b))
        raise SystemExit(f"alitok {args.command}: {flags} go together (CTF), or neither")


def cmd_params(args) -> None:
    import yaml

    yaml.safe_dump(_params(args), sys.stdout, sort_keys=False)


def cmd_make_dataset(args) -> None:
    from alitok.data import synthetic

    data = _params(args)["data"]
    if data["source"] != "embedded":
        raise SystemExit(
            f"alitok make-dataset: params profile {args.profile!r} has data.source = {data['source']!r}; "
            "only the embedded source is generated"
        )
    emb = data["embedded"]
    summary = synthetic.write_dataset(
        args.out,
        seed=emb["seed"],
        num_classes=emb["num_classes"],
        image_size=data["image_size"],
        train_per_class=emb["train_per_class"],
        val_per_class=emb["val_per_class"],
        variation=synthetic.Variation.from_params(emb["variation"]),
        classes=emb["classes"],
    )
    log.info("embedded dataset written to %s: %s", args.out, summary)


def cmd_prepare_data(args) -> None:
    from alitok.data import prepare

    summary = prepare.run(_params(args)["data"], args.root, args.out_dir)
    log.info("manifests written to %s: %s", args.out_dir, summary)


def cmd_train_classifier(args) -> None:
    from alitok.classifier import train

    p = _params(args)
    if args.section not in p:
        raise SystemExit(f"alitok train-classifier: params profile {p['name']!r} has no {args.section} section")
    metrics = train.run(p[args.section], p["data"]["image_size"], args.train, args.val, args.dataset, args.out_dir)
    log.info("%s: held-out accuracy %.4f", args.section, metrics["val_accuracy"])


def cmd_train_tokenizer(args) -> None:
    from alitok.tokenizer import train

    summary = train.run(
        _params(args),
        stage=args.stage,
        train_csv=args.train,
        dataset_json=args.dataset,
        work_dir=args.work_dir,
        out=args.out,
        log_out=args.log_out,
        init=args.init,
        perceptual_net=args.perceptual_net,
        phases_from=args.phases_from,
        curve_out=args.curve_out,
    )
    log.info("tokenizer stage %d trained: %s", args.stage, summary)


def cmd_eval_tokenizer(args) -> None:
    from alitok.tokenizer import evaluate

    evaluate.run(args.tokenizer, args.val, args.dataset, args.classifier, args.out_metrics, args.out_grid)


def cmd_compare_tokenizer_stages(args) -> None:
    from alitok.tokenizer import compare

    compare.run(args.stage2, args.control, args.stage1, args.out)


def cmd_import_tokenizer(args) -> None:
    from alitok.tokenizer import release

    info = release.import_release(args.source, args.out)
    log.info("imported %s -> %s: %s", args.source, args.out, info)


def cmd_extract_tokens(args) -> None:
    from alitok.tokens import extract

    t = _params(args)["tokens"]
    summary = extract.run(
        tokenizer_path=args.tokenizer,
        split_csv=args.manifest,
        dataset_json=args.dataset,
        out_dir=args.out_dir,
        work_dir=args.work_dir,
        ten_crop=t["ten_crop"] and args.split == "train",
        crop_scale=t["crop_scale"],
        shard_images=t["shard_images"],
        batch=t["batch"],
        workers=t["workers"],
    )
    log.info(
        "%s tokens: %d images x %d crops x %d codes in %d shards -> %s",
        args.split,
        summary["images"],
        summary["crops"],
        summary["seq_len"],
        len(summary["shards"]),
        args.out_dir,
    )


def cmd_train_generator(args) -> None:
    from alitok.generator import train

    _together(args, "ctf_stage", "coarse_map")

    summary = train.run(
        _params(args),
        scale=args.scale,
        train_dir=args.train_tokens,
        val_dir=args.val_tokens,
        work_dir=args.work_dir,
        out=args.out,
        log_out=args.log_out,
        curve_out=args.curve_out,
        control=args.control,
        ctf_stage=args.ctf_stage,
        coarse_map=args.coarse_map,
    )
    log.info("generator %s trained: %s", args.scale, summary)


def cmd_sample(args) -> None:
    from alitok.generator import sample

    _together(args, "ctf_stage2", "coarse_map")

    summary = sample.run(
        _params(args),
        scale=args.scale,
        generator_path=args.generator,
        tokenizer_path=args.tokenizer,
        work_dir=args.work_dir,
        out_archive=args.out_archive,
        out_grid=args.out_grid,
        ctf_stage2=args.ctf_stage2,
        coarse_map=args.coarse_map,
    )
    log.info("sampled: %s", summary)


def cmd_ctf_clusters(args) -> None:
    from alitok.ctf import clusters

    clusters.run(
        tokenizer_path=args.tokenizer,
        train_tokens=args.train_tokens,
        clusters=_params(args)["ctf"]["clusters"],
        out=args.out,
    )


def cmd_ctf_redundancy(args) -> None:
    from alitok.ctf import redundancy

    redundancy.run(
        tokenizer_path=args.tokenizer,
        coarse_map=args.coarse_map,
        val_csv=args.val,
        dataset_json=args.dataset,
        classifier_path=args.classifier,
        seed=_params(args)["ctf"]["redundancy_seed"],
        out=args.out,
    )


def cmd_evaluate(args) -> None:
    from alitok.evaluation import samples

    _together(args, "ctf_stage2", "coarse_map")
    samples.run(
        _params(args),
        out=args.out,
        extractor_weights=args.extractor_weights,
        cache_dir=args.cache_dir,
        samples=args.samples,
        real_split=args.real_split,
        dataset_json=args.dataset,
        reference_manifest=args.reference_manifest,
        scale=args.scale,
        control=args.control,
        generator=args.generator,
        tokenizer=args.tokenizer,
        ctf_stage2=args.ctf_stage2,
        coarse_map=args.coarse_map,
    )


def cmd_sampling_sweep(args) -> None:
    from alitok.config import ParamsError
    from alitok.evaluation import sweep

    p = _params(args)
    if args.scale not in p["generator"]["scales"]:
        raise ParamsError(
            f"--scale {args.scale}: not a key of generator.scales ({', '.join(p['generator']['scales'])})"
        )
    sc, s = p["generator"]["scales"][args.scale], p["generator"]["sampling"]
    table = sweep.run(
        p,
        scale=args.scale,
        generator_path=args.generator,
        tokenizer_path=args.tokenizer,
        classifier_path=args.classifier,
        num_samples=args.num_samples or s["num_samples"],
        guidance=args.guidance or [sc["guidance"]],
        powers=args.power or [sc["guidance_power"]],
        temperatures=args.temperature or [s["temperature"]],
        out=args.out,
    )
    print(table.to_string(index=False))


def _power(text: str) -> float | None:
    return None if text.lower() in ("none", "null", "constant") else float(text)


def cmd_pull(args) -> None:
    from alitok import sharing

    sharing.pull(Path("."), remote=args.remote)
    log.info("pulled, verified and marked up to date: `snakemake -n` has nothing to do")


def cmd_report(args) -> None:
    from alitok.evaluation import report

    report.run(
        out=args.out,
        fig_dir=args.figure_dir,
        evaluations=args.evaluations,
        paper_csv=args.paper,
        real=args.real,
        classifier=args.classifier,
        tokenizer_metrics=args.tokenizer_metrics or (),
        comparison=args.comparison,
        generator_logs=args.generator_logs or (),
        generators=args.generators or (),
        tokenizer_logs=args.tokenizer_logs or (),
        metrics_out=args.metrics_out,
        curves_dir=args.curves_dir,
        ctf_map=args.ctf_map,
        ctf_stage2=args.ctf_stage2,
        ctf_stage2_log=args.ctf_stage2_log,
        ctf_redundancy=args.ctf_redundancy,
    )
    log.info("report written to %s", args.out)


def cmd_compare(args) -> None:
    from alitok import tracking

    table = tracking.compare(args.profile or _params(args)["name"])
    print(table.to_string(index=False) if len(table) else "no evaluation runs or paper rows recorded yet")


def cmd_ablation_score(args) -> None:
    from alitok.ablations import score

    _together(args, "ctf_stage2", "coarse_map")
    profile = _params(args)["name"]
    score.run(
        args.params,
        profile,
        args.seed,
        args.units,
        generator=args.generator,
        tokenizer=args.tokenizer,
        extractor_weights=args.extractor_weights,
        dataset_json=args.dataset,
        reference_manifest=args.reference_manifest,
        cache_dir=args.cache_dir,
        work_dir=args.work_dir,
        out=args.out,
        grid_dir=args.out_grids,
        ctf_stage2=args.ctf_stage2,
        coarse_map=args.coarse_map,
    )


def cmd_ablation_report(args) -> None:
    from alitok.ablations import report

    r = report.run(
        _params(args),
        root=args.runs,
        paper_csv=args.paper,
        out=args.out,
        fig_dir=args.figure_dir,
        tables_dir=args.out_tables,
        metrics_out=args.metrics_out,
    )
    log.info("ablations: AliTok claim %s, CTF claim %s; %s", r["alitok_claim"], r["ctf_claim"], args.out)


def cmd_import_generator(args) -> None:
    from alitok.generator import release

    info = release.import_release(args.source, args.out, size=args.size)
    log.info("imported %s -> %s: %s", args.source, args.out, info)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alitok", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="<stage>")

    def add(name: str, func, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (default: params.yaml)")
        p.add_argument("--profile", default=None, help="params profile (default: the file's `profile` key)")
        p.add_argument("--log", type=Path, default=None, help="also write the log to this file")
        p.add_argument("--mlflow-rule", default=None, help="Snakemake rule name: tags this job's MLflow child run")
        p.add_argument(
            "--mlflow-wildcards", default=None, help="Snakemake wildcards: tag of this job's MLflow child run"
        )
        p.set_defaults(func=func)
        return p

    def manifests(p: argparse.ArgumentParser, *splits: str) -> None:
        """The data-prep outputs a stage reads: manifests of the given splits and dataset.json."""
        helps = {"train": "train manifest (CSV)", "val": "held-out manifest (CSV)"}
        for split in splits:
            p.add_argument(f"--{split}", type=Path, required=True, help=helps[split])
        p.add_argument("--dataset", type=Path, required=True, help="dataset.json from prepare-data")

    add("params", cmd_params, "print the resolved, validated params of a profile")

    p = add("make-dataset", cmd_make_dataset, "generate the embedded dataset (ImageFolder tree of PNGs)")
    p.add_argument("--out", type=Path, required=True, help="output directory (train/, val/)")

    p = add("prepare-data", cmd_prepare_data, "scan an ImageFolder tree into manifests, listing bad images")
    p.add_argument("--root", type=Path, required=True, help="dataset root holding train/ and val/")
    p.add_argument("--out-dir", type=Path, required=True, help="where train.csv, val.csv, dataset.json, report.json go")

    p = add("train-classifier", cmd_train_classifier, "train the domain classifier (evaluation features only)")
    manifests(p, "train", "val")
    p.add_argument("--out-dir", type=Path, required=True, help="where model.pt, metrics.json and plots go")
    p.add_argument(
        "--section",
        default="classifier",
        choices=["classifier", "perceptual_net"],
        help="params section: the domain classifier, or the smoke perceptual-loss network",
    )

    p = add("train-tokenizer", cmd_train_tokenizer, "train one tokenizer stage through its phases (resumable, DDP)")
    p.add_argument("--stage", type=int, choices=[1, 2], required=True)
    manifests(p, "train")
    p.add_argument(
        "--init", type=Path, default=None, help="tokenizer checkpoint to start from (stage 2: the stage-1 result)"
    )
    p.add_argument("--perceptual-net", type=Path, default=None, help="smoke perceptual network (model.pt)")
    p.add_argument(
        "--phases-from",
        type=int,
        choices=[1, 2],
        default=None,
        help="take the phase table of this stage (2 with --stage 1: the continued-stage-1 control)",
    )
    p.add_argument("--work-dir", type=Path, required=True, help="in-progress checkpoints and log (resume from here)")
    p.add_argument("--out", type=Path, required=True, help="final tokenizer checkpoint")
    p.add_argument("--log-out", type=Path, required=True, help="per-step training log (JSON lines)")
    p.add_argument("--curve-out", type=Path, help="training curves of that log (PNG)")

    p = add("eval-tokenizer", cmd_eval_tokenizer, "held-out PSNR, SSIM, rFID and a reconstruction grid")
    p.add_argument("--tokenizer", type=Path, required=True, help="tokenizer checkpoint")
    manifests(p, "val")
    p.add_argument("--classifier", type=Path, required=True, help="domain classifier (rFID features)")
    p.add_argument("--out-metrics", type=Path, required=True)
    p.add_argument("--out-grid", type=Path, required=True)

    p = add(
        "compare-tokenizer-stages",
        cmd_compare_tokenizer_stages,
        "does stage 2 beat stage 1 continued for the same steps? (held-out PSNR, rFID)",
    )
    p.add_argument("--stage1", type=Path, required=True, help="stage-1 metrics JSON")
    p.add_argument("--stage2", type=Path, required=True, help="stage-2 metrics JSON")
    p.add_argument("--control", type=Path, required=True, help="continued-stage-1 metrics JSON")
    p.add_argument("--out", type=Path, required=True, help="comparison (markdown)")

    p = add("extract-tokens", cmd_extract_tokens, "encode a split with the final tokenizer into uint16 token shards")
    p.add_argument("--tokenizer", type=Path, required=True, help="final tokenizer checkpoint")
    p.add_argument(
        "--split", choices=["train", "val"], required=True, help="train gets the ten crops if tokens.ten_crop"
    )
    p.add_argument("--manifest", type=Path, required=True, help="the split's manifest (CSV)")
    p.add_argument("--dataset", type=Path, required=True, help="dataset.json from prepare-data")
    p.add_argument("--work-dir", type=Path, required=True, help="finished shards so far (resume from here)")
    p.add_argument("--out-dir", type=Path, required=True, help="manifest.json and shards")

    p = add(
        "train-generator",
        cmd_train_generator,
        "train the AR generator of one scale on extracted tokens (resumable, DDP)",
    )
    p.add_argument("--scale", help="a key of generator.scales in params (all but --ctf-stage 2: ctf.stage2)")
    p.add_argument("--train-tokens", type=Path, required=True, help="train token directory (extract-tokens)")
    p.add_argument("--val-tokens", type=Path, required=True, help="held-out token directory (extract-tokens)")
    p.add_argument("--work-dir", type=Path, required=True, help="in-progress checkpoints and log (resume from here)")
    p.add_argument("--out", type=Path, required=True, help="final generator checkpoint")
    p.add_argument("--log-out", type=Path, required=True, help="per-step training log (JSON lines)")
    p.add_argument("--curve-out", type=Path, help="training curves of that log (PNG)")
    p.add_argument(
        "--control",
        choices=["untrained", "shuffled_labels"],
        help="an evaluation control: no training step, or labels permuted across images",
    )
    p.add_argument(
        "--ctf-stage", type=int, choices=[1, 2], help="train CTF's stage 1 (coarse AR) or 2 (fine, one pass)"
    )
    p.add_argument("--coarse-map", type=Path, help="CTF: the fine -> coarse map (ctf-clusters)")

    p = add("sample", cmd_sample, "class-conditional samples of one generator: ADM archive (npz) and a per-class grid")
    p.add_argument("--scale", required=True, help="a key of generator.scales (its guidance and seed)")
    p.add_argument("--generator", type=Path, required=True, help="generator checkpoint (trained or imported)")
    p.add_argument("--tokenizer", type=Path, required=True, help="tokenizer checkpoint that decodes its codes")
    p.add_argument("--work-dir", type=Path, required=True, help="per-process blocks in progress (resume from here)")
    p.add_argument("--out-archive", type=Path, required=True, help="samples.npz: arr_0 uint8 NHWC images, arr_1 labels")
    p.add_argument("--out-grid", type=Path, required=True, help="per-class sample grid (PNG)")
    p.add_argument("--ctf-stage2", type=Path, help="CTF: stage-2 checkpoint (--generator is then stage 1)")
    p.add_argument("--coarse-map", type=Path, help="CTF: the fine -> coarse map (ctf-clusters)")

    p = add("ctf-clusters", cmd_ctf_clusters, "CTF's coarse labels: k-means over the tokenizer's codebook (JSON map)")
    p.add_argument("--tokenizer", type=Path, required=True, help="tokenizer checkpoint whose codebook is clustered")
    p.add_argument("--train-tokens", type=Path, required=True, help="train token directory (code usage per cluster)")
    p.add_argument("--out", type=Path, required=True, help="coarse map JSON: fine_to_coarse, sizes, usage")

    p = add(
        "ctf-redundancy",
        cmd_ctf_redundancy,
        "CTF's redundancy test: every token swapped within its cluster vs anywhere, decoded (PSNR, rFID)",
    )
    p.add_argument("--tokenizer", type=Path, required=True, help="tokenizer checkpoint")
    p.add_argument("--coarse-map", type=Path, required=True, help="the fine -> coarse map (ctf-clusters)")
    manifests(p, "val")
    p.add_argument("--classifier", type=Path, required=True, help="domain classifier (rFID features)")
    p.add_argument("--out", type=Path, required=True, help="metrics JSON")

    p = add("evaluate", cmd_evaluate, "FID, IS, precision/recall, class-consistency (and speed) of one sample set")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--samples", type=Path, help="an ADM archive (samples.npz) to evaluate")
    what.add_argument("--real-split", type=Path, help="a split's manifest: evaluate real images (floor and ceiling)")
    p.add_argument(
        "--extractor-weights",
        type=Path,
        required=True,
        help="the domain classifier's model.pt, or the local Inception .pth (params evaluation)",
    )
    p.add_argument("--cache-dir", type=Path, required=True, help="reference statistics, keyed by content and weights")
    p.add_argument("--dataset", type=Path, help="dataset.json (split references, class count)")
    p.add_argument("--reference-manifest", type=Path, help="the reference split's manifest (reference kind: split)")
    p.add_argument("--scale", help="the generator scale that made the samples (its protocol goes in the result)")
    p.add_argument("--control", choices=["untrained", "shuffled_labels"], help="the samples are of this control")
    p.add_argument("--generator", type=Path, help="with --tokenizer: also time sampling at evaluation.speed.batch")
    p.add_argument("--tokenizer", type=Path)
    p.add_argument("--ctf-stage2", type=Path, help="CTF: stage-2 checkpoint (--generator is then stage 1)")
    p.add_argument("--coarse-map", type=Path, help="CTF: the fine -> coarse map (ctf-clusters)")
    p.add_argument("--out", type=Path, required=True, help="metrics JSON")

    p = add(
        "sampling-sweep",
        cmd_sampling_sweep,
        "class-consistency of one generator over guidance, its power and temperature (choosing sampling params)",
    )
    p.add_argument("--scale", required=True, help="a key of generator.scales (its seed; defaults of the grid)")
    p.add_argument("--generator", type=Path, required=True, help="generator checkpoint")
    p.add_argument("--tokenizer", type=Path, required=True, help="tokenizer checkpoint that decodes its codes")
    p.add_argument("--classifier", type=Path, required=True, help="the domain classifier's model.pt")
    p.add_argument("--num-samples", type=int, help="per setting (default: generator.sampling.num_samples)")
    p.add_argument("--guidance", type=float, nargs="+", help="guidance scales (default: the scale's)")
    p.add_argument(
        "--power", type=_power, nargs="+", help="guidance powers, 'none' for constant (default: the scale's)"
    )
    p.add_argument("--temperature", type=float, nargs="+", help="temperatures (default: generator.sampling's)")
    p.add_argument("--out", type=Path, required=True, help="one row per setting (CSV)")

    p = add("report", cmd_report, "report.md and figures: our metrics with their context, beside the papers' numbers")
    p.add_argument("--evaluations", type=Path, nargs="+", required=True, help="evaluate outputs, one per generator run")
    p.add_argument(
        "--paper", type=Path, required=True, help="the papers' published numbers (results/paper/published.csv)"
    )
    p.add_argument("--real", type=Path, help="evaluation of the real held-out images (floor and ceiling)")
    p.add_argument("--classifier", type=Path, help="the evaluation classifier's metrics.json")
    p.add_argument("--tokenizer-metrics", type=Path, nargs="*", help="eval-tokenizer outputs")
    p.add_argument("--comparison", type=Path, help="stage_comparison.md")
    p.add_argument("--generator-logs", type=Path, nargs="*", help="train-generator logs (JSON lines)")
    p.add_argument("--generators", type=Path, nargs="*", help="generator checkpoints (parameter counts, grids)")
    p.add_argument("--out", type=Path, required=True, help="report.md")
    p.add_argument("--figure-dir", type=Path, required=True, help="where the figures go")
    p.add_argument("--tokenizer-logs", type=Path, nargs="*", help="train-tokenizer logs (JSON lines), for the curves")
    p.add_argument("--metrics-out", type=Path, required=True, help="metrics.json that DVC compares")
    p.add_argument("--curves-dir", type=Path, required=True, help="folder of loss curves that `dvc plots` draws")
    p.add_argument("--ctf-map", type=Path, help="CTF's coarse map (ctf-clusters): clusters and usage")
    p.add_argument("--ctf-stage2", type=Path, help="CTF's stage-2 checkpoint (its parameters count in CTF's size)")
    p.add_argument("--ctf-stage2-log", type=Path, help="CTF's stage-2 training log (held-out fine-label accuracy)")
    p.add_argument("--ctf-redundancy", type=Path, help="ctf-redundancy output: the swap measurement")

    p = add("pull", cmd_pull, "dvc pull, verify every file against dvc.lock, mark the results up to date for Snakemake")
    p.add_argument("--remote", help="the DVC remote (default: the project's default remote)")

    add("compare", cmd_compare, "our gFID runs from MLflow beside the papers' published rows")

    p = add("import-tokenizer", cmd_import_tokenizer, "convert the released AliTok.pth into this project's format")
    p.add_argument("source", type=Path, help="the released stage-2 tokenizer file (AliTok.pth)")
    p.add_argument("--out", type=Path, required=True, help="project tokenizer checkpoint to write")
    p = add(
        "import-generator", cmd_import_generator, "convert a released alitok_{b,l,xl}.bin into this project's format"
    )
    p.add_argument(
        "source", type=Path, help="the released generator file (alitok_b.bin, alitok_l.bin or alitok_xl.bin)"
    )
    p.add_argument("--out", type=Path, required=True, help="project generator checkpoint to write")
    p.add_argument("--size", choices=["B", "L", "XL"], default=None, help="default: recognised from the tensor shapes")

    p = add("ablation-score", cmd_ablation_score, "sample and evaluate ablation units that share their trained models")
    p.add_argument("--seed", type=int, required=True, help="a seed of ablations.seeds")
    p.add_argument("--units", nargs="+", required=True, help="ablation units (rows or CTF points) to sample")
    p.add_argument("--generator", type=Path, required=True, help="generator (CTF: stage-1) checkpoint")
    p.add_argument("--tokenizer", type=Path, required=True, help="tokenizer checkpoint that decodes the codes")
    p.add_argument("--ctf-stage2", type=Path, help="CTF: stage-2 checkpoint")
    p.add_argument("--coarse-map", type=Path, help="CTF: the fine -> coarse map")
    p.add_argument("--extractor-weights", type=Path, required=True, help="evaluation features (the domain classifier)")
    p.add_argument("--dataset", type=Path, required=True, help="dataset.json (class count)")
    p.add_argument("--reference-manifest", type=Path, required=True, help="the reference split's manifest")
    p.add_argument("--cache-dir", type=Path, required=True, help="reference statistics cache")
    p.add_argument("--work-dir", type=Path, required=True, help="samples in progress (resume from here)")
    p.add_argument("--out", type=Path, required=True, help="scores JSON: unit -> evaluation metrics")
    p.add_argument("--out-grids", type=Path, required=True, help="folder of one sample grid per unit")

    p = add("ablation-report", cmd_ablation_report, "the ablation tables with seeds and verdicts, figures, and claims")
    p.add_argument("--runs", type=Path, required=True, help="the ablation units' folder (seed<N>/...)")
    p.add_argument(
        "--paper", type=Path, required=True, help="the papers' ablation numbers (results/paper/ablations.csv)"
    )
    p.add_argument("--out", type=Path, required=True, help="report (markdown)")
    p.add_argument("--figure-dir", type=Path, required=True, help="where the figures go")
    p.add_argument("--out-tables", type=Path, required=True, help="folder of CSV tables")
    p.add_argument("--metrics-out", type=Path, required=True, help="claims, verdicts and means (JSON)")
    return parser


def _setup_logging(log_file: Path | None) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w"))
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", handlers=handlers, force=True
    )


def _track(args) -> None:
    """The job's MLflow child run (only under a pipeline's parent run). Its outputs are already written: a
    tracking failure is reported, never turned into a failed job whose outputs Snakemake would delete."""
    from alitok import tracking

    if not os.environ.get(tracking.PARENT_ENV) or args.command in ("params", "compare"):
        return
    try:
        tracking.record_job(args, _params(args))
    except Exception as e:  # noqa: BLE001 - any MLflow failure
        log.warning("MLflow: could not record this job (%s: %s); its outputs are complete", type(e).__name__, e)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.log)
    try:
        args.func(args)
        _track(args)
    except _user_errors() as e:
        message = f"alitok {args.command}: error: {e}"
        if args.log:  # the console gets the plain line below; the log file keeps a copy
            logging.getLogger("alitok").handlers = []
            with open(args.log, "a") as f:
                f.write(message + "\n")
        print(message, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
