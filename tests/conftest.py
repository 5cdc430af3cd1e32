"""Shared fixtures: a tiny image folder, a seeded rng, tiny random (images, labels) arrays, a small CNN, and one
finished tiny run folder a session.

The suite runs once per Keras backend (`KERAS_BACKEND=tensorflow pytest`, `KERAS_BACKEND=jax pytest`);
nothing here depends on which.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402
from tiny_backbone import register as register_tiny_backbone  # noqa: E402

register_tiny_backbone()  # `tinyvgg` for the run-plumbing tests (tests/tiny_backbone.py)

FOLDER_CLASSES = ("cat", "dog", "emu")
IMAGES_PER_CLASS = 6


def make_tiny_xy(n=6, size=32, classes=3, seed=0):
    """`n` random RGB images in [0, 255] (float32, `size` x `size`) and int32 labels cycling over `classes`."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, size=(n, size, size, 3)).astype("float32")
    y = (np.arange(n) % classes).astype("int32")
    return x, y


def write_image_folder(root, classes=FOLDER_CLASSES, per_class=IMAGES_PER_CLASS, size=20, seed=0):
    """Writes `root/<class>/img_<i>.png` images of random pixels (classes created in reverse order); returns `root`."""
    rng = np.random.default_rng(seed)
    for name in reversed(classes):
        os.makedirs(os.path.join(root, name), exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(os.path.join(root, name, f"img_{i}.png"))
    return str(root)


def make_small_cnn(prefix="", size=32, filters=(8, 8, 16, 16, 16), batchnorm=False, name=None):
    """A hand-made functional CNN whose stages are known by construction:

    stage 1: `{prefix}conv_a`, `{prefix}conv_b` (32 px), closed by the weightless `{prefix}pool` (-> 16 px);
    stage 2: `{prefix}conv_c` (16 px);
    stage 3: the strided `{prefix}conv_d` (-> 8 px) starts it, then `{prefix}conv_e` (and its BatchNorm).
    """
    a, b, c, d, e = filters
    inputs = keras.Input((size, size, 3), name=f"{prefix}input")
    x = keras.layers.Conv2D(a, 3, padding="same", activation="relu", name=f"{prefix}conv_a")(inputs)
    x = keras.layers.Conv2D(b, 3, padding="same", activation="relu", name=f"{prefix}conv_b")(x)
    x = keras.layers.MaxPooling2D(2, name=f"{prefix}pool")(x)
    x = keras.layers.Conv2D(c, 3, padding="same", activation="relu", name=f"{prefix}conv_c")(x)
    x = keras.layers.Conv2D(d, 3, strides=2, padding="same", activation="relu", name=f"{prefix}conv_d")(x)
    x = keras.layers.Conv2D(e, 3, padding="same", name=f"{prefix}conv_e")(x)
    if batchnorm:
        x = keras.layers.BatchNormalization(name=f"{prefix}bn_e")(x)
    return keras.Model(inputs, x, name=name or f"{prefix}cnn")


def as_numpy(value):
    return np.array(keras.ops.convert_to_numpy(value))


def randomize_head(model, seed=0):
    """`build_classifier` starts the head at zero (every input gives the same output); give it random weights
    so that outputs depend on the input."""
    head = model.get_layer("predictions")
    rng = np.random.default_rng(seed)
    head.kernel.assign(rng.normal(0, 0.05, size=tuple(head.kernel.shape)).astype("float32"))
    head.bias.assign(rng.normal(0, 0.05, size=tuple(head.bias.shape)).astype("float32"))


@pytest.fixture
def rng():
    """A seeded numpy Generator."""
    return np.random.default_rng(1234)


@pytest.fixture
def tiny_xy():
    """`tiny_xy(n, size, classes)` -> (float32 images in [0, 255], int32 labels)."""
    return make_tiny_xy


@pytest.fixture
def small_cnn():
    """`small_cnn(prefix="", size=32, ...)` -> the hand-made CNN of `make_small_cnn`."""
    return make_small_cnn


@pytest.fixture
def image_folder(tmp_path):
    """3 classes (`cat`, `dog`, `emu`) x 6 PNG images of random pixels (20 x 20)."""
    return write_image_folder(tmp_path / "images")


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory):
    """(images, run folder): one finished tiny run, trained once a session for the tests that only read a run
    folder (evaluate, export, an export killed mid-write) instead of each training its own: the `two_phase`
    recipe with `head_only` on `tinyvgg` at 32 px, 3 classes x 8 images (6 kept for validation, 6 for test), one
    epoch. Tests may add files beside it or rewrite the reports, never change `best.keras` or `splits.json`."""
    from keras_transfer.runs.train import train_from_folder

    root = tmp_path_factory.mktemp("finished_run")
    images = write_image_folder(root / "images", per_class=8)
    out = str(root / "run")
    keras.utils.set_random_seed(0)
    train_from_folder(images, out, recipe="two_phase", backbone="tinyvgg", weights=None, input_size=32, epochs=1,
                      batch_size=8, augmentation="none", strategy="head_only", validation_split=0.25,
                      test_split=0.25, verbose=0)
    return images, out


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Each test starts with fresh Keras names and a fixed seed."""
    keras.backend.clear_session(free_memory=False)
    keras.utils.set_random_seed(0)
    yield


def pytest_collection_modifyitems(config, items):
    """tests/run.sh shares the `backend_free` tests between its two pytest processes (`KT_BACKEND_FREE`):
    `first` runs those also marked `first_backend`, `second` runs the other ones, `none` runs none of them; unset
    (a plain `pytest`), every test runs."""
    share = os.environ.get("KT_BACKEND_FREE")
    if share is None:
        return
    keep, drop = [], []
    for item in items:
        free = item.get_closest_marker("backend_free") is not None
        first = item.get_closest_marker("first_backend") is not None
        runs = not free or (share == "first" and first) or (share == "second" and not first)
        (keep if runs else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
