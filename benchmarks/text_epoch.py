"""Time per epoch of text fine-tuning: the default text recipe's fine-tuning phase vs the same training written
by hand in Keras/KerasHub.

Both fine-tune the real all-MiniLM-L6-v2 (the local Hugging Face folder, converted by KerasHub) on the same
`tf.data` pipeline of real texts (the text demo's docstrings, tokenised in the pipeline), batch 16, at each
`--sequence-lengths`:

- keras_transfer: `build_text_classifier("all_minilm_l6_v2")`, then the `fine_tune` phase that the default
  recipe plans at 20+ texts a class (`auto` -> `lp_ft`: top 2 blocks, AdamW 3e-5, warmup + cosine), run by
  `run_phases` with its epochs cut to `--epochs`;
- by hand: `keras_hub.models.BertBackbone.from_preset(folder)`, mean pooling over the padding mask, a Dense
  softmax, the top 2 transformer layers trainable, AdamW 3e-5 with warmup + cosine, `model.fit`, Keras's own
  defaults otherwise.

An epoch is `--steps` steps; the first epoch of each run (tracing, compiling) is left out, the others are timed
by a callback. Runs alternate between the two over `--repeats`; the script prints the median seconds per epoch,
texts per second and the ratio (keras_transfer / by hand) per sequence length.

    KERAS_BACKEND=tensorflow python benchmarks/text_epoch.py
    KERAS_BACKEND=jax python benchmarks/text_epoch.py --sequence-lengths 64 --repeats 1
"""

import argparse
import dataclasses
import statistics
import time

import keras
import keras_hub

from keras_transfer.data.texts import text_dataset
from keras_transfer.models.text_classifier import SequencePooling, build_text_classifier
from keras_transfer.models.text_registry import get_text_backbone_spec
from keras_transfer.text_demo import docstring_corpus
from keras_transfer.training.phases import run_phases
from keras_transfer.training.recipes import DataSize
from keras_transfer.training.recipes import TEXT_FINE_TUNE_RATE, plan_text_recipe

BATCH = 16


class EpochTimer(keras.callbacks.Callback):
    """Seconds of each epoch."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def texts(count):
    """`(texts, labels)`: `count` docstrings of the demo corpus, taken from its six families in turn."""
    by_family = {}
    for text, family in docstring_corpus():
        by_family.setdefault(family, []).append(text)
    families = sorted(by_family)
    labels = [i % len(families) for i in range(count)]
    return [by_family[families[k]][i // len(families)] for i, k in enumerate(labels)], labels


def ours(folder, sequence_length, train, classes, epochs, steps):
    model, _ = build_text_classifier("all_minilm_l6_v2", classes, sequence_length=sequence_length, seed=0)
    _, phases, _ = plan_text_recipe("lp_ft", DataSize(images=steps * BATCH, classes=classes, batch=BATCH))
    name, preset = phases[-1]
    assert name == "fine_tune", phases
    timer = EpochTimer()
    run_phases(model, train, None, [(name, dataclasses.replace(preset, epochs=epochs))], callbacks=[timer], verbose=0)
    return timer.seconds


def by_hand(folder, sequence_length, train, classes, epochs, steps):
    encoder = keras_hub.models.BertBackbone.from_preset(folder)
    inputs = {key: keras.Input((sequence_length,), dtype="int32", name=key) for key in encoder.input}
    x = SequencePooling("mean")(encoder(inputs)["sequence_output"], inputs["padding_mask"])
    x = keras.layers.Dropout(0.1)(x)
    model = keras.Model(inputs, keras.layers.Dense(classes, activation="softmax")(x))
    top_two = {f"transformer_layer_{i}" for i in range(encoder.num_layers - 2, encoder.num_layers)}
    for layer in encoder.layers:
        layer.trainable = layer.name in top_two
    total = epochs * steps
    schedule = keras.optimizers.schedules.CosineDecay(0.0, total - total // 10, warmup_target=TEXT_FINE_TUNE_RATE,
                                                      warmup_steps=total // 10)
    model.compile(keras.optimizers.AdamW(schedule), "sparse_categorical_crossentropy", metrics=["accuracy"])
    timer = EpochTimer()
    model.fit(train, epochs=epochs, callbacks=[timer], verbose=0)
    return timer.seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sequence-lengths", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--steps", type=int, default=4, help="steps of 16 texts an epoch")
    parser.add_argument("--epochs", type=int, default=3, help="epochs a run (the first is not timed)")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    folder = get_text_backbone_spec("all_minilm_l6_v2").source()
    rows, labels = texts(args.steps * BATCH)
    classes = len(set(labels))
    print(f"backend {keras.backend.backend()}, all-MiniLM-L6-v2, {len(rows)} texts an epoch ({args.steps} steps of "
          f"{BATCH}), {args.epochs} epochs a run (first untimed), {args.repeats} repeats")
    print("| sequence length | keras_transfer s/epoch (texts/s) | by hand s/epoch (texts/s) | ratio |")
    print("|---|---|---|---|")
    for length in args.sequence_lengths:
        times = {"ours": [], "hand": []}
        for _ in range(args.repeats):
            for key, run in (("ours", ours), ("hand", by_hand)):
                keras.utils.set_random_seed(0)
                preprocessor = keras_hub.models.BertTextClassifierPreprocessor.from_preset(folder,
                                                                                           sequence_length=length)
                train = text_dataset(rows, labels, preprocessor, batch_size=BATCH, shuffle=True, seed=0)
                times[key] += run(folder, length, train, classes, args.epochs, args.steps)[1:]
                keras.backend.clear_session()
        ours_s, hand_s = statistics.median(times["ours"]), statistics.median(times["hand"])
        n = len(rows)
        print(f"| {length} | {ours_s:.2f} ({n / ours_s:.1f}) | {hand_s:.2f} ({n / hand_s:.1f}) "
              f"| {ours_s / hand_s:.2f} |", flush=True)


if __name__ == "__main__":
    main()
