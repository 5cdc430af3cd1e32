"""`tinyvgg`: a two-block backbone in VGG16's layer layout, for the tests of run plumbing.

A tiny run (3 classes x 8 images at 32 px, `two_phase`) on VGG16 with random weights spends most of its time
building, tracing and writing VGG16's 14.7M parameters (a 56 MB `best.keras`); what the run tests check (run
folders, phases, resume, reports, export) does not depend on the network. `tests/conftest.py` registers this
entry for every test process; a worker process the tests start calls `register()` itself. The
`keras.applications` networks keep their own tests (test_backbones, test_weights, test_demo, the examples).
"""

import keras

from keras_transfer.models import registry


def TinyVGG(include_top=False, weights=None, input_shape=None, input_tensor=None, pooling=None, **kwargs):
    """Two conv + max-pool blocks named like VGG16's (`block1_conv1` ... `block2_pool`); random weights only."""
    if weights is not None or include_top or pooling is not None:
        raise ValueError(f"tinyvgg has no weights, top or pooling. Received: weights={weights!r}, "
                         f"include_top={include_top!r}, pooling={pooling!r}")
    x = inputs = keras.Input(input_shape or (None, None, 3)) if input_tensor is None else input_tensor
    for block, filters, pool in ((1, 8, 2), (2, 16, 4)):  # 8x down, as every registry network at least
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"block{block}_conv1")(x)
        x = keras.layers.MaxPooling2D(pool, name=f"block{block}_pool")(x)
    return keras.Model(inputs, x, name="tinyvgg")


SPEC = registry.BackboneSpec("tinyvgg", TinyVGG, "caffe", 32, 8,
                             (("block1", r"block1_pool"), ("block2", r"block2_pool")), 1_392,
                             "tinyvgg_weights_notop.h5", family="test")


def register():
    """Adds `tinyvgg` to the backbone registry of this process (once)."""
    registry.BACKBONES.setdefault(SPEC.name, SPEC)
