"""A training run from an image folder: the run folder's files, refusing to overwrite, strategies."""

import csv
import json
import os

import keras
import pytest
from conftest import FOLDER_CLASSES

from keras_transfer import get_class_names
from keras_transfer.errors import KerasTransferError
from keras_transfer.runs.train import train_from_folder

SMALL = dict(recipe="two_phase", backbone="tinyvgg", weights=None, input_size=32, epochs=1, batch_size=8, augmentation="none", verbose=0)


def _json(path):
    with open(path) as f:
        return json.load(f)


def test_train_from_folder_writes_the_run_folder(image_folder, tmp_path):
    out = str(tmp_path / "run")

    model, result = train_from_folder(image_folder, out, strategy="top_blocks", n=1, fine_tune_epochs=1, **SMALL)

    # history.png appears where matplotlib is installed; no temp or per-phase files are left behind.
    assert set(os.listdir(out)) - {"history.png"} == {
        "best.keras", "class_names.json", "config.json", "data_fingerprint.json", "data_summary.json", "history.csv",
        "history.json",
        "last.keras", "recipe.json", "splits.json", "state.json"}
    config = _json(os.path.join(out, "config.json"))
    settings, environment = config["settings"], config["environment"]
    assert settings["backbone"] == "tinyvgg" and settings["strategy"] == "top_blocks" and settings["n"] == 1
    assert settings["input_size"] == 32 and settings["weights"] is None
    assert environment["keras_backend"] == keras.backend.backend()
    assert settings["data_dir"] == os.path.abspath(image_folder)
    assert _json(os.path.join(out, "class_names.json")) == sorted(FOLDER_CLASSES)

    history = _json(os.path.join(out, "history.json"))
    assert result.phases == ["head", "fine_tune"]
    assert history["phase"] == ["head", "fine_tune"] and history["epoch"] == [0, 1]
    assert {"loss", "val_loss", "accuracy"} <= set(history)
    assert all(len(values) == 2 for values in history.values())
    with open(os.path.join(out, "history.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [int(row["epoch"]) for row in rows] == [0, 1]
    assert "val_loss" in rows[0]

    best = keras.saving.load_model(os.path.join(out, "best.keras"))
    assert get_class_names(best) == get_class_names(model) == sorted(FOLDER_CLASSES)
    assert best.output_shape == (None, len(FOLDER_CLASSES))

    # A second run into the same folder is refused, and the first run's files stay as they were.
    config_text = open(os.path.join(out, "config.json")).read()
    with pytest.raises(KerasTransferError) as info:
        train_from_folder(image_folder, out, strategy="head_only", **SMALL)
    assert out in str(info.value) and "overwrite" in str(info.value)
    assert open(os.path.join(out, "config.json")).read() == config_text


def test_head_only_trains_only_the_head(image_folder, tmp_path):
    out = str(tmp_path / "run")

    model, result = train_from_folder(image_folder, out, strategy="head_only", **SMALL)

    assert result.phases == ["head"]
    assert [r.trainable_blocks for r in result.freeze_reports] == [()]
    assert _json(os.path.join(out, "history.json"))["phase"] == ["head"]
    assert os.path.isfile(os.path.join(out, "best.keras"))


def test_unknown_strategy(image_folder, tmp_path):
    out = str(tmp_path / "run")
    with pytest.raises(KerasTransferError) as info:
        train_from_folder(image_folder, out, strategy="top_block", **SMALL)
    assert "Did you mean 'top_blocks'" in str(info.value)
    assert not os.path.exists(out)


def test_a_bad_data_folder_leaves_no_run_folder(tmp_path):
    out = str(tmp_path / "run")
    with pytest.raises(KerasTransferError, match="not found"):
        train_from_folder(str(tmp_path / "nowhere"), out, **SMALL)
    assert not os.path.exists(out)


def test_label_smoothing_reaches_the_loss_of_every_phase(image_folder, tmp_path):
    """The option added as one RunConfig field: it is in config.json and in the loss best.keras was compiled with."""
    out = str(tmp_path / "run")
    model, _ = train_from_folder(image_folder, out, strategy="top_blocks", n=1, fine_tune_epochs=1,
                                 label_smoothing=0.1, **SMALL)
    assert _json(os.path.join(out, "config.json"))["settings"]["label_smoothing"] == 0.1
    assert model.loss.label_smoothing == 0.1  # the fine-tuning phase's loss
    best = keras.saving.load_model(os.path.join(out, "best.keras"))
    assert best.loss.label_smoothing == 0.1
    with pytest.raises(KerasTransferError, match="label_smoothing must be a fraction in"):
        train_from_folder(image_folder, str(tmp_path / "bad"), label_smoothing=1.5, **SMALL)
