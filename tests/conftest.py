"""Shared fixtures: a tiny image folder, a seeded rng, tiny random (images, labels) arrays, a small CNN, one
finished tiny run folder a session, and a tiny random BERT preset folder for the text runs.

The suite runs once per Keras backend (`KERAS_BACKEND=tensorflow pytest`, `KERAS_BACKEND=jax pytest`);
nothing here depends on which.
"""

import os
import re

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


def one_convolution_backbone(size=32):
    """One convolution, no activation or pooling: the cheapest backbone for the NaN-loss guard's tests (a huge
    learning rate makes its weights and loss infinite on the first step; MobileNetV2 took 20 times as long)."""
    inputs = keras.Input((size, size, 3))
    return keras.Model(inputs, keras.layers.Conv2D(4, 3)(inputs))


TINY_BERT_WORDS = ("good", "bad", "film", "plot", "very", "not")


def tiny_bert_folder(folder, texts=None):
    """A 2-layer, 16-wide random BERT (no dropout) and its lower-casing tokenizer saved as a KerasHub preset folder,
    which a text run loads as `backbone=folder` like MiniLM's (the same KerasHub classes, 22.7M parameters fewer).
    The vocabulary: the special tokens and the words and punctuation of `texts` (default: `TINY_BERT_WORDS`).
    Returns `folder`."""
    import keras_hub  # here, not at the top: only the text tests load KerasHub

    words = sorted({w for text in texts for w in re.findall(r"\w+|[^\w\s]", text.lower())}) if texts else \
        list(TINY_BERT_WORDS)
    keras.utils.set_random_seed(0)
    encoder = keras_hub.models.BertBackbone(vocabulary_size=5 + len(words), num_layers=2, num_heads=2, hidden_dim=16,
                                            intermediate_dim=32, max_sequence_length=16, dropout=0.0)
    encoder.save_to_preset(folder)
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words,
                                              lowercase=True)
    tokenizer.save_to_preset(folder)
    return folder


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
    `first` runs those also marked `first_backend`, `second` runs the other ones, `none` runs none of them; `all`
    (run.sh with one backend) or unset (a plain `pytest`), every test runs."""
    share = os.environ.get("KT_BACKEND_FREE")
    if share in (None, "all"):
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
