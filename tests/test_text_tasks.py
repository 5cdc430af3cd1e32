"""Text regression and text multi-label runs on real texts (standard-library docstrings): trained through the one
run driver (Python and CLI), then loaded, predicted, evaluated and exported as a raw-string SavedModel from a new
interpreter that never names the modality. The encoder is a tiny random BERT whose vocabulary is the texts' words."""

import csv
import json
import math
import os
import re
import subprocess
import sys
import textwrap

import keras
import keras_hub
import pytest

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
    run, work, texts = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    model, preprocessor, names = kt.load_model(run)
    outputs = predict_texts(model, preprocessor, texts)
    exported = kt.export(run, work + "/exported")
    loaded = load_text_saved_model(work + "/exported")  # held: its variables live as long as it does
    served = np.asarray(loaded.serve(tf.constant(texts)))
    print("RESULT " + json.dumps({"names": names, "predicted": kt.predict(run, texts),
                                  "report": kt.evaluate(run).metrics, "difference": exported.max_abs_difference,
                                  "served": float(np.abs(served - outputs).max())}))
""")


def tiny_bert_folder(folder):
    """A 2-layer, 16-wide random BERT preset folder whose vocabulary holds every word of the texts."""
    words = sorted({w for text in ALL for w in re.findall(r"\w+|[^\w\s]", text.lower())})
    keras.utils.set_random_seed(0)
    encoder = keras_hub.models.BertBackbone(vocabulary_size=5 + len(words), num_layers=2, num_heads=2, hidden_dim=16,
                                            intermediate_dim=32, max_sequence_length=16, dropout=0.0)
    encoder.save_to_preset(folder)
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words,
                                              lowercase=True)
    tokenizer.save_to_preset(folder)
    return folder


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


def in_a_new_interpreter(run, work, texts):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", SCRIPT, run, work, json.dumps(texts)], env=env,
                          capture_output=True, text=True, timeout=600)
    result = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and result, done.stderr[-3000:]
    return json.loads(result[0][len("RESULT "):])


def test_text_regression_trains_predicts_evaluates_and_exports(tmp_path):
    source, run = write_table(tmp_path / "words.csv", "regression"), str(tmp_path / "run")
    model, _ = train_from_folder(source, run, task="regression", backbone=tiny_bert_folder(str(tmp_path / "bert")),
                                 verbose=0, **SETTINGS)
    for name in ("config.json", "splits.json", "recipe.json", "history.json", "report.json", "best.keras"):
        assert os.path.isfile(os.path.join(run, name)), name
    assert os.path.isdir(os.path.join(run, "preprocessor"))
    report = json.load(open(os.path.join(run, "report.json")))
    assert report["task"] == "regression" and report["n"] == 6 and math.isfinite(report["metrics"]["rmse"])
    split = json.load(open(os.path.join(run, "splits.json")))
    assert split["names"] == ["target"] and len(split["train"]) == 12

    texts = ["Return the tangent of x.", "Close the socket."]
    result = in_a_new_interpreter(run, str(tmp_path), texts)
    assert result["names"] == ["target"]
    assert [r["path"] for r in result["predicted"]] == texts
    assert all(math.isfinite(r["values"]["target"]) for r in result["predicted"])
    assert result["report"]["rmse"] == pytest.approx(report["metrics"]["rmse"], rel=1e-4)
    assert result["difference"] < 1e-4 and result["served"] < 1e-4


def test_text_multilabel_trains_through_the_cli_with_thresholds(tmp_path, capsys):
    source, run = write_table(tmp_path / "tags.csv", "multilabel"), str(tmp_path / "run")
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in SETTINGS.items()]
    code = main(["train", source, "--task", "multilabel", "--backbone", tiny_bert_folder(str(tmp_path / "bert")),
                 *flags, "--out", run])
    assert code == 0, capsys.readouterr().err
    report = json.load(open(os.path.join(run, "report.json")))
    assert report["task"] == "multilabel" and report["names"] == ["long", "return", "short", "socket"]
    assert math.isfinite(report["metrics"]["micro_f1"]) and report["metrics"]["map"] is not None
    thresholds = [v["threshold"] for v in report["metrics"]["per_label"].values()]
    assert len(thresholds) == 4 and all(0 < t < 1 for t in thresholds)

    texts = ["Return the tangent of x.", "Close the socket."]
    result = in_a_new_interpreter(run, str(tmp_path), texts)
    assert result["names"] == report["names"]
    for row in result["predicted"]:
        assert set(row["probabilities"]) == set(report["names"]) and set(row["labels"]) <= set(report["names"])
    assert result["difference"] < 1e-4 and result["served"] < 1e-4
    capsys.readouterr()  # the training's output
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
