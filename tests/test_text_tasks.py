"""Text regression and text multi-label runs on real texts (standard-library docstrings): trained through the one
run driver (Python and CLI), then loaded, predicted, evaluated and exported as a raw-string SavedModel from a new
interpreter that never names the modality (one interpreter for both runs). The encoder is the tiny random BERT
preset folder of `conftest.tiny_bert_folder`, its vocabulary the texts' words."""

import contextlib
import csv
import io
import json
import math
import os
import subprocess
import sys
import textwrap

import keras
import pytest

from conftest import tiny_bert_folder
from keras_transfer.cli import main
from keras_transfer.data.texts import read_task_texts
from keras_transfer.errors import KerasTransferError
from keras_transfer.runs.config import RunConfig
from keras_transfer.runs.train import train_from_folder
from test_text_runs import TEXTS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALL = [text for texts in TEXTS.values() for text in texts]
TAGS = ("return", "socket")  # a tag per word a docstring holds, and "short" (at most 6 words) or "long"
SETTINGS = dict(modality="text", recipe="two_phase", epochs=1, fine_tune_epochs=1, batch_size=8, sequence_length=12,
                validation_split=0.25, test_split=0.25, seed=0)
SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    import keras_transfer as kt
    from keras_transfer.serving.export_text import load_text_saved_model
    from keras_transfer.serving.predict_text import predict_texts
    runs, texts = json.loads(sys.argv[1]), json.loads(sys.argv[2])
    for task, run in runs.items():
        model, preprocessor, names = kt.load_model(run)
        outputs = predict_texts(model, preprocessor, texts)
        exported = kt.export(run, run + "_exported")
        loaded = load_text_saved_model(run + "_exported")  # held: its variables live as long as it does
        served = np.asarray(loaded.serve(tf.constant(texts)))
        print("RESULT " + json.dumps({"task": task, "names": names, "predicted": kt.predict(run, texts),
                                      "report": kt.evaluate(run).metrics, "difference": exported.max_abs_difference,
                                      "served": float(np.abs(served - outputs).max())}))
""")
TEXTS_TO_PREDICT = ["Return the tangent of x.", "Close the socket."]


def write_table(path, task):
    """`text,target` (the number of words) or `text,labels` (the `TAGS` each text mentions, `|`-joined)."""
    rows = [("text", "target" if task == "regression" else "labels")]
    for text in ALL:
        words = text.lower().rstrip(".").split()
        tags = ["short" if len(words) <= 6 else "long"] + [tag for tag in TAGS if tag in words]
        rows.append((text, len(text.split()) if task == "regression" else "|".join(tags)))
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return str(path)


def in_a_new_interpreter(runs, texts):
    """`{task: result}`: both runs loaded, predicted, exported and evaluated in ONE new interpreter (each new
    process pays the imports of TensorFlow, Keras and KerasHub)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(runs), json.dumps(texts)], env=env,
                          capture_output=True, text=True, timeout=600)
    results = [json.loads(line[len("RESULT "):]) for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and len(results) == len(runs), done.stderr[-3000:]
    return {result.pop("task"): result for result in results}


@pytest.fixture(scope="module")
def task_runs(tmp_path_factory):
    """`(runs, results)`: a regression run trained through `train_from_folder` and a multi-label run through the
    CLI (its output in the failure message), both on the docstrings' tiny random BERT, then read from one
    new interpreter (`in_a_new_interpreter`)."""
    root = tmp_path_factory.mktemp("task_runs")
    backbone = tiny_bert_folder(str(root / "bert"), ALL)
    runs = {"regression": str(root / "regression"), "multilabel": str(root / "multilabel")}
    keras.utils.set_random_seed(0)
    train_from_folder(write_table(root / "words.csv", "regression"), runs["regression"], task="regression",
                      backbone=backbone, verbose=0, **SETTINGS)
    keras.backend.clear_session(free_memory=False)
    keras.utils.set_random_seed(0)
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in SETTINGS.items()]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        code = main(["train", write_table(root / "tags.csv", "multilabel"), "--task", "multilabel", "--backbone",
                     backbone, *flags, "--out", runs["multilabel"]])
    assert code == 0, printed.getvalue()[-3000:]
    return runs, in_a_new_interpreter(runs, TEXTS_TO_PREDICT)


