"""The `scratch` recipe on a task any reasonable feature separates: a random MobileNetV2 (BatchNorm trained with
every other layer) learns 2 brightness bands of 32 random 32 px images; prints the accuracy on those images.

This was the accuracy half of `tests/test_named_recipes.py::test_scratch_trains_batchnorm_and_learns_a_separable_task`
(107 s on TensorFlow, 73 s on JAX in CI, 27 / 62 s alone at a load of 4): whether 12 epochs learn the task is a
quality measurement, not a check of the plumbing, so it runs here and the test suite keeps the plumbing (the plan
says `scratch` with BatchNorm included, every BatchNorm statistic moves) on one epoch. Defaults are the former
test's settings: seed 0, 12 epochs of batch 8 at a learning rate of 1e-3. The test asserted an accuracy of at least
0.9 on the training images; the script says whether a run meets that bar (and exits 1 if not, so a CI job can run
it).

    KERAS_BACKEND=tensorflow python benchmarks/scratch_learns.py
    KERAS_BACKEND=jax python benchmarks/scratch_learns.py --seeds 0 1 2
"""

import argparse
import sys
import time

import keras
import numpy as np

from keras_transfer.models.classifier import build_classifier
from keras_transfer.training.recipes import RecipeOptions, run_recipe

MIN_ACCURACY = 0.9  # the former test's bar


def separable(n=32, size=32, classes=2, seed=0):
    """Images whose class is their brightness band (the test file's `_separable`): `(x, y)`."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % classes).astype("int32")
    x = rng.uniform(0, 40, size=(n, size, size, 3)).astype("float32") + (y * 100)[:, None, None, None]
    return x, y


def accuracy_after_scratch(seed, epochs, batch_size, learning_rate):
    """Trains a random MobileNetV2 with `recipe="auto"` (which picks `scratch`); returns (recipe, accuracy, s)."""
    keras.utils.set_random_seed(seed)
    model = build_classifier("mobilenetv2", 2, weights=None, input_size=32, augmentation=None)
    x, y = separable(seed=seed)
    options = RecipeOptions(fine_tune_epochs=epochs, batch_size=batch_size, fine_tune_learning_rate=learning_rate)
    start = time.perf_counter()
    result = run_recipe(model, (x, y), recipe="auto", pretrained=False, options=options, verbose=0)
    probabilities = np.asarray(keras.ops.convert_to_numpy(model.predict(x, verbose=0)))
    return result.recipe, float(np.mean((probabilities[:, 0] > 0.5) == y)), time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()
    print(f"backend {keras.backend.backend()}, mobilenetv2 from random weights, 32 images of 32 px, 2 classes, "
          f"{args.epochs} epochs of batch {args.batch_size}, learning rate {args.learning_rate}")
    print("| seed | recipe | accuracy | seconds |")
    print("|---|---|---|---|")
    met = True
    for seed in args.seeds:
        recipe, accuracy, seconds = accuracy_after_scratch(seed, args.epochs, args.batch_size, args.learning_rate)
        print(f"| {seed} | {recipe} | {accuracy:.3f} | {seconds:.0f} |")
        met = met and recipe == "scratch" and accuracy >= MIN_ACCURACY
    print(f"bar (recipe 'scratch', accuracy >= {MIN_ACCURACY}): {'met' if met else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
