"""Freeze strategies: trainable-weight counts derived from the layers, BatchNorm stays frozen (also during fit),
recompilation, and the bad-input paths."""

import math

import keras
import numpy as np
import pytest
from conftest import as_numpy

from keras_transfer import build_classifier, freeze
from keras_transfer.models.registry import get_backbone_spec
from keras_transfer.errors import KerasTransferError
from keras_transfer.training.presets import compile_model

BN = keras.layers.BatchNormalization


def _layer_index(backbone, name):
    return [layer.name for layer in backbone.layers].index(name)


def _after(name):
    """Layers after `name`, in the backbone's layer order."""
    return lambda backbone: backbone.layers[_layer_index(backbone, name) + 1:]


def _from(name):
    """`name` and the layers after it."""
    return lambda backbone: backbone.layers[_layer_index(backbone, name):]


def _prefixed(*prefixes):
    return lambda backbone: [layer for layer in backbone.layers if layer.name.startswith(prefixes)]


# Which backbone layers each strategy should unfreeze, derived from the architectures' layer names
# (ResNet50: conv{k}_...; VGG16: block{k}_...; InceptionV3: the layers after the mixed{k} concatenation),
# not from the registry's block regexes.
CASES = {
    "resnet50": dict(size=32, top1=_prefixed("conv5_"), top2=_prefixed("conv4_", "conv5_"),
                     layer="conv5_block2_1_conv", from_layer=_from("conv5_block2_1_conv")),
    "vgg16": dict(size=32, top1=_prefixed("block5_"), top2=_prefixed("block4_", "block5_"),
                  layer="block4_conv2", from_layer=_from("block4_conv2")),
    "inceptionv3": dict(size=75, top1=_after("mixed9"), top2=_after("mixed8"),
                        layer="mixed9", from_layer=_from("mixed9")),
}
STRATEGIES = ["head_only", "top_blocks_1", "top_blocks_2", "from_layer", "full"]


def expected_trainable_count(layer, train_batchnorm=False):
    """Trainable variables of an unfrozen layer, from its type: conv/dense kernel (+ bias); BatchNorm gamma/beta
    only when BatchNorm trains."""
    if isinstance(layer, BN):
        return int(layer.scale) + int(layer.center) if train_batchnorm else 0
    if isinstance(layer, keras.layers.SeparableConv2D):
        return 2 + int(layer.use_bias)
    if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)):
        return 1 + int(layer.use_bias)
    assert not layer.weights, f"unexpected layer with weights: {layer.name} ({type(layer).__name__})"
    return 0


def unfrozen_layers(case, backbone, strategy):
    layers = [layer for layer in backbone.layers if not isinstance(layer, keras.layers.InputLayer)]
    return {"head_only": [], "top_blocks_1": case["top1"](backbone), "top_blocks_2": case["top2"](backbone),
            "from_layer": case["from_layer"](backbone), "full": layers}[strategy]


def apply(model, case, strategy, **kwargs):
    if strategy.startswith("top_blocks"):
        return freeze(model, "top_blocks", n=int(strategy[-1]), **kwargs)
    if strategy == "from_layer":
        return freeze(model, "from_layer", layer=case["layer"], **kwargs)
    return freeze(model, strategy, **kwargs)


def batchnorm_layers(backbone):
    return [layer for layer in backbone._flatten_layers(include_self=False) if isinstance(layer, BN)]