def test_text_regression_trains_predicts_evaluates_and_exports(task_runs):
    runs, results = task_runs
    run, result = runs["regression"], results["regression"]
    for name in ("config.json", "splits.json", "recipe.json", "history.json", "report.json", "best.keras"):
        assert os.path.isfile(os.path.join(run, name)), name
    assert os.path.isdir(os.path.join(run, "preprocessor"))
    report = json.load(open(os.path.join(run, "report.json")))
    assert report["task"] == "regression" and report["n"] == 6 and math.isfinite(report["metrics"]["rmse"])
    split = json.load(open(os.path.join(run, "splits.json")))
    assert split["names"] == ["target"] and len(split["train"]) == 12

    assert result["names"] == ["target"]
    assert [r["path"] for r in result["predicted"]] == TEXTS_TO_PREDICT
    assert all(math.isfinite(r["values"]["target"]) for r in result["predicted"])
    assert result["report"]["rmse"] == pytest.approx(report["metrics"]["rmse"], rel=1e-4)
    assert result["difference"] < 1e-4 and result["served"] < 1e-4


def test_text_multilabel_trains_through_the_cli_with_thresholds(task_runs, tmp_path, capsys):
    runs, results = task_runs
    run, result = runs["multilabel"], results["multilabel"]
    report = json.load(open(os.path.join(run, "report.json")))
    assert report["task"] == "multilabel" and report["names"] == ["long", "return", "short", "socket"]
    assert math.isfinite(report["metrics"]["micro_f1"]) and report["metrics"]["map"] is not None
    thresholds = [v["threshold"] for v in report["metrics"]["per_label"].values()]
    assert len(thresholds) == 4 and all(0 < t < 1 for t in thresholds)

    assert result["names"] == report["names"]
    for row in result["predicted"]:
        assert set(row["probabilities"]) == set(report["names"]) and set(row["labels"]) <= set(report["names"])
    assert result["difference"] < 1e-4 and result["served"] < 1e-4
    assert main(["predict", run, "Return the sine of x.", "--format", "json"]) == 0
    assert "probabilities" in json.loads(capsys.readouterr().out)[0]
    assert main(["evaluate", run, "--out", str(tmp_path / "eval")]) == 0
    assert "mAP" in capsys.readouterr().out and os.path.isfile(tmp_path / "eval" / "report.json")


@pytest.mark.backend_free
@pytest.mark.parametrize("settings, message", [
    (dict(task="regression", loss="focal"), r"loss 'focal' does not fit task 'regression'"),
    (dict(task="regression", label_separator=";"), r"label_separator is not supported for modality 'text', task"),
    (dict(task="multilabel", precision="mixed_float16"), r"precision is not supported for modality 'text', task"),
])
def test_text_task_settings_are_checked_before_anything_runs(tmp_path, settings, message):
    source = write_table(tmp_path / "tags.csv", "multilabel")
    with pytest.raises(KerasTransferError, match=message) as info:
        RunConfig.create(data_dir=source, modality="text", **settings).validate()
    assert "\n" not in str(info.value)


@pytest.mark.backend_free
def test_a_task_table_is_read_with_its_targets_and_a_bad_row_is_named(tmp_path):
    table = tmp_path / "tags.jsonl"
    table.write_text('{"text": "a cat", "labels": ["cat"]}\n{"text": " ", "labels": ["dog"]}\n'
                     '{"text": "a cat and a dog", "labels": "cat|dog"}\n')
    found, texts = read_task_texts(str(table), "multilabel")
    assert found.names == ["cat", "dog"] and found.targets.tolist() == [[1, 0], [1, 1]]
    assert found.skipped == [("tags.jsonl:2", "empty or whitespace only")]
    assert texts["tags.jsonl:3"] == "a cat and a dog"
    bad = tmp_path / "scores.csv"
    bad.write_text("text,target\na text,3\nanother,many\n")
    with pytest.raises(KerasTransferError, match=r"scores.csv:3: target 'many' is not a number"):
        read_task_texts(str(bad), "regression")
    with pytest.raises(KerasTransferError, match=r"reads a table .* of text,target. Received: data_dir="):
        read_task_texts(str(tmp_path), "regression")
