"""`alitok <stage>`: one subcommand per pipeline stage, each with explicit input and output paths.

Snakemake rules call exactly one subcommand each; the same commands run by hand. Stage modules are
imported inside their handlers so `alitok --help` and the model code never pull in the workflow stack.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

log = logging.getLogger("alitok")

# Errors a user can fix: printed as one line naming the file or key, without a traceback.
def _user_errors() -> tuple[type[BaseException], ...]:
    from alitok.atomic import OutputError
    from alitok.config import ParamsError

    errors: list[type[BaseException]] = [ParamsError, OutputError, FileNotFoundError, NotADirectoryError]
    try:
        from alitok.data.imagefolder import DataError

        errors.append(DataError)
    except ImportError:
        pass
    return tuple(errors)


def _params(args) -> dict:
    from alitok import config

    return config.load(args.params, args.profile)


def cmd_params(args) -> None:
    import yaml

    yaml.safe_dump(_params(args), sys.stdout, sort_keys=False)


def cmd_make_dataset(args) -> None:
    from alitok.data import synthetic

    data = _params(args)["data"]
    if data["source"] != "embedded":
        raise SystemExit(f"alitok make-dataset: params profile {args.profile!r} has data.source = {data['source']!r}; "
                         "only the embedded source is generated")
    emb = data["embedded"]
    summary = synthetic.write_dataset(
        args.out, seed=emb["seed"], num_classes=emb["num_classes"], image_size=data["image_size"],
        train_per_class=emb["train_per_class"], val_per_class=emb["val_per_class"])
    log.info("embedded dataset written to %s: %s", args.out, summary)


def cmd_prepare_data(args) -> None:
    from alitok.data import prepare

    summary = prepare.run(_params(args)["data"], args.root, args.out_dir)
    log.info("manifests written to %s: %s", args.out_dir, summary)


def cmd_train_classifier(args) -> None:
    from alitok.classifier import train

    p = _params(args)
    if "classifier" not in p:
        raise SystemExit(f"alitok train-classifier: params profile {p['name']!r} has no classifier section")
    metrics = train.run(p["classifier"], p["data"]["image_size"], args.train, args.val, args.dataset, args.out_dir)
    log.info("domain classifier: held-out accuracy %.4f", metrics["val_accuracy"])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alitok", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="<stage>")

    def add(name: str, func, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (default: params.yaml)")
        p.add_argument("--profile", default=None, help="params profile (default: the file's `profile` key)")
        p.add_argument("--log", type=Path, default=None, help="also write the log to this file")
        p.set_defaults(func=func)
        return p

    add("params", cmd_params, "print the resolved, validated params of a profile")

    p = add("make-dataset", cmd_make_dataset, "generate the embedded dataset (ImageFolder tree of PNGs)")
    p.add_argument("--out", type=Path, required=True, help="output directory (train/, val/)")

    p = add("prepare-data", cmd_prepare_data, "scan an ImageFolder tree into manifests, listing bad images")
    p.add_argument("--root", type=Path, required=True, help="dataset root holding train/ and val/")
    p.add_argument("--out-dir", type=Path, required=True, help="where train.csv, val.csv, dataset.json, report.json go")

    p = add("train-classifier", cmd_train_classifier, "train the domain classifier (evaluation features only)")
    p.add_argument("--train", type=Path, required=True, help="train manifest (CSV)")
    p.add_argument("--val", type=Path, required=True, help="held-out manifest (CSV)")
    p.add_argument("--dataset", type=Path, required=True, help="dataset.json from prepare-data")
    p.add_argument("--out-dir", type=Path, required=True, help="where model.pt, metrics.json and plots go")
    return parser


def _setup_logging(log_file: Path | None) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        handlers=handlers, force=True)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.log)
    try:
        args.func(args)
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
