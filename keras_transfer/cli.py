"""The `keras-transfer` command: `backbones`, `select`, `train`, `evaluate`, `predict`, `export`, `demo`.

Every failure is reported in one line (`error: ...`): exit status 2 for bad input (an argument, a file or folder
given), 1 for a failure during work, 130 when interrupted; `--debug` shows the traceback.
"""

import argparse
import contextlib
import csv
import json
import logging
import os
import re
import sys

from keras_transfer import api
from keras_transfer.demo import DEMO_CUT, DEMO_TEST_PER_CLASS, check_demo_args, run_demo
from keras_transfer.errors import KerasTransferError
from keras_transfer.models.registry import list_backbones
from keras_transfer.layout import LAST_MODEL
from keras_transfer.runs.config_args import add_flags, given_settings
from keras_transfer.runs.config_checks import MAXIMUM
from keras_transfer.runs.folder import run_modality
from keras_transfer.runs.resume import resume_run
from keras_transfer.runs.select import MODALITIES as SELECT_MODALITIES, RANK_BY, select_backbones
from keras_transfer.runs.train import train_from_folder
from keras_transfer.serving.export import check_atol
from keras_transfer.training.recipes import RECIPES


def _add_train(sub):
    p = sub.add_parser("train", help="train a classifier on a folder of class subfolders")
    add_flags(p)  # one flag per RunConfig field, its default and help from there
    p.add_argument("--out", required=True, help="run folder to write")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument("--resume", action="store_true",
                   help="continue the interrupted run in --out with its own settings (options given must match)")


class _Parser(argparse.ArgumentParser):
    """Reports a bad command line in one line, `error: ...`, with exit status 2 (like every other bad input)."""

    def error(self, message):
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def _build_parser():
    parser = _Parser(prog="keras-transfer", description="Transfer learning with Keras 3 backbones.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("backbones", help="list the backbone registry")
    _add_select(sub)
    _add_train(sub)
    _add_evaluate(sub)
    _add_predict(sub)
    _add_export(sub)
    demo = sub.add_parser("demo", help="offline demo: pretrained VGG16 vs scratch on real digits")
    demo.add_argument("--out", default="runs/demo", help="run folder (default runs/demo)")
    demo.add_argument("--labels-per-class", type=int, default=5, help="training images per class")
    demo.add_argument("--recipe", default="auto", choices=RECIPES, help="the pretrained model's recipe (default auto)")
    demo.add_argument("--whole", action="store_true", help="the whole VGG16 (through block5), not cut after block4")
    demo.add_argument("--seed", type=int, default=1337)
    return parser


def backbones_table():
    """The registry as a text table."""
    rows = [("name", "family", "preprocess", "default", "min", "params", "blocks")]
    for spec in list_backbones():
        rows.append((spec.name, spec.family, spec.preprocess, str(spec.default_size), str(spec.min_size),
                     f"{spec.params / 1e6:.1f}M", " ".join(spec.block_names)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1] for row in rows)


def _add_select(sub):
    p = sub.add_parser("select", help="rank backbones on your data (LogME, a cross-validated linear probe, "
                       "latency) before training")
    p.add_argument("data_dir", help="what `train` reads: class subfolders, a layout or a manifest")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--backbones", default=None, help="comma-separated registry names (default: --all-small)")
    which.add_argument("--all-small", action="store_true", help="every registry backbone under 8M parameters")
    p.add_argument("--weights", action="append", default=None, metavar="NAME=PATH",
                   help="a candidate's weights: NAME=PATH, NAME=imagenet or NAME=none (repeatable); a bare "
                   "imagenet | none | PATH applies to all (default: imagenet)")
    p.add_argument("--input-size", type=int, default=None, help="one square side for all (default: each one's own)")
    p.add_argument("--task", default="classification", choices=("classification", "regression", "multilabel"))
    p.add_argument("--modality", default="auto", choices=SELECT_MODALITIES, help="image or text encoders (default "
                   "auto: text for a text table or folders of .txt files)")
    p.add_argument("--sequence-length", type=int, default=None, help="tokens per text (default: each encoder's own)")
    p.add_argument("--max-images", type=int, default=None, help="at most N images (texts) per class (in all for a "
                   "regression or multi-label manifest)")
    p.add_argument("--views", default="auto", help="shifted views of each image for the probe (default auto: as "
                   "the default recipe)")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds of the probe (default 5)")
    p.add_argument("--rank-by", default="probe", choices=RANK_BY, help="the score that orders the candidates "
                   "(default probe); the other breaks ties")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--out", default="selection", help="folder for selection.json and selection.png "
                   "(default: selection)")


