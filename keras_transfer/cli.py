"""The `keras-transfer` command: `backbones`, `train`, `evaluate`, `predict`, `export`, `demo`.

Bad input is reported in one line (`error: ...`) with exit status 2; `--debug` shows the traceback.
"""

import argparse
import sys

from keras_transfer.errors import KerasTransferError


def _weights(value):
    return None if value.lower() == "none" else value


def _add_train(sub):
    from keras_transfer.runs.train import STRATEGIES

    p = sub.add_parser("train", help="train a classifier on a folder of class subfolders")
    p.add_argument("data_dir", nargs="?", default=None,
                   help="folder with one subfolder of images per class (or train/ val/ test/ "
                   "subfolders of those), or a CSV/JSON manifest of path,label rows (with --resume: optional)")
    p.add_argument("--backbone", default="mobilenetv2", help="registry name (see `keras-transfer backbones`)")
    p.add_argument("--weights", default="imagenet", type=_weights, help="imagenet | none | PATH to a weights file")
    p.add_argument("--input-size", type=int, default=None, help="square input side (default: the backbone's)")
    p.add_argument("--strategy", default="top_blocks", choices=STRATEGIES,
                   help="head_only trains the head; the others run head first, then unfreeze this way")
    p.add_argument("--blocks", type=int, default=2, help="top blocks to unfreeze (top_blocks, gradual)")
    p.add_argument("--layer", default=None, help="first backbone layer to unfreeze (from_layer)")
    p.add_argument("--epochs", type=int, default=5, help="epochs of the head phase")
    p.add_argument("--fine-tune-epochs", type=int, default=None, help="epochs of the fine-tuning phase (default: --epochs)")
    p.add_argument("--learning-rate", type=float, default=None, help="head phase rate (default 1e-3)")
    p.add_argument("--fine-tune-learning-rate", type=float, default=None, help="fine-tuning rate (default 1e-5)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--validation-split", type=float, default=0.2)
    p.add_argument("--test-split", type=float, default=0.0, help="share of each class held out for testing")
    p.add_argument("--strict", action="store_true", help="stop before training if any image file is unreadable")
    p.add_argument("--class-weight", default=None, choices=("balanced",), help="weigh classes by n / (k * count)")
    p.add_argument("--augmentation", default="light", help="none | flip | light | geometric")
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--out", required=True, help="run folder to write")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument("--resume", action="store_true",
                   help="continue the interrupted run in --out with its own settings (options given must match)")
    p.add_argument("--cache-features", action="store_true",
                   help="train the head phase on backbone features computed once (needs --augmentation none)")
    p.add_argument("--cache-dir", default=None, help="stream cached features to this folder (default: in memory)")
    p.add_argument("--precision", default="float32", choices=("float32", "mixed_bfloat16", "mixed_float16"))
    p.add_argument("--jit-compile", default="auto", choices=("auto", "true", "false"),
                   help="XLA compilation (auto: off on a CPU-only TensorFlow, on for JAX)")