@pytest.fixture(scope="module", params=list(CASES))
def built(request):
    """(name, classifier) for each backbone, built once per module (freeze resets every layer each call).

    Counting needs the variables, not their values: their random initialisation is deferred (under JAX drawing
    it compiles a kernel per variable shape, 40 s for InceptionV3 on 2 cores). The fit tests below build for real.
    """
    case = CASES[request.param]
    with keras.StatelessScope(initialize_variables=False):
        model = build_classifier(request.param, 3, weights=None, input_size=case["size"], augmentation=None)
    return request.param, model


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_trainable_weight_counts(built, strategy):
    name, model = built
    case = CASES[name]
    backbone = model.get_layer("backbone")
    freeze(model, "full")  # start each case from a different state than the one asked for
    before = len(model.trainable_weights)

    report = apply(model, case, strategy)

    head = model.get_layer("predictions")
    expected = 1 + int(head.use_bias) + sum(expected_trainable_count(x) for x in unfrozen_layers(case, backbone,
                                                                                                   strategy))
    assert len(model.trainable_weights) == expected
    assert report.trainable_weights_before == before
    assert report.trainable_weights_after == expected
    assert report.trainable_params_after == sum(math.prod(w.shape) for w in model.trainable_weights)
    assert report.strategy == strategy.rstrip("_12")
    assert not any(layer.trainable for layer in batchnorm_layers(backbone))
    assert report.frozen_batchnorm_layers == len(batchnorm_layers(backbone))
    if strategy == "head_only":
        assert report.trainable_blocks == () and expected == 2
    if strategy.startswith("top_blocks"):
        assert report.trainable_blocks == get_backbone_spec(name).block_names[-int(strategy[-1]):]


@pytest.mark.parametrize("strategy", ["top_blocks_1", "full"])
def test_train_batchnorm_makes_unfrozen_batchnorm_trainable(built, strategy):
    name, model = built
    case = CASES[name]
    backbone = model.get_layer("backbone")
    if not batchnorm_layers(backbone):
        assert name == "vgg16"
        return  # VGG16 has no BatchNorm: counted the same way by test_trainable_weight_counts
    unfrozen = unfrozen_layers(case, backbone, strategy)

    report = apply(model, case, strategy, train_batchnorm=True)

    unfrozen_ids = {id(x) for x in unfrozen}
    for layer in batchnorm_layers(backbone):
        assert layer.trainable == (id(layer) in unfrozen_ids), layer.name
    assert any(layer.trainable for layer in batchnorm_layers(backbone))
    expected = 2 + sum(expected_trainable_count(x, train_batchnorm=True) for x in unfrozen)
    assert len(model.trainable_weights) == report.trainable_weights_after == expected
    assert report.frozen_batchnorm_layers == 0


# BatchNorm statistics during fit: tinybn (tests/tiny_backbone.py: three conv + BatchNorm blocks) at 32 px, 4 images,
# 2 steps, compiled as users run it (graph on TensorFlow, jitted on JAX). It stood in for ResNet50, whose train graph
# took 25-70 s to trace here (TensorFlow ran the step eagerly to avoid it); which layers a real network's freeze
# leaves trainable is counted per backbone by test_trainable_weight_counts.

def _compile_for_fit(model):
    compile_model(model)


def _statistics(model):
    return [(as_numpy(layer.moving_mean), as_numpy(layer.moving_variance))
            for layer in batchnorm_layers(model.get_layer("backbone"))]


@pytest.fixture
def tinybn(tiny_xy):
    model = build_classifier("tinybn", 3, weights=None, input_size=32, augmentation=None, dropout=0.0)
    x, y = tiny_xy(4, 32, 3)
    return model, x, y


def test_batchnorm_statistics_do_not_move_during_fit_after_full_freeze(tinybn):
    model, x, y = tinybn
    freeze(model, "full")
    _compile_for_fit(model)
    kernel = model.get_layer("backbone").get_layer("block3_conv").kernel
    stats, kernel_before = _statistics(model), as_numpy(kernel)

    model.fit(x, y, batch_size=2, epochs=1, verbose=0)

    assert np.abs(as_numpy(kernel) - kernel_before).max() > 0, "the backbone did not train: the test proves nothing"
    for (mean, var), (mean_after, var_after) in zip(stats, _statistics(model)):
        np.testing.assert_array_equal(mean, mean_after)
        np.testing.assert_array_equal(var, var_after)


def test_batchnorm_statistics_move_during_fit_with_train_batchnorm(tinybn):
    # The control for the test above: the same fit with BatchNorm trainable does move the statistics.
    model, x, y = tinybn
    freeze(model, "full", train_batchnorm=True)
    _compile_for_fit(model)
    stats = _statistics(model)

    model.fit(x, y, batch_size=2, epochs=1, verbose=0)

    moved = [not np.array_equal(mean, mean_after) for (mean, _), (mean_after, _) in zip(stats, _statistics(model))]
    assert all(moved), f"{moved.count(False)} of {len(moved)} BatchNorm layers kept their moving mean"