def _select(args):
    weights = args.weights
    if weights and len(weights) == 1 and "=" not in weights[0]:
        weights = weights[0]  # one value for every candidate
    views = args.views if args.views == "auto" else _int_flag("--views", args.views)
    selection = select_backbones(args.data_dir, args.out, backbones=args.backbones, all_small=args.all_small,
                                 weights=weights, input_size=args.input_size, task=args.task,
                                 modality=args.modality, sequence_length=args.sequence_length,
                                 max_images=args.max_images, views=views, folds=args.folds, rank_by=args.rank_by,
                                 batch_size=args.batch_size, seed=args.seed)
    print(selection.table())
    print(f"Wrote {args.out}")


def _int_flag(flag, value):
    try:
        return int(value)
    except ValueError:
        raise KerasTransferError(f"{flag} must be 'auto' or an integer >= 0. Received: {flag} {value}") from None


def _add_export(sub):
    p = sub.add_parser("export", help="export a run's best.keras (SavedModel, .keras or TFLite), checked first")
    p.add_argument("run_dir", help="run folder written by `train` (its best.keras), or a .keras file")
    p.add_argument("--format", default="saved_model", help="saved_model (default) | keras | tflite")
    p.add_argument("--out", required=True, help="path to write (must not exist; .keras / .tflite for those formats)")
    p.add_argument("--quantize", default=None, help="dynamic: dynamic-range quantisation (tflite only)")
    p.add_argument("--atol", type=float, default=None, help="largest difference accepted (default: per format)")


def _export(args):
    check_atol(args.atol)  # before the run is read or anything written
    print(api.export(args.run_dir, args.out, format=args.format, quantize=args.quantize, atol=args.atol).summary())


def _add_evaluate(sub):
    p = sub.add_parser("evaluate", help="evaluate a run's best.keras: accuracy, per-class scores, confusion matrix")
    p.add_argument("run_dir", help="run folder written by `train`")
    p.add_argument("data_dir", nargs="?", default=None,
                   help="labelled images to evaluate on (class subfolders or a manifest; default: the run's "
                   "test split from splits.json, else its validation split)")
    p.add_argument("--split", default=None, choices=("test", "val"), help="split of splits.json (default: test "
                   "if it holds images, else val)")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--worst", type=int, default=10, help="most confidently wrong examples to list")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--out", default=None, help="folder for report.json, report.txt, confusion_matrix.png "
                   "(default: RUN_DIR)")


def check_counts(args):
    """Refuses a count option out of its range in one line, before a run, a model or an image is read."""
    for name, low, high in COUNTS:
        value = getattr(args, name, None)
        if value is not None and not low <= value <= high:
            flag = "--" + name.replace("_", "-")
            raise KerasTransferError(f"{flag} must be an integer in [{low}, {high}]. Received: {name}={value!r}")


def check_source(path, what):
    """Refuses a run folder or model file that does not exist, before anything is written for it."""
    if not os.path.exists(path):
        raise KerasTransferError(f"{what} not found: {path}. Give a run folder written by `train` or a .keras "
                                 f"file. Received: run_dir={path!r}")


def _evaluate(args):
    check_counts(args)
    check_source(args.run_dir, "Run folder")
    report, source, written = api.evaluate_run(args.run_dir, args.data_dir, split=args.split, top_k=args.top_k,
                                               worst=args.worst, batch_size=args.batch_size,
                                               out=args.out or args.run_dir)
    unit = "texts" if run_modality(args.run_dir) == "text" else "images"
    print(f"Evaluated {args.run_dir} on {source} ({report.n} {unit})\n{report.summary()}", end="")
    print(f"Wrote {', '.join(written)}")


def _add_predict(sub):
    p = sub.add_parser("predict", help="predict the classes of image files (texts, for a text run) with a run's "
                       "best.keras")
    p.add_argument("run_dir", help="run folder written by `train` (its best.keras), or a .keras file")
    p.add_argument("inputs", nargs="+", help="image files and folders (searched recursively); for a text run: "
                   "texts, .txt files, folders of them, .csv/.tsv/.jsonl tables (their text column)")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--format", default="table", choices=("table", "json", "csv"))
    p.add_argument("--tta", action="store_true", help="average with the horizontally flipped image")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--strict", action="store_true", help="stop at an unreadable image file instead of skipping it")