class _Parser(argparse.ArgumentParser):
    """Reports a bad command line in one line, `error: ...`, with exit status 2 (like every other bad input)."""

    def error(self, message):
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def _build_parser():
    parser = _Parser(prog="keras-transfer", description="Transfer learning with Keras 3 backbones.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("backbones", help="list the backbone registry")
    _add_train(sub)
    _add_evaluate(sub)
    _add_predict(sub)
    _add_export(sub)
    demo = sub.add_parser("demo", help="offline demo: pretrained VGG16 vs scratch on real digits")
    demo.add_argument("--out", default="runs/demo", help="run folder (default runs/demo)")
    demo.add_argument("--labels-per-class", type=int, default=5, help="training images per class")
    demo.add_argument("--seed", type=int, default=1337)
    return parser


def backbones_table():
    """The registry as a text table."""
    from keras_transfer.models.registry import list_backbones

    rows = [("name", "family", "preprocess", "default", "min", "params", "blocks")]
    for spec in list_backbones():
        rows.append((spec.name, spec.family, spec.preprocess, str(spec.default_size), str(spec.min_size),
                     f"{spec.params / 1e6:.1f}M", " ".join(spec.block_names)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1] for row in rows)


def _add_export(sub):
    p = sub.add_parser("export", help="export a run's best.keras (SavedModel, .keras or TFLite), checked first")
    p.add_argument("run_dir", help="run folder written by `train` (its best.keras), or a .keras file")
    p.add_argument("--format", default="saved_model", help="saved_model (default) | keras | tflite")
    p.add_argument("--out", required=True, help="path to write (must not exist; .keras / .tflite for those formats)")
    p.add_argument("--quantize", default=None, help="dynamic: dynamic-range quantisation (tflite only)")
    p.add_argument("--atol", type=float, default=None, help="largest difference accepted (default: per format)")


def _export(args):
    from keras_transfer.serving.export import export

    print(export(args.run_dir, args.out, format=args.format, quantize=args.quantize, atol=args.atol).summary())


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


def _evaluate(args):
    from keras_transfer.serving.evaluation import evaluate, evaluation_images, write_report
    from keras_transfer.serving.predict import default_class_names, load_model

    model, names = load_model(args.run_dir)
    names = default_class_names(model, names)
    paths, labels, source = evaluation_images(args.run_dir, names, data_dir=args.data_dir, split=args.split)
    print(f"Evaluating {args.run_dir} on {source} ({len(paths)} images)")
    report = evaluate(model, (paths, labels), class_names=names, top_k=args.top_k, worst=args.worst,
                      batch_size=args.batch_size)
    written = write_report(report, args.out or args.run_dir)
    print(report.summary(), end="")
    print(f"Wrote {', '.join(written)}")


def _add_predict(sub):
    p = sub.add_parser("predict", help="predict the classes of image files with a run's best.keras")
    p.add_argument("run_dir", help="run folder written by `train` (its best.keras), or a .keras file")
    p.add_argument("inputs", nargs="+", help="image files and folders (searched recursively)")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--format", default="table", choices=("table", "json", "csv"))
    p.add_argument("--tta", action="store_true", help="average with the horizontally flipped image")
    p.add_argument("--batch-size", type=int, default=32)


def _predict(args):
    import csv
    import json

    from keras_transfer.serving.predict import predict

    results = predict(args.run_dir, args.inputs, top_k=args.top_k, tta=args.tta, batch_size=args.batch_size)
    if args.format == "json":
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


def _given(args):
    """The train options given on the command line (those that differ from the defaults), by argument name."""
    parser = _build_parser()
    defaults = vars(parser.parse_args(["train", "--out", args.out]))
    names = {"blocks": "n"}
    skip = {"command", "debug", "out", "resume", "overwrite"}
    return {names.get(k, k): v for k, v in vars(args).items() if k not in skip and v != defaults.get(k)}


def _train(args):
    from keras_transfer.runs.train import train_from_folder

    if args.resume:
        from keras_transfer.runs.resume import resume_run

        resume_run(args.out, **_given(args))
        print(f"Run folder: {args.out}")
        return
    if args.data_dir is None:
        raise KerasTransferError("train needs data_dir (a folder of class subfolders or a manifest), unless "
                                 "--resume continues the run in --out. Received: data_dir=None")

    train_from_folder(
        args.data_dir, args.out, backbone=args.backbone, weights=args.weights, input_size=args.input_size,
        strategy=args.strategy, n=args.blocks, layer=args.layer, epochs=args.epochs,
        fine_tune_epochs=args.fine_tune_epochs, batch_size=args.batch_size, validation_split=args.validation_split,
        augmentation=args.augmentation, dropout=args.dropout, learning_rate=args.learning_rate,
        fine_tune_learning_rate=args.fine_tune_learning_rate, seed=args.seed, overwrite=args.overwrite,
        test_split=args.test_split, strict=args.strict, class_weight=args.class_weight,
        cache_features=args.cache_features, cache_dir=args.cache_dir, precision=args.precision,
        jit_compile=args.jit_compile)
    print(f"Run folder: {args.out}")


def main(argv=None):
    args = _build_parser().parse_args(argv)
    try:
        if args.command == "backbones":
            print(backbones_table())
        elif args.command == "train":
            _train(args)
        elif args.command == "evaluate":
            _evaluate(args)
        elif args.command == "predict":
            _predict(args)
        elif args.command == "export":
            _export(args)
        elif args.command == "demo":
            from keras_transfer.demo import run_demo

            run_demo(args.out, labels_per_class=args.labels_per_class, seed=args.seed)
    except (KerasTransferError, OSError) as error:
        if args.debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
