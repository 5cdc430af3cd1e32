"""Precision and jit_compile options: mixed policies build and train, the head stays float32, the global
policy is restored."""

import keras
import numpy as np
import pytest

from conftest import make_small_cnn, make_tiny_xy
from keras_transfer.errors import KerasTransferError
from keras_transfer.models.classifier import build_classifier
from keras_transfer.models.precision import dtype_policy, parse_jit_compile
from keras_transfer.training.presets import compile_model


@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16", "mixed_float16"])
def test_precision_builds_and_fits_one_step_with_a_float32_head(precision):
    x, y = make_tiny_xy(n=4)
    with dtype_policy(precision):  # a user backbone is built by the user, under the policy they chose
        backbone = make_small_cnn()
    model = build_classifier(backbone, 3, input_size=32, augmentation="none", precision=precision)
    assert keras.config.dtype_policy().name == "float32"  # restored after building
    backbone_dtype = model.get_layer("backbone").layers[1].compute_dtype
    assert backbone_dtype == {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}[precision]
    compile_model(model, "feature_extraction")
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert keras.backend.standardize_dtype(model(x[:2]).dtype) == "float32"
    if precision == "mixed_float16":
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)


def test_policy_is_restored_when_building_fails_and_bad_names_are_refused():
    with pytest.raises(KerasTransferError, match="precision"):
        build_classifier(make_small_cnn(), 3, input_size=32, precision="float16")
    with pytest.raises(KerasTransferError, match="dropout"):
        build_classifier(make_small_cnn(), 3, input_size=32, dropout=2, precision="mixed_bfloat16")
    assert keras.config.dtype_policy().name == "float32"


def test_parse_jit_compile():
    assert [parse_jit_compile(v) for v in ("auto", "TRUE", "false", True, False)] == ["auto", True, False, True, False]
    with pytest.raises(KerasTransferError, match="Received: jit_compile='xla'"):
        parse_jit_compile("xla")


def test_dtype_policy_restores_the_previous_policy_after_an_error():
    with pytest.raises(RuntimeError):
        with dtype_policy("mixed_bfloat16"):
            assert keras.config.dtype_policy().name == "mixed_bfloat16"
            raise RuntimeError("boom")
    assert keras.config.dtype_policy().name == "float32"
