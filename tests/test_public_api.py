"""The public API (`keras_transfer.__all__`, defined in `keras_transfer.api`): each name works on tiny inputs, and
every name the top level exported before it still resolves, with a DeprecationWarning naming what to use."""

import csv
import importlib
import os

import numpy as np
import pytest
from conftest import FOLDER_CLASSES, make_tiny_xy

import keras_transfer as kt
from keras_transfer import api
from keras_transfer.training.recipes import RecipeOptions

SMALL = dict(recipe="two_phase", backbone="tinyvgg", weights=None, input_size=32, epochs=1, batch_size=8,
             augmentation="none", verbose=0)
TEXTS = [("Return the square root of x.", "maths"), ("Return the sine of x.", "maths"),
         ("Return the natural logarithm of x.", "maths"), ("Return the factorial of n.", "maths"),
         ("Connect to a remote socket.", "network"), ("Send a data string to the socket.", "network"),
         ("Return the current host name.", "network"), ("Receive bytes from the socket.", "network")]


def test_the_top_level_exports_a_small_api():
    assert kt.__all__ == api.__all__ and len(kt.__all__) <= 15 and len(set(kt.__all__)) == len(kt.__all__)
    for name in kt.__all__:
        assert getattr(kt, name) is getattr(api, name)
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        kt.not_a_name


@pytest.mark.parametrize("name", sorted(kt._HOME))
def test_an_old_top_level_name_warns_and_is_its_modules_object(name):
    module = importlib.import_module(f"keras_transfer.{kt._HOME[name]}")
    instead = kt.REPLACED_BY.get(name) or f"{module.__name__}.{name}"
    with pytest.warns(DeprecationWarning, match=f"keras_transfer.{name} is deprecated.*{instead}"):
        found = getattr(kt, name)
    assert found is getattr(module, name)


def test_the_old_training_entry_points_name_fit_and_train():
    assert {kt.REPLACED_BY[name] for name in ("fine_tune", "run_recipe", "run_phases")} == {"fit"}
    assert kt.REPLACED_BY["train_from_folder"] == "train" and kt.REPLACED_BY["resume_run"] == "resume"


def test_list_backbones_by_modality():
    images, texts = kt.list_backbones(), kt.list_backbones("text")
    assert "mobilenetv2" in [s.name for s in images] and "all_minilm_l6_v2" in [s.name for s in texts]
    assert kt.list_backbones(None) == images + texts
    with pytest.raises(kt.KerasTransferError, match="modality"):
        kt.list_backbones("audio")


def test_load_build_fit_evaluate_on_a_tiny_image_folder(image_folder):
    data = kt.load_data(image_folder, image_size=32, batch_size=8)
    model = kt.build_model("tinyvgg", outputs=len(data.class_names), weights=None, input_size=32,
                           augmentation="none", class_names=data.class_names)
    result = kt.fit(model, data.train, data.val, recipe="two_phase",
                    options=RecipeOptions(head_epochs=1, fine_tune_epochs=1, n=1), verbose=0)
    assert result.recipe == "two_phase" and result.phases == ["head", "fine_tune"]
    x, y = make_tiny_xy(n=6, classes=len(FOLDER_CLASSES))
    report = kt.evaluate(model, (x, y), top_k=1)
    assert report.n == 6 and 0 <= report.accuracy <= 1


def test_a_regression_model_builds_and_evaluates_through_the_same_names():
    model = kt.build_model("tinyvgg", "regression", outputs=1, weights=None, input_size=32)
    report = kt.evaluate(model, (np.zeros((4, 32, 32, 3), "float32"), np.arange(4.0)))
    assert type(report).__name__ == "TaskReport" and report.n == 4
    with pytest.raises(kt.KerasTransferError, match="task"):
        kt.load_data("photos", task="ranking", image_size=32)


def test_train_load_predict_evaluate_export_a_run(image_folder, tmp_path):
    out = str(tmp_path / "run")
    model, result = kt.train(image_folder, out, **SMALL, strategy="head_only")
    loaded, names = kt.load_model(out)
    assert names == sorted(FOLDER_CLASSES) and loaded.output_shape == model.output_shape
    image = os.path.join(image_folder, FOLDER_CLASSES[0], "img_0.png")
    [row] = kt.predict(out, [image], top_k=1)
    assert row["path"] == image and row["top"][0][0] in FOLDER_CLASSES
    report = kt.evaluate(out, split="val")
    assert report.n > 0
    exported = kt.export(out, str(tmp_path / "model.keras"), format="keras")
    assert os.path.isfile(tmp_path / "model.keras") and exported.max_abs_difference <= exported.tolerance
    with pytest.raises(kt.KerasTransferError, match="resume"):
        kt.resume(out, backbone="mobilenetv2")


def test_text_builds_loads_and_fits_through_the_same_names(tmp_path):
    pytest.importorskip("keras_hub")
    source = tmp_path / "texts.csv"
    with open(source, "w", newline="") as f:
        csv.writer(f).writerows([("text", "label")] + TEXTS)
    model, preprocessor = kt.build_model("all_minilm_l6_v2", outputs=2, sequence_length=8)
    data = kt.load_data(str(source), modality="text", preprocessor=preprocessor, validation_split=0.25)
    result = kt.fit(model, data.train, data.val, recipe="two_phase",
                    options=RecipeOptions(strategy="head_only", head_epochs=1), verbose=0)
    assert result.recipe == "two_phase" and result.phases == ["head"]
    with pytest.raises(kt.KerasTransferError, match="preprocessor"):
        kt.load_data(str(source), modality="text")
