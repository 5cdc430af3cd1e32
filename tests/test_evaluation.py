"""`evaluate`: every number equals scikit-learn's on the model's raw outputs (softmax and sigmoid heads), the
worst examples, the written report, and `keras-transfer evaluate` on a real run folder."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn import metrics

from keras_transfer import EvaluationReport, evaluate
from keras_transfer.cli import main
from keras_transfer.errors import KerasTransferError
from keras_transfer.serving.evaluation import report_from_probabilities
from keras_transfer.data.images import load_images

NAMES = ["ant", "bee", "cow", "dog"]


def tiny_classifier(num_classes, seed=0, size=32):
    """Flattened pixels -> one dense layer: fast, and its predictions spread over the classes."""
    units, activation = (1, "sigmoid") if num_classes == 2 else (num_classes, "softmax")
    init = keras.initializers.RandomNormal(stddev=0.05, seed=seed)
    return keras.Sequential([keras.Input((size, size, 3)), keras.layers.Rescaling(1 / 255.0),
                             keras.layers.Flatten(), keras.layers.Dense(units, activation=activation,
                                                                        kernel_initializer=init)])


def data(n=48, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, (n, 32, 32, 3)).astype("float32"), rng.integers(0, classes, n)


def assert_matches_sklearn(report, y, predicted):
    k = len(report.class_names)
    labels = list(range(k))
    assert report.n == len(y)
    assert report.accuracy == pytest.approx(metrics.accuracy_score(y, predicted))
    assert report.confusion_matrix == metrics.confusion_matrix(y, predicted, labels=labels).tolist()
    p, r, f, s = metrics.precision_recall_fscore_support(y, predicted, labels=labels, zero_division=0)
    for i, name in enumerate(report.class_names):
        got = report.per_class[name]
        assert [got["precision"], got["recall"], got["f1"]] == pytest.approx([p[i], r[i], f[i]])
        assert got["support"] == s[i]
    for average in ("macro", "weighted"):
        p, r, f, _ = metrics.precision_recall_fscore_support(y, predicted, labels=labels, average=average,
                                                             zero_division=0)
        assert [getattr(report, average)[m] for m in ("precision", "recall", "f1")] == pytest.approx([p, r, f])


def test_softmax_report_equals_sklearn_on_the_raw_outputs():
    model, (x, y) = tiny_classifier(4), data()
    raw = model.predict(x, verbose=0)
    predicted = raw.argmax(1)
    assert len(set(predicted)) >= 2 and 0 < (predicted == y).mean() < 1  # a test that can fail

    report = evaluate(model, (x, y), class_names=NAMES, top_k=2)

    assert isinstance(report, EvaluationReport) and report.class_names == NAMES
    assert_matches_sklearn(report, y, predicted)
    assert report.top_k == 2
    assert report.top_k_accuracy == pytest.approx(metrics.top_k_accuracy_score(y, raw, k=2, labels=range(4)))
    assert evaluate(model, (x, y), top_k=10).top_k == 4  # k is capped at the number of classes
    assert evaluate(model, (x, y)).class_names == ["0", "1", "2", "3"]


def test_sigmoid_head_is_read_as_two_classes():
    model, (x, y) = tiny_classifier(2, seed=3), data(classes=2)
    raw = model.predict(x, verbose=0)[:, 0]
    predicted = (raw > 0.5).astype(int)
    assert 0 < predicted.mean() < 1

    report = evaluate(model, (x, y), class_names=["no", "yes"], top_k=1)

    assert_matches_sklearn(report, y, predicted)
    assert report.top_k_accuracy == pytest.approx(metrics.top_k_accuracy_score(y, raw, k=1))
    assert evaluate(model, (x, y)).top_k == 2 and evaluate(model, (x, y)).top_k_accuracy == 1.0
    for w in report.worst:
        p = raw[w["index"]]
        assert w["probability"] == pytest.approx(max(p, 1 - p))


def test_zero_division_counts_as_zero_like_sklearn():
    # class 2 is never predicted and never true; class 1 is predicted but never true.
    probabilities = np.array([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.6, 0.4, 0.0], [0.7, 0.3, 0.0]])
    y = np.array([0, 0, 0, 0])
    report = report_from_probabilities(probabilities, y, ["a", "b", "c"])
    assert_matches_sklearn(report, y, probabilities.argmax(1))
    assert report.per_class["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert report.per_class["c"]["precision"] == 0.0


def test_worst_examples_are_wrong_and_sorted_by_confidence(image_folder):
    from conftest import FOLDER_CLASSES

    names = sorted(FOLDER_CLASSES)
    paths = sorted(os.path.join(image_folder, c, f) for c in names for f in os.listdir(os.path.join(image_folder, c)))
    labels = [names.index(os.path.basename(os.path.dirname(p))) for p in paths]
    model = tiny_classifier(3, seed=1)
    raw = model.predict(load_images(paths, 32), verbose=0)

    report = evaluate(model, (paths, labels), class_names=names, worst=4, batch_size=5)

    wrong = int((raw.argmax(1) != labels).sum())
    assert wrong >= 4 and len(report.worst) == 4
    assert report.accuracy == pytest.approx(1 - wrong / len(paths), abs=1e-9)
    probabilities = [w["probability"] for w in report.worst]
    assert probabilities == sorted(probabilities, reverse=True)
    most_confident_error = max(raw[i].max() for i in range(len(paths)) if raw[i].argmax() != labels[i])
    assert probabilities[0] == pytest.approx(most_confident_error, rel=1e-5)
    for w in report.worst:
        i = paths.index(w["path"])
        assert w["true"] == names[labels[i]] != w["predicted"] == names[raw[i].argmax()]
        assert w["probability"] == pytest.approx(float(raw[i].max()), rel=1e-5)
    assert evaluate(model, (paths, labels), worst=0).worst == []


def test_a_dataset_gives_the_same_report_as_arrays_and_out_writes_the_files(tmp_path):
    model, (x, y) = tiny_classifier(4), data()
    one_hot = np.eye(4, dtype="float32")[y]  # one-hot labels are read as their argmax
    dataset = tf.data.Dataset.from_tensor_slices((x, one_hot)).batch(10)

    report = evaluate(model, dataset, class_names=NAMES, out=str(tmp_path / "eval"))

    expected = evaluate(model, (x, y), class_names=NAMES).to_dict()
    assert report.confusion_matrix == expected["confusion_matrix"]
    assert report.accuracy == pytest.approx(expected["accuracy"])
    assert report.macro == pytest.approx(expected["macro"])
    assert report.worst[0]["index"] == expected["worst"][0]["index"]
    with open(tmp_path / "eval" / "report.json") as f:
        written = json.load(f)
    assert written["confusion_matrix"] == report.confusion_matrix and written["n"] == 48
    assert written["per_class"]["ant"]["support"] == int((y == 0).sum())
    text = (tmp_path / "eval" / "report.txt").read_text()
    assert text == report.summary() and f"accuracy {report.accuracy:.4f}" in text and "weighted avg" in text
    assert (tmp_path / "eval" / "confusion_matrix.png").stat().st_size > 1000


@pytest.mark.parametrize("kwargs, message", [
    (dict(top_k=0), "top_k must be a positive int"),
    (dict(worst=-1), "worst must be a non-negative int"),
    (dict(class_names=["a", "b"]), "The model predicts 4 classes but 2 class names were given"),
])
def test_bad_arguments_are_named(kwargs, message):
    model, (x, y) = tiny_classifier(4), data(n=4)
    with pytest.raises(KerasTransferError, match=message):
        evaluate(model, (x, y), **kwargs)


def test_bad_data_is_named():
    model, (x, y) = tiny_classifier(4), data(n=4)
    with pytest.raises(KerasTransferError, match=r"Labels must be class indices in \[0, 4\)"):
        evaluate(model, (x, y + 4))
    with pytest.raises(KerasTransferError, match="data must be a tf.data.Dataset"):
        evaluate(model, x)
    with pytest.raises(KerasTransferError, match="x must be a non-empty batch of images"):
        evaluate(model, (x[0], y))


# --- keras-transfer evaluate on a real run folder -------------------------------------------------------------


@pytest.fixture
def run_folder(finished_run):
    """(images, run folder) of the session's finished two_phase run (tests/conftest.py `finished_run`)."""
    return finished_run


