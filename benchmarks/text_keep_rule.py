"""Which weights `lp_ft` should keep after fine-tuning a text encoder: the rule by validation loss (before issue 24)
or by validation accuracy with the loss breaking ties (now), measured on held-out texts.

Each run fits the linear probe on the pretrained all-MiniLM-L6-v2 and fine-tunes it (`recipe="lp_ft"`, the top 2
blocks, AdamW 3e-5, warmup + cosine), recording the probe's and the fine-tuned weights. Both rules are then
applied to the same pair, so one run scores both:

- loss rule: the fine-tuned weights are kept if an epoch's validation loss beat the probe's;
- accuracy rule: they are kept if their validation accuracy is higher, or equal with a lower loss.

Tasks: the text demo (stdlib docstrings by module family, `text_demo.FAMILIES`) and a second real task, stdlib
docstrings of other modules by topic (`TOPICS`: formats, archives, debugging, containers, command line,
security), at `--per-class` training texts a class, 8 validation and 50 test texts a class, sequence length 64.

    KERAS_BACKEND=tensorflow nice -n 15 python benchmarks/text_keep_rule.py
    KERAS_BACKEND=jax nice -n 15 python benchmarks/text_keep_rule.py --per-class 8 32 --seeds 0
"""

import argparse
import csv
import os
import tempfile
import time

import keras
import numpy as np

from keras_transfer.data.texts import load_texts, read_texts
from keras_transfer.models.classifier import class_indices
from keras_transfer.models.text_classifier import build_text_classifier
from keras_transfer.text_demo import MIN_CHARS, _documented, write_corpus
from keras_transfer.training import phases
from keras_transfer.training.recipes import run_recipe

TOPICS = {
    "formats": ("json", "csv", "xml.etree.ElementTree", "html.parser", "configparser", "plistlib", "email.message",
                "tomllib"),
    "archives": ("zlib", "gzip", "bz2", "lzma", "zipfile", "tarfile", "shelve", "pickle"),
    "debugging": ("inspect", "traceback", "pdb", "logging", "warnings", "dis", "tracemalloc", "faulthandler"),
    "containers": ("collections", "heapq", "bisect", "itertools", "functools", "operator", "array", "copy"),
    "cli": ("argparse", "getopt", "cmd", "shlex", "optparse", "readline", "curses"),
    "security": ("hashlib", "hmac", "secrets", "base64", "binascii", "uuid", "ssl"),
}
VAL, TEST, LENGTH = 8, 50, 64


def write_topics(path):
    seen, rows = set(), []
    for topic, modules in TOPICS.items():
        for module in modules:
            for text, _ in _documented(module):
                if len(text) >= MIN_CHARS and text not in seen:
                    seen.add(text)
                    rows.append((text, topic))
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("text", "label")] + rows)
    return path


def _accuracy(model, weights, data, truth):
    model.set_weights(weights)
    predicted = np.concatenate([class_indices(model.predict_on_batch(keras.tree.map_structure(np.asarray, x)))
                                for x, _ in data.test])
    return float((predicted == truth).mean())


def run_one(source, per_class, seed):
    """`{probe, tuned, loss_rule, accuracy_rule}` held-out accuracies, and the seconds the run took."""
    start_time = time.time()
    keras.utils.set_random_seed(seed)
    model, preprocessor = build_text_classifier("all_minilm_l6_v2", len(read_texts(source).class_names),
                                                sequence_length=LENGTH, seed=seed)
    data = load_texts(source, preprocessor, batch_size=16, seed=seed, per_class=(per_class, VAL, TEST))
    seen, original = {}, phases._keep_better

    def record(model, start, val, history, preset, callbacks):
        seen["probe"], seen["tuned"] = start[0], model.get_weights()
        seen["loss_rule"] = min(history.history["val_loss"]) < -start[1][1]  # True: keep the fine-tuned weights
        seen["accuracy_rule"] = phases._validation_score(model, val) > start[1]
        original(model, start, val, history, preset, callbacks)

    phases._keep_better = record
    try:
        run_recipe(model, data.train, data.val, recipe="lp_ft", pretrained=True,
                   num_examples=len(data.splits.labels("train")), verbose=0)
    finally:
        phases._keep_better = original
    truth = np.asarray(data.splits.labels("test"))
    probe, tuned = (_accuracy(model, seen[k], data, truth) for k in ("probe", "tuned"))
    return dict(probe=probe, tuned=tuned, loss_rule=tuned if seen["loss_rule"] else probe,
                accuracy_rule=tuned if seen["accuracy_rule"] else probe, seconds=time.time() - start_time)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-class", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--tasks", nargs="+", default=["demo", "topics"])
    args = parser.parse_args(argv)
    folder = tempfile.mkdtemp()
    sources = {"demo": write_corpus(os.path.join(folder, "demo.csv")),
               "topics": write_topics(os.path.join(folder, "topics.csv"))}
    print(f"| task | a class | backend | seed | probe | fine-tuned | loss rule | accuracy rule | seconds |")
    print("|---|---|---|---|---|---|---|---|---|")
    for task in args.tasks:
        for per_class in args.per_class:
            for seed in args.seeds:
                r = run_one(sources[task], per_class, seed)
                print(f"| {task} | {per_class} | {keras.backend.backend()} | {seed} | {r['probe']:.3f} | "
                      f"{r['tuned']:.3f} | {r['loss_rule']:.3f} | {r['accuracy_rule']:.3f} | {r['seconds']:.0f} |",
                      flush=True)


if __name__ == "__main__":
    main()