# Recompilation: VGG16 at 32 px.

@pytest.fixture
def vgg16(tiny_xy):
    model = build_classifier("vgg16", 3, weights=None, input_size=32, augmentation=None, dropout=0.0)
    x, y = tiny_xy(4, 32, 3)
    return model, x, y


@pytest.fixture(scope="module")
def vgg16_unchanged():
    """One VGG16 for the refusal tests, which raise before they change anything (built once for the module)."""
    return build_classifier("vgg16", 3, weights=None, input_size=32, augmentation=None, dropout=0.0)


def _kernels(model, *names):
    backbone = model.get_layer("backbone")
    return [as_numpy(backbone.get_layer(name).kernel) for name in names]


def test_freeze_recompiles_and_fit_updates_only_unfrozen_weights(vgg16):
    model, x, y = vgg16
    compile_model(model)
    before = len(model.trainable_weights)

    report = freeze(model, "top_blocks", n=1)

    assert report.recompiled
    assert report.trainable_weights_before == before == 2 + 2 * 13
    assert report.trainable_weights_after == len(model.trainable_weights) == 2 + 2 * 3
    assert int(as_numpy(model.optimizer.iterations)) == 0
    frozen, unfrozen = _kernels(model, "block1_conv1", "block5_conv3")
    head = as_numpy(model.get_layer("predictions").kernel)
    # 2 steps: the head starts at zero, so the backbone's gradient is zero in the first one.
    model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    frozen_after, unfrozen_after = _kernels(model, "block1_conv1", "block5_conv3")
    np.testing.assert_array_equal(frozen, frozen_after)
    assert np.abs(unfrozen_after - unfrozen).max() > 0
    assert np.abs(as_numpy(model.get_layer("predictions").kernel) - head).max() > 0

    # Freezing again (back to the head only) must take effect in the next fit: no stale train step.
    report = freeze(model, "head_only")
    assert report.recompiled and report.trainable_weights_after == 2
    (block5,) = _kernels(model, "block5_conv3")
    model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    np.testing.assert_array_equal(block5, _kernels(model, "block5_conv3")[0])


def test_freeze_does_not_compile_an_uncompiled_model_or_when_asked_not_to(vgg16):
    model, _, _ = vgg16
    assert not freeze(model, "full").recompiled
    compile_model(model)
    assert not freeze(model, "head_only", recompile=False).recompiled
    assert "freeze 'head_only'" in str(freeze(model, "head_only"))


def test_unknown_strategy(vgg16_unchanged):
    with pytest.raises(KerasTransferError) as info:
        freeze(vgg16_unchanged, "fulll")
    message = str(info.value)
    assert "Did you mean 'full'" in message and "head_only" in message and "fulll" in message


@pytest.mark.parametrize("n", [0, 6, None, 1.0])
def test_top_blocks_n_out_of_range(vgg16_unchanged, n):
    with pytest.raises(KerasTransferError) as info:
        freeze(vgg16_unchanged, "top_blocks", n=n)
    message = str(info.value)
    assert "between 1 and 5" in message  # VGG16 has 5 blocks
    assert f"Received: n={n!r}" in message


def test_from_layer_with_an_unknown_layer(vgg16_unchanged):
    trainable = [layer.trainable for layer in vgg16_unchanged.get_layer("backbone").layers]
    with pytest.raises(KerasTransferError) as info:
        freeze(vgg16_unchanged, "from_layer", layer="blok5_conv3")
    assert "Did you mean 'block5_conv3'" in str(info.value)
    with pytest.raises(KerasTransferError, match="Received: layer=None"):
        freeze(vgg16_unchanged, "from_layer")
    assert [layer.trainable for layer in vgg16_unchanged.get_layer("backbone").layers] == trainable


def test_freeze_needs_a_classifier(small_cnn):
    with pytest.raises(KerasTransferError, match="backbone"):
        freeze(small_cnn(), "full")
