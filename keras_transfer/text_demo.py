"""The offline text demo: the pretrained all-MiniLM-L6-v2 against the same architecture from random
initialisation, on the same few labelled texts, scored on held-out texts.

The data are real texts with honest labels and no download: the first paragraph of the docstring of every
public function, class and method of 42 Python standard-library modules, labelled by the family of the module
it comes from (files, maths, text, network, concurrency, time). Nothing is templated or written for the
demo; a docstring's label is where Python's authors put that function. (No package installed here ships a
labelled natural-language data set: scikit-learn's 20 newsgroups downloads, for one.)

    python -m keras_transfer.text_demo [--per-class 8] [--sequence-length 64]
"""

import argparse
import csv
import importlib
import inspect
import os
import re
import tempfile
import time

import keras

from keras_transfer.data.texts import load_texts, read_texts
from keras_transfer.models.classifier import class_indices
from keras_transfer.models.text_classifier import build_text_classifier
from keras_transfer.serving.predict import model_outputs
from keras_transfer.training.recipes import run_recipe

FAMILIES = {
    "files": ("os", "os.path", "shutil", "pathlib", "glob", "tempfile", "stat", "filecmp", "fnmatch"),
    "maths": ("math", "cmath", "statistics", "decimal", "fractions", "random", "numbers"),
    "text": ("re", "string", "textwrap", "difflib", "unicodedata", "codecs"),
    "network": ("socket", "ssl", "http.client", "http.server", "urllib.request", "urllib.parse", "smtplib",
                "ftplib", "ipaddress"),
    "concurrency": ("threading", "multiprocessing", "asyncio", "concurrent.futures", "queue", "subprocess", "sched"),
    "time": ("datetime", "time", "calendar", "zoneinfo"),
}
_SIGNATURE = re.compile(r"^[\w.]+\(.*\)\s*(-+>.*)?$")  # "gethostbyname(host) -> address": a signature, not prose
MIN_CHARS = 20


def first_paragraph(doc):
    """The first paragraph of a docstring that is prose (signature lines and `--` skipped), on one line."""
    for paragraph in inspect.cleandoc(doc).split("\n\n"):
        lines = [line for line in paragraph.strip().splitlines() if not _SIGNATURE.match(line.strip())
                 and line.strip() != "--"]
        text = " ".join(" ".join(lines).split())
        if text:
            return text
    return ""


def _documented(module_name):
    """`(text, where)` of each public function, class and method defined in the module (or its C part)."""
    module = importlib.import_module(module_name)
    top = module_name.split(".")[0]
    for name, obj in sorted(vars(module).items()):
        owner = str(getattr(obj, "__module__", "") or "")
        if name.startswith("_") or not (inspect.isroutine(obj) or inspect.isclass(obj)):
            continue
        if not (owner.lstrip("_").startswith(top) or (top, owner) == ("os", "posix")):
            continue  # imported from elsewhere (heapq in queue): its label would not be this module's
        members = [(name, obj)]
        if inspect.isclass(obj):
            members += [(f"{name}.{k}", v) for k, v in sorted(vars(obj).items())
                        if not k.startswith("_") and inspect.isroutine(v)]
        for where, member in members:
            doc = getattr(member, "__doc__", None)
            if isinstance(doc, str):
                yield first_paragraph(doc), f"{module_name}.{where}"


def docstring_corpus(families=None):
    """`[(text, family)]`: each distinct docstring paragraph once, under the family of its first module."""
    seen, rows = set(), []
    for family, modules in FAMILIES.items():
        if families and family not in families:
            continue
        for module_name in modules:
            for text, _ in _documented(module_name):
                if len(text) >= MIN_CHARS and text not in seen:
                    seen.add(text)
                    rows.append((text, family))
    return rows


def write_corpus(path, families=None):
    """Writes `docstring_corpus(families)` as a `text,label` CSV at `path`; returns `path`."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(docstring_corpus(families))
    return path


def compare(source, *, per_class=8, val_per_class=8, test_per_class=30, sequence_length=64, seed=0, verbose=0,
            batch_size=16, options=None, backbone="all_minilm_l6_v2"):
    """Trains the pretrained and the random-initialised MiniLM by the default text recipe on the same split;
    returns `{"pretrained"|"scratch": (held-out accuracy, seconds, plan)}`. `batch_size=None`: the library's
    default (16, at most a quarter of the training texts); the results table (docs/results.md) was measured at 16. `options`: a
    `RecipeOptions` for both runs (the tests cut the epochs with it; the demo leaves the recipe its budget).
    `backbone`: the encoder compared, a registry name or a folder (the tests pass a tiny random BERT preset folder:
    the plumbing does not depend on MiniLM's size)."""
    results = {}
    for pretrained in (True, False):
        start = time.time()
        keras.utils.set_random_seed(seed)
        model, preprocessor = build_text_classifier(backbone, len(read_texts(source).class_names),
                                                    weights="pretrained" if pretrained else None,
                                                    sequence_length=sequence_length, seed=seed)
        data = load_texts(source, preprocessor, batch_size=batch_size, seed=seed,
                          per_class=(per_class, val_per_class, test_per_class))
        result = run_recipe(model, data.train, data.val, pretrained=pretrained, options=options,
                            num_examples=len(data.splits.labels("train")), verbose=verbose)
        outputs, truth, _ = model_outputs(model, data.test)
        results["pretrained" if pretrained else "scratch"] = (float((class_indices(outputs) == truth).mean()),
                                                              time.time() - start, result.plan)
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-class", type=int, default=8)
    parser.add_argument("--sequence-length", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        source = write_corpus(os.path.join(tmp, "docstrings.csv"))
        results = compare(source, per_class=args.per_class, sequence_length=args.sequence_length, seed=args.seed)
    for name, (accuracy, seconds, plan) in results.items():
        print(f"{keras.backend.backend()} {name}: held-out accuracy {accuracy:.3f} ({seconds:.0f} s)")
        print("  " + "\n  ".join(plan))
    margin = results["pretrained"][0] - results["scratch"][0]
    print(f"margin {margin:+.3f}")
    return results


if __name__ == "__main__":
    main()
