"""Regression and multi-label runs end to end on real digits (their values; 2x2 tiles with the digits present as
labels): `train_from_folder(task=...)`, the CLI's `--task`, the run folder, thresholds in best.keras, predict."""

import json
import os

import keras
import numpy as np
import pytest

from keras_transfer.cli import main
from keras_transfer.data.digit_tasks import write_digit_tiles, write_digit_values
from keras_transfer.models.heads import get_thresholds, head_of, task_of
from keras_transfer.runs.train import train_from_folder
from keras_transfer.serving import plots
from keras_transfer.serving.predict import predict
from keras_transfer.serving.task_metrics import choose_thresholds, multilabel_metrics, regression_metrics
from keras_transfer.serving.task_report import task_outputs

FAST = dict(backbone="tinyvgg", weights=None, input_size=32, augmentation="none", recipe="two_phase", epochs=1,
            fine_tune_epochs=1, batch_size=8, jit_compile=False)


def test_regression_run_writes_report_and_predicts_values(tmp_path):
    manifest = write_digit_values(str(tmp_path / "data"), n=24)
    model, result = train_from_folder(manifest, str(tmp_path / "run"), task="regression", loss="huber",
                                      test_split=0.25, verbose=0, **FAST)
    assert result.phases == ["head", "fine_tune"] and task_of(model) == "regression"
    run = tmp_path / "run"
    report = json.loads((run / "report.json").read_text())
    splits = json.loads((run / "splits.json").read_text())
    best = keras.saving.load_model(run / "best.keras")
    assert head_of(best).loss == "huber" and head_of(best).class_names == ["value"]
    train_values = np.array([t for _, t in splits["train"]])
    np.testing.assert_allclose(head_of(best).target_mean, train_values.mean(0), rtol=1e-6)
    test_paths = [p for p, _ in splits["test"]]
    rows = predict(run, test_paths)
    predicted = np.array([[r["values"]["value"]] for r in rows])
    truth = np.array([t for _, t in splits["test"]])
    expected = regression_metrics(predicted, truth, ["value"])
    assert report["n"] == len(test_paths) == 6
    for key in ("mae", "rmse", "r2"):  # predict (files, PIL) and the report (tf.data) read the same pixels
        assert report["metrics"][key] == pytest.approx(expected[key], rel=1e-3, abs=1e-3)
    plotted = plots.matplotlib_available()  # with matplotlib both plots are written, without it neither
    assert os.path.isfile(run / "residuals.png") is plotted and os.path.isfile(run / "predicted_vs_true.png") is plotted


def test_multilabel_run_chooses_thresholds_on_validation_and_stores_them(tmp_path):
    manifest = write_digit_tiles(str(tmp_path / "data"), n=24, digits=(0, 1, 2))
    model, _ = train_from_folder(manifest, str(tmp_path / "run"), task="multilabel", validation_split=0.25,
                                 verbose=0, **FAST)
    run = tmp_path / "run"
    best = keras.saving.load_model(run / "best.keras")
    splits = json.loads((run / "splits.json").read_text())
    assert splits["names"] == ["0", "1", "2"]
    x = np.stack([np.asarray(keras.utils.load_img(p, target_size=(32, 32)), "float32") for p, _ in splits["val"]])
    y = np.array([t for _, t in splits["val"]])
    outputs, _ = task_outputs(best, (x, y))
    assert get_thresholds(best) == pytest.approx(choose_thresholds(outputs, y), abs=1e-5)
    assert get_thresholds(model) == get_thresholds(best)
    report = json.loads((run / "report.json").read_text())  # no test split: the validation split's report
    expected = multilabel_metrics(outputs, y, get_thresholds(best), splits["names"])
    assert report["metrics"]["micro_f1"] == pytest.approx(expected["micro_f1"], abs=1e-3)
    rows = predict(run, [p for p, _ in splits["val"]])
    for row, out in zip(rows, outputs):
        above = {n for n, p, t in zip(splits["names"], out, get_thresholds(best)) if p >= t}
        assert set(row["labels"]) == above and set(row["probabilities"]) == {"0", "1", "2"}


def test_cli_task_flag_trains_and_predict_prints_values(tmp_path, capsys):
    manifest = write_digit_values(str(tmp_path / "data"), n=16)
    code = main(["train", manifest, "--out", str(tmp_path / "run"), "--task", "regression", "--backbone", "tinyvgg",
                 "--weights", "none", "--input-size", "32", "--augmentation", "none", "--recipe", "two_phase",
                 "--epochs", "1", "--fine-tune-epochs", "1", "--jit-compile", "false"])
    assert code in (0, None)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["settings"]["task"] == "regression"
    capsys.readouterr()
    main(["predict", str(tmp_path / "run"), os.path.join(tmp_path, "data", "images")])
    printed = json.loads(capsys.readouterr().out)
    assert len(printed) == 16 and all(isinstance(r["values"]["value"], float) for r in printed)
    assert main(["evaluate", str(tmp_path / "run"), "--out", str(tmp_path / "eval")]) in (0, None)
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    val = json.loads((tmp_path / "run" / "splits.json").read_text())["val"]
    by_path = {r["path"]: r["values"]["value"] for r in printed}
    expected = regression_metrics([[by_path[p]] for p, _ in val], [t for _, t in val])
    assert report["task"] == "regression" and report["n"] == len(val) == 3
    assert report["metrics"]["rmse"] == pytest.approx(expected["rmse"], rel=1e-3, abs=1e-3)
