"""`keras-transfer train --modality text` (the flags it was given, the `auto` recipe), `evaluate`, `predict` and
`export` on a text run folder (dispatched on its config.json's modality), and the history and confusion-matrix
plots a text run writes. One tiny run (16 tokens, 24 real docstrings) is trained once for the module through the
CLI, on the tiny random BERT preset folder of `conftest.tiny_bert_folder` whose vocabulary is the docstrings'
words: what the commands load and write (the KerasHub backbone and tokenizer, the run's preprocessor folder, the
raw-string SavedModel) does not depend on the encoder's size; the real MiniLM trains in test_text_runs."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import tiny_bert_folder
from keras_transfer.cli import main
from keras_transfer.data.texts import read_unlabelled_texts
from keras_transfer.errors import KerasTransferError
from keras_transfer.serving.export_text import load_text_saved_model
from keras_transfer.serving.predict_text import predict_texts
from keras_transfer.serving.text_run import load_text_run
from test_cli import assert_one_line_error, read_json
from test_text_runs import TEXTS, _write

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("text_run")
    source, out = _write(root / "texts.csv"), str(root / "run")
    backbone = tiny_bert_folder(str(root / "tiny_bert"), [text for texts in TEXTS.values() for text in texts])
    code = main(["train", source, "--modality", "text", "--backbone", backbone, "--sequence-length", "16",
                 "--validation-split", "0.25", "--test-split", "0.25", "--seed", "0", "--out", out])
    assert code == 0  # on failure pytest shows what the setup printed
    return out


def _is_png(path):
    with open(path, "rb") as f:
        return f.read(8) == PNG


def test_the_cli_trains_text_and_the_run_writes_its_history_its_plots_and_its_training_state(text_run):
    settings = read_json(os.path.join(text_run, "config.json"))["settings"]  # the flags `train` was given
    backbone = os.path.join(os.path.dirname(text_run), "tiny_bert")
    assert (settings["modality"], settings["backbone"], settings["sequence_length"]) == ("text", backbone, 16)
    assert read_json(os.path.join(text_run, "recipe.json"))["recipe"] == "lp_ft"  # `auto`
    history = read_json(os.path.join(text_run, "history.json"))
    assert history["phase"] == ["head"] and history["epoch"] == [0]  # `auto` at 4 a class: the linear probe
    assert "val_accuracy" in history and 0 <= history["val_accuracy"][0] <= 1
    for name in ("history.png", "confusion_matrix.png"):
        assert _is_png(os.path.join(text_run, name)), name
    report = read_json(os.path.join(text_run, "report.json"))
    assert report["n"] == 6 and sum(map(sum, report["confusion_matrix"])) == 6
    state = read_json(os.path.join(text_run, "state.json"))
    assert state["phase_done"] and state["epochs_done"] == 1
    prints = read_json(os.path.join(text_run, "data_fingerprint.json"))
    assert len(prints) == 24 and all(key.startswith("texts.csv:") for key in prints)


def test_cli_evaluates_a_text_run_on_its_test_split_and_on_a_table(text_run, tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["evaluate", text_run, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "the test split of" in printed and "(6 texts)" in printed
    report = read_json(out / "report.json")
    assert report == read_json(os.path.join(text_run, "report.json"))  # the same best.keras on the same texts
    assert _is_png(out / "confusion_matrix.png")

    table = _write(tmp_path / "all.csv")
    assert main(["evaluate", text_run, table, "--out", str(tmp_path / "all")]) == 0
    assert read_json(tmp_path / "all" / "report.json")["n"] == 24
    assert "(24 texts)" in capsys.readouterr().out

    other = tmp_path / "other.csv"
    other.write_text("text,label\nReturn the square root of x.,maths\nOpen a file.,files\n")
    assert_one_line_error(main(["evaluate", text_run, str(other)]), capsys.readouterr(),
                          "classes the model does not know: files")

    source = read_json(os.path.join(text_run, "config.json"))["settings"]["data_dir"]
    test_id = read_json(os.path.join(text_run, "splits.json"))["test"][0][0]
    with open(source) as f:
        original = f.read()
    lines = original.splitlines(keepends=True)
    row = int(test_id.split(":")[1]) - 1  # "texts.csv:N" is line N, the header line 1
    lines[row] = '"Now ' + lines[row][1:] if lines[row].startswith('"') else "Now " + lines[row]
    try:
        with open(source, "w") as f:
            f.write("".join(lines))
        assert_one_line_error(main(["evaluate", text_run, "--out", str(tmp_path / "edited")]), capsys.readouterr(),
                              "changed since the run", test_id)
    finally:
        with open(source, "w") as f:
            f.write(original)


def test_cli_predicts_strings_txt_files_and_a_table_as_the_model_does(text_run, tmp_path, capsys):
    note = tmp_path / "note.txt"
    note.write_text("Return the current time in seconds.")
    table = tmp_path / "new.csv"
    table.write_text("text\nConnect to a remote socket at address.\n   \nReturn the factorial of n.\n")
    code = main(["predict", text_run, "Return the sine of x.", str(note), str(table), "--format", "json",
                 "--top-k", "3"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "new.csv:3: empty or whitespace only" in captured.err  # named, skipped
    results = json.loads(captured.out[captured.out.index("["):])
    assert [r["path"] for r in results] == ["Return the sine of x.", str(note), "new.csv:2", "new.csv:4"]
    model, preprocessor, names = load_text_run(text_run)
    texts = ["Return the sine of x.", "Return the current time in seconds.", "Connect to a remote socket at address.",
             "Return the factorial of n."]
    expected = predict_texts(model, preprocessor, texts)
    for result, row in zip(results, expected):
        assert sorted(t["class"] for t in result["top"]) == sorted(names)
        got = {t["class"]: t["probability"] for t in result["top"]}
        np.testing.assert_allclose([got[name] for name in names], row, atol=1e-6)

    assert_one_line_error(main(["predict", text_run, str(tmp_path / "missing.txt")]), capsys.readouterr(),
                          "missing.txt is not a .txt file")
    assert_one_line_error(main(["predict", text_run, "a text", "--tta"]), capsys.readouterr(), "--tta")


def test_cli_exports_a_text_run_as_a_raw_string_saved_model_and_a_keras_file(text_run, tmp_path, capsys):
    model, preprocessor, names = load_text_run(text_run)
    texts = ["Return the cosine of x.", "Send a data string to the socket.", "Return the day of the week."]
    expected = predict_texts(model, preprocessor, texts)
    assert np.ptp(expected, axis=0).max() > 1e-3  # the texts give different outputs: the comparisons can fail

    saved = tmp_path / "saved"
    assert main(["export", text_run, "--out", str(saved)]) == 0
    assert "exported text saved_model" in capsys.readouterr().out
    served = load_text_saved_model(saved)
    np.testing.assert_allclose(np.asarray(served.serve(tf.constant(texts))), expected, atol=1e-4)
    assert [n.decode() for n in served.class_names().numpy()] == names

    file = tmp_path / "model.keras"
    assert main(["export", text_run, "--format", "keras", "--out", str(file)]) == 0
    assert "exported text keras" in capsys.readouterr().out
    reloaded = keras.models.load_model(file)
    np.testing.assert_allclose(predict_texts(reloaded, preprocessor, texts), expected, atol=1e-5)

    assert_one_line_error(main(["export", text_run, "--format", "tflite", "--out", str(tmp_path / "m.tflite")]),
                          capsys.readouterr(), "TensorFlow-Text ops", "Received: format='tflite'")
    assert not os.path.exists(tmp_path / "m.tflite")


@pytest.mark.backend_free
def test_texts_to_predict_come_from_strings_files_folders_and_tables(tmp_path):
    folder = tmp_path / "notes" / "inner"
    folder.mkdir(parents=True)
    (folder / "b.txt").write_text("Second note.")
    (tmp_path / "notes" / "a.txt").write_text("First note.")
    (tmp_path / "notes" / "skip.md").write_text("not a .txt: not read from a folder")
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe not UTF-8 \xff")
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text('{"text": "From JSON."}\n{"body": "no text key"}\n')
    ids, texts, skipped = read_unlabelled_texts(["A literal text.", str(tmp_path / "notes"), str(jsonl),
                                                 str(tmp_path / "bad.txt")], max_chars=8)
    assert ids == ["A literal text.", str(tmp_path / "notes" / "a.txt"), str(folder / "b.txt"), "rows.jsonl:1"]
    assert texts == ["A litera", "First no", "Second n", "From JSO"]  # cut to max_chars
    assert skipped == [("rows.jsonl:2", "no text"), (str(tmp_path / "bad.txt"), "not UTF-8")]
    table = tmp_path / "t.csv"
    table.write_text("body\nx\n")
    with pytest.raises(KerasTransferError, match=r"has no column text.*Received: text_column='text'"):
        read_unlabelled_texts([str(table)])
    with pytest.raises(KerasTransferError, match=r"not a \.txt file.*Received: input="):
        read_unlabelled_texts([str(tmp_path / "notes" / "skip.md")])
