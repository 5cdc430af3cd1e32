"""Feature caching of a frozen text encoder: the head phase on cached pooled features vs the same phase run
through the encoder every epoch.

The real all-MiniLM-L6-v2 (the local Hugging Face folder) with a new head, on real texts (the text demo's
docstrings, `--texts` for training and a quarter more for validation, tokenised in the `tf.data` pipeline),
batch 16: the `two_phase` recipe with `strategy="head_only"` (one gradient head phase, `--epochs` epochs, the
encoder frozen) run by `run_recipe`, once with `cache_features=True` (the encoder runs once per text, then
the head trains on the pooled features) and once without (the encoder runs every epoch, on the training and the
validation texts). Both timings cover the phase from token ids to a trained model (the model is built once and
its head reset before each run: loading the encoder is the same for both). Runs alternate over `--repeats`;
the script prints the medians and their ratio.

    KERAS_BACKEND=tensorflow python benchmarks/text_cache.py
    KERAS_BACKEND=jax python benchmarks/text_cache.py --texts 64 --epochs 5 --repeats 2
"""

import argparse
import statistics
import time

import keras

from keras_transfer.data.texts import text_dataset
from keras_transfer.models.text_classifier import build_text_classifier
from keras_transfer.training.recipes import RecipeOptions
from keras_transfer.training.recipes import run_recipe

from text_epoch import BATCH, texts


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=128, help="training texts (validation: a quarter more)")
    parser.add_argument("--epochs", type=int, default=10, help="epochs of the head phase")
    parser.add_argument("--sequence-length", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows, labels = texts(args.texts + args.texts // 4)
    model, preprocessor = build_text_classifier("all_minilm_l6_v2", len(set(labels)),
                                                sequence_length=args.sequence_length, seed=0)
    train = text_dataset(rows[:args.texts], labels[:args.texts], preprocessor, batch_size=BATCH, shuffle=True, seed=0)
    val = text_dataset(rows[args.texts:], labels[args.texts:], preprocessor, batch_size=BATCH)
    start = model.get_weights()
    options = RecipeOptions(strategy="head_only", head_epochs=args.epochs)
    times, accuracy = {True: [], False: []}, {}
    for _ in range(args.repeats):
        for cached in (True, False):
            model.set_weights(start)
            began = time.perf_counter()
            result = run_recipe(model, train, val, recipe="two_phase", options=options, num_examples=args.texts,
                                cache_features=cached, verbose=0)
            times[cached].append(time.perf_counter() - began)
            accuracy[cached] = result.histories[0].history["val_accuracy"][-1]
    cached_s, plain_s = statistics.median(times[True]), statistics.median(times[False])
    print(f"backend {keras.backend.backend()}, all-MiniLM-L6-v2, {args.texts} training + {len(rows) - args.texts} "
          f"validation texts of {args.sequence_length} tokens, batch {BATCH}, head phase {args.epochs} epochs, "
          f"{args.repeats} repeats")
    print("| head phase | median s | runs (s) | final val accuracy |")
    print("|---|---|---|---|")
    for cached, label in ((False, "through the encoder every epoch"), (True, "cached features")):
        runs = ", ".join(f"{t:.1f}" for t in times[cached])
        print(f"| {label} | {statistics.median(times[cached]):.1f} | {runs} | {accuracy[cached]:.3f} |")
    print(f"speed-up (median uncached / median cached): {plain_s / cached_s:.1f}x")


if __name__ == "__main__":
    main()
