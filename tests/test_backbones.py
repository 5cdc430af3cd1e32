"""The backbone registry: every entry builds, names resolve, sizes are checked, blocks partition the layers."""

import os
import re

import keras
import pytest

from keras_transfer import build_classifier
from keras_transfer.models.registry import (BackboneSpec, check_input_size, get_backbone_spec, list_backbones,
                                      split_blocks)
from keras_transfer.errors import KerasTransferError
from keras_transfer.models.weights import build_backbone

# Building every registry backbone with its random initialisation takes about 5 minutes on TensorFlow and
# about 20 on JAX (where each new variable shape compiles its own random-number kernel) on 2 CPU cores.
# By default the registry test builds each architecture with the variables' initialisation deferred
# (`keras.StatelessScope(initialize_variables=False)`): the same constructor call, the same layers, shapes
# and parameter counts, without drawing the random values. KT_TEST_FULL_INIT=1 initialises them for real
# and also runs one image through each backbone.
FULL_INIT = os.environ.get("KT_TEST_FULL_INIT", "0") not in ("", "0")


def _non_input_layers(model):
    return [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]


def assert_partition(blocks, model, expected_names):
    """`blocks` is `expected_names` in order, each non-empty, and together they are the model's layers in order."""
    assert [name for name, _ in blocks] == list(expected_names)
    assert all(layers for _, layers in blocks), [name for name, layers in blocks if not layers]
    flat = [id(layer) for _, layers in blocks for layer in layers]
    assert flat == [id(layer) for layer in _non_input_layers(model)]


@pytest.mark.slow
@pytest.mark.parametrize("spec", list_backbones(), ids=lambda spec: spec.name)
def test_every_registry_backbone_builds_small_without_weights(spec):
    size = max(spec.min_size, 32)
    if FULL_INIT:
        backbone = build_backbone(spec, size, weights=None)
    else:
        with keras.StatelessScope(initialize_variables=False):
            backbone = build_backbone(spec, size, weights=None)

    assert isinstance(backbone, keras.Model)
    assert backbone.name == "backbone"
    assert tuple(backbone.input_shape) == (None, size, size, 3)
    out = tuple(backbone.output_shape)
    assert len(out) == 4 and out[0] is None, out
    assert out[1] == out[2] and 1 <= out[1] <= size // 8, out  # every registry net downsamples at least 8x
    assert out[3] > 0
    assert backbone.count_params() == spec.params, "the registry's parameter count is off"
    assert_partition(split_blocks(backbone, spec.blocks), backbone, spec.block_names)
    if FULL_INIT:
        features = backbone(keras.ops.zeros((1, size, size, 3)))
        assert tuple(features.shape) == (1,) + out[1:]


def test_registry_names_are_canonical_and_unique():
    names = [spec.name for spec in list_backbones()]
    assert len(names) == len(set(names))
    assert len(names) >= 3
    for spec in list_backbones():
        assert re.fullmatch(r"[a-z0-9]+", spec.name), spec.name
        assert get_backbone_spec(spec.name) is spec
        assert spec.min_size <= spec.default_size
        assert spec.preprocess in ("caffe", "tf", "torch", "none")
        assert len(spec.blocks) >= 2


def test_unknown_backbone_suggests_the_closest_name_and_the_listing_command():
    with pytest.raises(KerasTransferError) as info:
        get_backbone_spec("resnet5")
    message = str(info.value)
    assert "Did you mean 'resnet50'" in message
    assert "keras-transfer backbones" in message
    assert "Received: backbone='resnet5'" in message


def test_unknown_backbone_in_build_classifier():
    with pytest.raises(KerasTransferError, match="Did you mean 'vgg16'"):
        build_classifier("vgg166", 3, weights=None, input_size=32)


@pytest.mark.parametrize("name, expected", [("ResNet-50", "resnet50"), ("resnet_50", "resnet50"),
                                            ("RESNET50", "resnet50"), ("VGG-16", "vgg16"),
                                            ("Inception_V3", "inceptionv3")])
def test_name_normalisation(name, expected):
    assert get_backbone_spec(name).name == expected


def test_a_spec_passes_through():
    spec = get_backbone_spec("vgg16")
    assert isinstance(spec, BackboneSpec)
    assert get_backbone_spec(spec) is spec


def test_input_size_below_minimum_names_the_minimum():
    spec = get_backbone_spec("inceptionv3")
    with pytest.raises(KerasTransferError) as info:
        check_input_size(spec, 32)
    message = str(info.value)
    assert str(spec.min_size) in message and "75" in message
    assert "inceptionv3" in message
    assert "Received: input_size=32" in message
    check_input_size(spec, spec.min_size)  # the minimum itself is fine


@pytest.mark.parametrize("size", [74, 32.5, "75", True])
def test_input_size_must_be_an_int_at_least_the_minimum(size):
    with pytest.raises(KerasTransferError, match="75"):
        check_input_size(get_backbone_spec("inceptionv3"), size)


def test_build_classifier_checks_the_size_before_building():
    with pytest.raises(KerasTransferError, match="75"):
        build_classifier("inceptionv3", 3, weights=None, input_size=32)


def test_split_blocks_generic_on_a_hand_made_cnn(small_cnn):
    model = small_cnn()
    blocks = split_blocks(model)
    # By construction (see make_small_cnn): the pooling closes stage 1, the strided conv_d starts stage 3.
    assert [(name, [layer.name for layer in layers]) for name, layers in blocks] == [
        ("stage1", ["conv_a", "conv_b", "pool"]),
        ("stage2", ["conv_c"]),
        ("stage3", ["conv_d", "conv_e"]),
    ]
    assert_partition(blocks, model, ["stage1", "stage2", "stage3"])


def test_split_blocks_generic_keeps_flat_layers_in_the_last_stage(small_cnn):
    cnn = small_cnn(batchnorm=True)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(cnn.output)
    x = keras.layers.Dense(4, name="proj")(x)
    model = keras.Model(cnn.input, x)
    blocks = split_blocks(model)
    assert [layer.name for layer in blocks[-1][1]] == ["conv_d", "conv_e", "bn_e", "gap", "proj"]
    assert_partition(blocks, model, ["stage1", "stage2", "stage3"])


def test_split_blocks_named_blocks_on_a_hand_made_cnn(small_cnn):
    model = small_cnn()
    blocks = split_blocks(model, (("low", r"conv_b"), ("high", r"conv_d")))
    assert [(name, [layer.name for layer in layers]) for name, layers in blocks] == [
        ("low", ["conv_a", "conv_b"]),
        ("high", ["pool", "conv_c", "conv_d", "conv_e"]),  # layers after the last end join the last block
    ]


def test_split_blocks_with_a_block_that_matches_nothing(small_cnn):
    with pytest.raises(KerasTransferError, match="'nowhere'"):
        split_blocks(small_cnn(), (("low", r"conv_b"), ("nowhere", r"no_such_layer")))


def test_weights_file_for_uses_the_size_specific_file_where_there_is_one():
    spec = get_backbone_spec("mobilenetv2")
    assert spec.weights_sizes, "mobilenetv2 has one ImageNet file per input size"
    size = spec.weights_sizes[0]
    assert str(size) in spec.weights_file_for(size)
    # A size without its own file falls back to the default size's file.
    assert spec.weights_file_for(32) == spec.weights_file_for(spec.default_size)
    assert str(spec.default_size) in spec.weights_file_for(32)
    plain = get_backbone_spec("vgg16")
    assert plain.weights_file_for(32) == plain.weights_file_for(224) == plain.weights_file
