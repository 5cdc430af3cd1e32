"""`export(format="keras" | "tflite")` and `keras-transfer export`: a `.keras` file that predicts the same and
resumes training, TFLite (float and dynamic-range quantised) on both backends, unregistered custom layers
refused where they break the format, and the CLI on a run folder made by `train_from_folder`."""

import json
import os

import keras
import numpy as np
import pytest
from conftest import randomize_head
from test_export import CLASS_NAMES, pixels, tiny_model

import keras_transfer
from keras_transfer import cli
from keras_transfer.errors import KerasTransferError
from keras_transfer.serving.export import TOLERANCES, export
from keras_transfer.serving.export_tflite import run_tflite


@pytest.fixture
def compiled_model():
    """The tiny classifier (augmentation, dropout), random head, compiled and trained 3 steps."""
    model = tiny_model()
    randomize_head(model)
    model.get_layer("predictions").kernel.assign(
        np.random.default_rng(0).normal(0, 0.3, (16, 3)).astype("float32"))
    keras_transfer.compile_model(model, "feature_extraction")
    model.fit(pixels(6, seed=1), np.arange(6) % 3, batch_size=2, epochs=1, verbose=0)
    return model


def predict(model, batch):
    return keras.ops.convert_to_numpy(model(batch, training=False))


def test_keras_round_trip_predicts_the_same_and_resumes_training(compiled_model, tmp_path):
    batch, labels = pixels(6, seed=3), np.arange(6) % 3
    result = export(compiled_model, tmp_path / "model.keras", format="keras")
    assert result.max_abs_difference <= 1e-4 and result.top1_agreement == 1.0
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]  # no temporary file left beside it

    reloaded = keras.models.load_model(tmp_path / "model.keras")  # no custom_objects needed
    expected = predict(compiled_model, batch)
    assert expected.std(axis=0).max() > 1e-3
    np.testing.assert_allclose(predict(reloaded, batch), expected, atol=1e-4, rtol=0)
    assert keras_transfer.get_class_names(reloaded) == CLASS_NAMES
    assert int(reloaded.optimizer.iterations) == int(compiled_model.optimizer.iterations) == 3

    loss_before = reloaded.evaluate(batch, labels, verbose=0, return_dict=True)["loss"]
    reloaded.fit(batch, labels, batch_size=2, epochs=1, verbose=0)
    assert int(reloaded.optimizer.iterations) == 6  # the optimizer state went on from where it was saved
    assert reloaded.evaluate(batch, labels, verbose=0, return_dict=True)["loss"] != loss_before


@keras.saving.register_keras_serializable(package="test_export_formats")
class Registered(keras.layers.Layer):
    def call(self, x):
        return x * 1.0


class Unregistered(keras.layers.Layer):
    def call(self, x):
        return x * 1.0


def custom_model(layer):
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, strides=4, activation="relu")(layer(inputs))
    return keras_transfer.build_classifier(keras.Model(inputs, x), class_names=CLASS_NAMES, augmentation=None)


def test_unregistered_layer_is_refused_for_keras_only(tmp_path):
    model = custom_model(Unregistered(name="my_scaler"))
    with pytest.raises(KerasTransferError, match="'my_scaler'.*register_keras_serializable"):
        export(model, tmp_path / "model.keras", format="keras")
    assert os.listdir(tmp_path) == []
    # The SavedModel traces the layer and needs no serialisation: it exports fine.
    assert export(model, tmp_path / "saved", format="saved_model", uint8=False, resize=False).max_abs_difference <= 1e-4
    # A registered custom layer is fine for .keras.
    assert export(custom_model(Registered()), tmp_path / "ok.keras", format="keras").max_abs_difference <= 1e-4


def test_keras_format_needs_the_suffix(tmp_path):
    with pytest.raises(KerasTransferError, match=r"ending in \.keras"):
        export(tiny_model(), tmp_path / "model.h5", format="keras")
    assert os.listdir(tmp_path) == []


def test_tflite_matches_and_quantised_is_reported(compiled_model, tmp_path):
    batch = pixels(5, seed=4)
    expected = predict(compiled_model, batch)
    result = export(compiled_model, tmp_path / "model.tflite", format="tflite")
    assert result.tolerance == TOLERANCES["tflite"] == 1e-3
    assert result.max_abs_difference <= 1e-3 and result.top1_agreement == 1.0
    np.testing.assert_allclose(run_tflite(tmp_path / "model.tflite", batch), expected, atol=1e-3, rtol=0)
    with open(tmp_path / "model.class_names.json") as f:
        assert json.load(f) == CLASS_NAMES

    quantised = export(compiled_model, tmp_path / "small.tflite", format="tflite", quantize="dynamic")
    assert quantised.quantize == "dynamic" and "dynamic quantisation" in quantised.summary()
    assert 0 < quantised.max_abs_difference <= quantised.tolerance == TOLERANCES["tflite_dynamic"]
    np.testing.assert_allclose(run_tflite(tmp_path / "small.tflite", batch), expected, atol=0.05, rtol=0)
    assert sorted(os.listdir(tmp_path)) == ["model.class_names.json", "model.tflite", "small.class_names.json",
                                            "small.tflite"]

    with pytest.raises(KerasTransferError, match="Allowed: None"):
        export(compiled_model, tmp_path / "bad.tflite", format="tflite", quantize="int8")
    with pytest.raises(KerasTransferError, match="already exists"):
        export(compiled_model, tmp_path / "model.tflite", format="tflite")


@pytest.fixture
def run_folder(finished_run):
    """The session's finished tiny run folder (tests/conftest.py `finished_run`); the exports only read it."""
    return finished_run[1]


@pytest.mark.parametrize("fmt, name", [("saved_model", "exported"), ("keras", "model.keras"),
                                       ("tflite", "model.tflite")])
def test_cli_exports_a_run_folder(run_folder, tmp_path, capsys, fmt, name):
    assert cli.main(["export", str(run_folder), "--format", fmt, "--out", str(tmp_path / name)]) == 0
    printed = capsys.readouterr().out
    assert f"exported {fmt} to {tmp_path / name}" in printed and "largest difference" in printed
    assert os.path.exists(tmp_path / name)
    if fmt == "saved_model":
        with open(tmp_path / name / "class_names.json") as f:
            assert json.load(f) == ["cat", "dog", "emu"]


def test_cli_export_errors_are_one_line(tmp_path, capsys):
    assert cli.main(["export", str(tmp_path), "--format", "onnx", "--out", str(tmp_path / "x")]) == 2
    assert "error: Unknown format 'onnx'" in capsys.readouterr().err
    assert cli.main(["export", str(tmp_path), "--out", str(tmp_path / "x")]) == 2
    assert "best.keras" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []
