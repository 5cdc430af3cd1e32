"""`tinyvgg` (two blocks in VGG16's layer layout) and `tinybn` (three conv + BatchNorm blocks): backbones for the
tests of run plumbing and of BatchNorm handling.

A tiny run (3 classes x 8 images at 32 px, `two_phase`) on VGG16 with random weights spends most of its time
building, tracing and writing VGG16's 14.7M parameters (a 56 MB `best.keras`); what the run tests check (run
folders, phases, resume, reports, export) does not depend on the network. `tests/conftest.py` registers this
entry for every test process; a worker process the tests start calls `register()` itself. The
`keras.applications` networks keep their own tests (test_backbones, test_weights, test_demo, the examples).
`tinybn` stands in for MobileNet or ResNet50 where a test is about how BatchNorm layers are frozen, trained or kept
in inference mode (tracing MobileNet's 27 or ResNet50's 53 BatchNorm layers was those tests' time).
"""

import keras

from keras_transfer.models import registry


def _inputs(name, include_top, weights, input_shape, input_tensor, pooling):
    """The input tensor a `keras.applications`-style constructor starts from; refuses what these networks lack."""
    if weights is not None or include_top or pooling is not None:
        raise ValueError(f"{name} has no weights, top or pooling. Received: weights={weights!r}, "
                         f"include_top={include_top!r}, pooling={pooling!r}")
    return keras.Input(input_shape or (None, None, 3)) if input_tensor is None else input_tensor


def TinyVGG(include_top=False, weights=None, input_shape=None, input_tensor=None, pooling=None, **kwargs):
    """Two conv + max-pool blocks named like VGG16's (`block1_conv1` ... `block2_pool`); random weights only."""
    x = inputs = _inputs("tinyvgg", include_top, weights, input_shape, input_tensor, pooling)
    for block, filters, pool in ((1, 8, 2), (2, 16, 4)):  # 8x down, as every registry network at least
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"block{block}_conv1")(x)
        x = keras.layers.MaxPooling2D(pool, name=f"block{block}_pool")(x)
    return keras.Model(inputs, x, name="tinyvgg")


def TinyBN(include_top=False, weights=None, input_shape=None, input_tensor=None, pooling=None, **kwargs):
    """Three conv + BatchNorm + ReLU + max-pool blocks (`block1_conv` ... `block3_pool`); random weights only."""
    x = inputs = _inputs("tinybn", include_top, weights, input_shape, input_tensor, pooling)
    for block, filters in ((1, 8), (2, 16), (3, 16)):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"block{block}_conv")(x)
        x = keras.layers.BatchNormalization(name=f"block{block}_bn")(x)
        x = keras.layers.ReLU(name=f"block{block}_relu")(x)
        x = keras.layers.MaxPooling2D(name=f"block{block}_pool")(x)
    return keras.Model(inputs, x, name="tinybn")


SPEC = registry.BackboneSpec("tinyvgg", TinyVGG, "caffe", 32, 8,
                             (("block1", r"block1_pool"), ("block2", r"block2_pool")), 1_392,
                             "tinyvgg_weights_notop.h5", family="test")


BN_SPEC = registry.BackboneSpec("tinybn", TinyBN, "tf", 32, 8,
                                tuple((f"block{k}", rf"block{k}_pool") for k in (1, 2, 3)), 3_832,
                                "tinybn_weights_notop.h5", family="test")


NAMES = (SPEC.name, BN_SPEC.name)


def register():
    """Adds `tinyvgg` and `tinybn` to the backbone registry of this process (once)."""
    for spec in (SPEC, BN_SPEC):
        registry.BACKBONES.setdefault(spec.name, spec)