def test_training_with_a_test_split_evaluates_best_keras_on_it(run_folder):
    _, out = run_folder
    with open(os.path.join(out, "splits.json")) as f:
        test = json.load(f)["test"]
    model = keras.saving.load_model(os.path.join(out, "best.keras"))
    raw = model.predict(load_images([p for p, _ in test], 32), verbose=0)
    with open(os.path.join(out, "report.json")) as f:
        report = json.load(f)
    assert report["n"] == len(test) == 6
    assert report["accuracy"] == pytest.approx(metrics.accuracy_score([label for _, label in test], raw.argmax(1)))
    assert {"report.txt", "history.png", "confusion_matrix.png"} <= set(os.listdir(out))


def test_cli_evaluate_on_the_test_split_matches_raw_predictions(run_folder, capsys):
    images, out = run_folder
    for name in ("report.json", "report.txt", "confusion_matrix.png"):
        if os.path.exists(os.path.join(out, name)):
            os.remove(os.path.join(out, name))

    assert main(["evaluate", out, "--top-k", "2"]) == 0

    printed = capsys.readouterr().out
    assert "test split" in printed and "accuracy" in printed
    with open(os.path.join(out, "splits.json")) as f:
        splits = json.load(f)
    paths, labels = [p for p, _ in splits["test"]], [label for _, label in splits["test"]]
    model = keras.saving.load_model(os.path.join(out, "best.keras"))
    raw = model.predict(load_images(paths, 32), verbose=0)
    with open(os.path.join(out, "report.json")) as f:
        report = json.load(f)
    assert report["n"] == len(paths) == 6
    assert report["confusion_matrix"] == metrics.confusion_matrix(labels, raw.argmax(1), labels=[0, 1, 2]).tolist()
    assert report["accuracy"] == pytest.approx(metrics.accuracy_score(labels, raw.argmax(1)))
    assert report["top_k"] == 2
    assert os.path.isfile(os.path.join(out, "confusion_matrix.png"))


def test_cli_evaluate_on_a_folder_and_on_the_val_split(run_folder, tmp_path, capsys):
    images, out = run_folder
    assert main(["evaluate", out, images, "--out", str(tmp_path / "all")]) == 0
    with open(tmp_path / "all" / "report.json") as f:
        assert json.load(f)["n"] == 24
    assert main(["evaluate", out, "--split", "val", "--out", str(tmp_path / "val")]) == 0
    assert "val split" in capsys.readouterr().out
    with open(tmp_path / "val" / "report.json") as f:
        assert json.load(f)["n"] == 6


def test_cli_evaluate_errors_are_one_line(run_folder, tmp_path, capsys):
    _, out = run_folder
    assert main(["evaluate", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Run folder not found") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "nowhere").exists()  # refused before a report folder is written
    assert main(["evaluate", out, str(tmp_path), "--split", "test"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and "split" in err
