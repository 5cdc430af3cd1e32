"""The text demo, smaller: the pretrained all-MiniLM-L6-v2 against the same architecture from random
initialisation, on the same few labelled docstrings, scored on held-out ones; prints both accuracies and the margin.

This was `tests/test_text_recipes.py::test_pretrained_minilm_beats_the_same_architecture_from_scratch` (466 s on
TensorFlow, 238 s on JAX in CI, the suite's slowest test): a quality measurement, not a check of the plumbing, so
it runs here and the test suite keeps a run of the same `compare` with its epochs cut. Defaults are the former
test's settings: 3 families (maths, network, time), 4 training and 4 validation docstrings a class, 10 held out a
class, 24 tokens, the library's default batch (12 texts: batch 3, so scratch's 300 steps are 75 epochs). The
test asserted pretrained >= scratch + 0.2 and pretrained >= 0.6; the script says whether a run meets that bar
(and exits 1 if not, so a CI job can run it).

    KERAS_BACKEND=tensorflow python benchmarks/text_margin.py
    KERAS_BACKEND=jax python benchmarks/text_margin.py --seeds 0 1 2
"""

import argparse
import os
import sys
import tempfile

import keras

from keras_transfer.text_demo import compare, write_corpus

FAMILIES = ("maths", "network", "time")
MIN_MARGIN, MIN_PRETRAINED = 0.2, 0.6  # the former test's bar


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-class", type=int, default=4)
    parser.add_argument("--val-per-class", type=int, default=4)
    parser.add_argument("--test-per-class", type=int, default=10)
    parser.add_argument("--sequence-length", type=int, default=24)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()
    print(f"backend {keras.backend.backend()}, families {', '.join(FAMILIES)}, {args.per_class} + "
          f"{args.val_per_class} a class, {args.test_per_class} held out a class, {args.sequence_length} tokens")
    print("| seed | pretrained (s) | scratch (s) | margin |")
    print("|---|---|---|---|")
    met = True
    with tempfile.TemporaryDirectory() as tmp:
        source = write_corpus(os.path.join(tmp, "docstrings.csv"), families=FAMILIES)
        for seed in args.seeds:
            results = compare(source, per_class=args.per_class, val_per_class=args.val_per_class,
                              test_per_class=args.test_per_class, sequence_length=args.sequence_length, seed=seed,
                              batch_size=None)
            (pretrained, p_s, _), (scratch, s_s, _) = results["pretrained"], results["scratch"]
            print(f"| {seed} | {pretrained:.3f} ({p_s:.0f}) | {scratch:.3f} ({s_s:.0f}) | {pretrained - scratch:+.3f} |")
            met = met and pretrained >= scratch + MIN_MARGIN and pretrained >= MIN_PRETRAINED
    print(f"bar (margin >= +{MIN_MARGIN}, pretrained >= {MIN_PRETRAINED}): {'met' if met else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
