"""Regression and multi-label manifests: the forms they take, and one clear line naming the row for each bad input
(non-numeric or NaN target, empty label list, a label seen only in validation)."""

import json

import numpy as np
import pytest
from PIL import Image

from keras_transfer.data.task_sources import find_task_images, load_task_data, split_task_images
from keras_transfer.errors import KerasTransferError
from keras_transfer.runs.config import RunConfig

pytestmark = pytest.mark.backend_free


def _images(folder, n):
    for i in range(n):
        Image.fromarray(np.full((12, 12, 3), 20 * i, np.uint8)).save(folder / f"{i}.png")


def _csv(folder, text, n=4):
    _images(folder, n)
    (folder / "m.csv").write_text(text)
    return str(folder / "m.csv")


def test_regression_csv_with_named_targets_and_json_forms(tmp_path):
    found = find_task_images(_csv(tmp_path, "path,age,weight\n0.png,1.5,3\n1.png,2,4\n"), "regression")
    assert found.names == ["age", "weight"]
    np.testing.assert_array_equal(found.targets, [[1.5, 3], [2, 4]])
    (tmp_path / "m.json").write_text(json.dumps([{"path": "0.png", "target": 7}, ["1.png", 8.5]]))
    found = find_task_images(str(tmp_path / "m.json"), "regression")
    assert found.names == ["target"] and found.targets[:, 0].tolist() == [7.0, 8.5]


def test_multilabel_csv_with_separator_and_json_lists(tmp_path):
    found = find_task_images(_csv(tmp_path, "path,labels\n0.png,cat|dog\n1.png,dog\n"), "multilabel")
    assert found.names == ["cat", "dog"] and found.targets.tolist() == [[1, 1], [0, 1]]
    found = find_task_images(_csv(tmp_path, "0.png,cat;emu\n1.png,emu\n"), "multilabel", separator=";")
    assert found.names == ["cat", "emu"] and found.targets.tolist() == [[1, 1], [0, 1]]
    (tmp_path / "m.json").write_text(json.dumps([{"path": "0.png", "labels": ["a"]}, ["1.png", ["a", "b"]]]))
    assert find_task_images(str(tmp_path / "m.json"), "multilabel").targets.tolist() == [[1, 0], [1, 1]]


@pytest.mark.parametrize("text, task, message", [
    ("path,value\n0.png,1\n1.png,abc\n", "regression", r"line 3: target 'abc' is not a number"),
    ("path,value\n0.png,1\n1.png,nan\n", "regression", r"line 3: target 'nan' is NaN or infinite"),
    ("path,labels\n0.png,a\n1.png, | \n", "multilabel", r"line 3: empty label list"),
])
def test_bad_rows_are_named_in_one_line(tmp_path, text, task, message):
    with pytest.raises(KerasTransferError, match=message) as error:
        find_task_images(_csv(tmp_path, text), task)
    assert "\n" not in str(error.value) and "Received:" in str(error.value)


def test_bad_json_rows_are_named(tmp_path):
    _images(tmp_path, 2)
    (tmp_path / "m.json").write_text(json.dumps([{"path": "0.png", "target": float("nan")}]).replace("NaN", "null"))
    with pytest.raises(KerasTransferError, match=r"entry 1"):
        find_task_images(str(tmp_path / "m.json"), "regression")
    (tmp_path / "m.json").write_text(json.dumps([{"path": "0.png", "labels": []}]))
    with pytest.raises(KerasTransferError, match=r"entry 1: empty label list"):
        find_task_images(str(tmp_path / "m.json"), "multilabel")


def test_label_seen_only_in_validation_names_its_row(tmp_path):
    rows = "".join(f"{i}.png,common\n" for i in range(9)) + "9.png,common|rare\n"
    found = find_task_images(_csv(tmp_path, rows, n=10), "multilabel")
    seeds = [s for s in range(50) if 9 in np.random.default_rng(s).permutation(10)[:2]]  # the split's order
    assert 9 in split_task_images(found, validation_split=0.2, seed=next(s for s in range(50) if s not in seeds))["train"]
    with pytest.raises(KerasTransferError, match=r"line 10: label 'rare' appears only in the validation split"):
        split_task_images(found, validation_split=0.2, seed=seeds[0])


def test_task_data_yields_float_target_rows(tmp_path):
    data = load_task_data(_csv(tmp_path, "path,a,b\n0.png,1,2\n1.png,3,4\n2.png,5,6\n3.png,7,8\n"), "regression",
                          image_size=8, batch_size=4, validation_split=0.0)
    x, y = next(iter(data.train))
    assert tuple(x.shape) == (4, 8, 8, 3) and sorted(np.asarray(y).tolist()) == [[1, 2], [3, 4], [5, 6], [7, 8]]


@pytest.mark.parametrize("settings, message", [
    (dict(task="regression", loss="focal"), "loss 'focal' does not fit task 'regression'"),
    (dict(task="regression", class_weight="balanced"), "a regression run has neither"),
    (dict(task="classification", loss="mse"), "loss picks a regression or multilabel loss"),
    (dict(task="multilabel", label_separator=","), "label_separator must be one character"),
    (dict(task="regression", devices=2), "devices is not supported for task 'regression'"),
    (dict(task="multilabel", modality="text", devices=2), "devices is not supported for modality 'text', task"),
])
def test_config_refuses_what_a_task_cannot_take(tmp_path, settings, message):
    manifest = _csv(tmp_path, "0.png,1\n1.png,2\n")
    with pytest.raises(KerasTransferError, match=message):
        RunConfig.create(data_dir=manifest, **settings).validate()


def test_task_run_needs_a_manifest(tmp_path):
    with pytest.raises(KerasTransferError, match="reads a .csv or .json manifest"):
        RunConfig.create(data_dir=str(tmp_path), task="regression").validate()