def _predict(args):
    check_counts(args)
    text = run_modality(args.run_dir) == "text"
    if text and args.tta:
        raise KerasTransferError("--tta flips images; a text run has none to flip. Received: tta=True")
    images = {} if text else dict(tta=args.tta)  # api.predict: a run folder's resize rule is its own
    results = api.predict(args.run_dir, args.inputs, top_k=args.top_k, batch_size=args.batch_size, strict=args.strict,
                          **images)
    for r in results:
        if "skipped" in r:  # named on stderr, as training names them; the predictions go to stdout
            print(f"skipped {r['path']}: {r['skipped']}", file=sys.stderr)
    results = [r for r in results if "skipped" not in r]
    if not results:
        raise KerasTransferError(f"No readable {'text' if text else 'image'} among the inputs (each is named above). "
                                 f"Received: inputs={args.inputs!r}")
    if "top" not in results[0]:  # a regression or multi-label model: its values, or labels and probabilities
        print(json.dumps(results, indent=2))
    elif args.format == "json":
        print(json.dumps([{"path": r["path"], "top": [{"class": c, "probability": p} for c, p in r["top"]]}
                          for r in results], indent=2))
    elif args.format == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["path", "rank", "class", "probability"])
        for r in results:
            writer.writerows([r["path"], rank, c, f"{p:.6f}"] for rank, (c, p) in enumerate(r["top"], 1))
    else:
        width = max(len(r["path"]) for r in results)
        for r in results:
            print(f"{r['path']:<{width}}  " + "  ".join(f"{c} {p:.4f}" for c, p in r["top"]))


def _train(args):
    settings = given_settings(args)
    if args.resume:
        resume_run(args.out, **settings)
    else:
        train_from_folder(settings.pop("data_dir", None), args.out, overwrite=args.overwrite, **settings)
    print(f"Run folder: {args.out}")


@contextlib.contextmanager
def _log_to_stdout():
    """Shows keras_transfer's log lines (data summary, progress notes) on stdout while a command runs."""
    logger = logging.getLogger("keras_transfer")
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _backbones(args):
    print(backbones_table())


def _demo(args):
    check_demo_args(args.labels_per_class, DEMO_TEST_PER_CLASS, args.seed)
    run_demo(args.out, labels_per_class=args.labels_per_class, recipe=args.recipe, seed=args.seed,
             cut="block5_pool" if args.whole else DEMO_CUT)


COUNTS = (("top_k", 1, 10_000), ("worst", 0, 10_000), ("batch_size", 1, MAXIMUM["batch_size"]))
COMMANDS = {"backbones": _backbones, "select": _select, "train": _train, "evaluate": _evaluate, "predict": _predict,
            "export": _export, "demo": _demo}


def _one_line(text, limit=600):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + " ..."


def resumable(command, out):
    """True when `out` holds a checkpoint a `train --resume` can continue from (`last.keras`)."""
    return command == "train" and out is not None and os.path.isfile(os.path.join(out, LAST_MODEL))


def describe(error, command, out=None):
    """`(one line, exit status)` for any exception: 2 for bad input, 1 for a failure during work. The hint to
    continue with --resume is given only where `out` holds a checkpoint to resume from."""
    if isinstance(error, KerasTransferError):
        return _one_line(error), error.exit_code
    if isinstance(error, OSError) and error.filename is not None:
        return _one_line(f"{error.strerror or error}: {error.filename}"), 2  # a file or folder given cannot be used
    again = " Continue with --resume: the last finished epoch is kept." if resumable(command, out) else ""
    return _one_line(f"{command} failed: {_innermost(error)}", 400) + f" (run with --debug for the traceback).{again}", 1


def _innermost(error):
    """`Name: message` of the error that started it all: TensorFlow wraps an error raised inside tf.data (e.g. an
    image file deleted mid-run) in its own, with the original's traceback as text."""
    text = str(error).split("Traceback (most recent call last)")[0]
    found = re.findall(r"\b([A-Z]\w*(?:Error|Exception)): (.*?)(?=\s+\b[A-Z]\w*(?:Error|Exception): |$)", text, re.S)
    return "{}: {}".format(*found[-1]) if found else f"{type(error).__name__}: {text}"


def main(argv=None):
    """Runs the command line; every failure ends in one line on stderr (`--debug` shows the traceback)."""
    args = _build_parser().parse_args(argv)
    try:
        with _log_to_stdout():
            COMMANDS[args.command](args)
    except KeyboardInterrupt:
        if args.debug:
            raise
        again = (" Continue with --resume: the last finished epoch is kept."
                 if resumable(args.command, getattr(args, "out", None)) else "")
        print(f"error: interrupted.{again}", file=sys.stderr)
        return 130
    except Exception as error:  # the one error boundary: no traceback without --debug
        if args.debug:
            raise
        line, code = describe(error, args.command, getattr(args, "out", None))
        print(f"error: {line}", file=sys.stderr)
        return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
