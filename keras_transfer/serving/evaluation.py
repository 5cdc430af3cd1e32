"""Evaluates a model of any task on labelled data: the model's outputs (`predict.model_outputs`; a text run's,
`predict_text.predict_texts`) go to the report of its task (`report_of`), written by `write_report`. A classifier's
report is an `EvaluationReport`: accuracy, top-k accuracy, per-class precision, recall and F1, the confusion matrix
and the most confidently wrong examples; a regression or multi-label model's, a `task_report.TaskReport`.

Everything is computed with numpy from the model's probabilities (a softmax, or one sigmoid unit read as
`[1 - p, p]`); a precision or recall whose denominator is zero counts as 0 (scikit-learn's
`zero_division=0`).
"""

import dataclasses
import json
import os

import numpy as np

from keras_transfer import io
from keras_transfer.data.sources import find_images
from keras_transfer.data.task_sources import find_task_images
from keras_transfer.errors import KerasTransferError
from keras_transfer.layout import CONFUSION_PNG, REPORT_JSON, REPORT_TXT, SPLITS_FILE
from keras_transfer.models.heads import get_thresholds, task_of
from keras_transfer.serving import plots
from keras_transfer.serving.loading import default_class_names
from keras_transfer.serving.predict import check_counts, class_probabilities, model_outputs
from keras_transfer.serving.task_report import align_labels, report_from_outputs

@dataclasses.dataclass
class EvaluationReport:
    """What `evaluate` measured.

    Attributes:
        class_names: the class names, in label order.
        n: number of examples.
        accuracy: share of examples whose most probable class is the true one.
        top_k: the k of `top_k_accuracy` (at most the number of classes).
        top_k_accuracy: share of examples whose true class is among the k most probable.
        per_class: `{class_name: {"precision", "recall", "f1", "support"}}`.
        macro: unweighted mean of the per-class precision, recall and F1.
        weighted: their mean weighted by support.
        confusion_matrix: counts, rows the true class, columns the predicted one.
        worst: the most confidently wrong examples, most confident first: `{"index", "path", "true",
            "predicted", "probability"}` (path None when the data had none).
    """

    class_names: list
    n: int
    accuracy: float
    top_k: int
    top_k_accuracy: float
    per_class: dict
    macro: dict
    weighted: dict
    confusion_matrix: list
    worst: list

    def to_dict(self):
        return dataclasses.asdict(self)

    def summary(self):
        """A readable text report."""
        width = max(len("weighted avg"), *(len(name) for name in self.class_names))
        lines = [f"{self.n} examples, {len(self.class_names)} classes: accuracy {self.accuracy:.4f}, "
                 f"top-{self.top_k} accuracy {self.top_k_accuracy:.4f}", "",
                 f"{'':<{width}}  precision  recall  f1      support"]
        rows = [(name, self.per_class[name]) for name in self.class_names]
        rows += [("macro avg", dict(self.macro, support=self.n)), ("weighted avg", dict(self.weighted, support=self.n))]
        for name, m in rows:
            scores = f"{m['precision']:<9.4f}  {m['recall']:<6.4f}  {m['f1']:<6.4f}"
            lines.append(f"{name:<{width}}  {scores}  {m['support']}")
        lines += ["", "Confusion matrix (rows: true class, columns: predicted):"]
        cell = max(5, *(len(str(v)) for row in self.confusion_matrix for v in row))
        lines.append(f"{'':<{width}}  " + " ".join(f"{name[:cell]:>{cell}}" for name in self.class_names))
        for name, row in zip(self.class_names, self.confusion_matrix):
            lines.append(f"{name:<{width}}  " + " ".join(f"{v:>{cell}}" for v in row))
        if self.worst:
            lines += ["", f"Most confidently wrong ({len(self.worst)}):"]
            for w in self.worst:
                where = w["path"] if w["path"] is not None else f"#{w['index']}"
                lines.append(f"  {where}: true {w['true']}, predicted {w['predicted']} ({w['probability']:.4f})")
        return "\n".join(lines) + "\n"

    def __str__(self):
        return self.summary()


def confusion_matrix(labels, predicted, num_classes):
    """Counts `(num_classes, num_classes)`: rows the true class, columns the predicted one."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels, np.int64), np.asarray(predicted, np.int64)), 1)
    return matrix


def _ratio(numerator, denominator):
    """numerator / denominator, 0 where the denominator is 0."""
    numerator, denominator = np.asarray(numerator, np.float64), np.asarray(denominator, np.float64)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator != 0)


def per_class_scores(matrix):
    """`(precision, recall, f1, support)` arrays, one value per class, from a confusion matrix."""
    true_positive = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1)
    precision = _ratio(true_positive, matrix.sum(axis=0))
    recall = _ratio(true_positive, support)
    f1 = _ratio(2 * precision * recall, precision + recall)
    return precision, recall, f1, support


def top_k_hits(probabilities, labels, k):
    """True where the label is among the k most probable classes (ties go to the higher class index, as in
    scikit-learn's `top_k_accuracy_score`)."""
    ranked = np.argsort(probabilities, axis=1, kind="mergesort")[:, ::-1][:, :k]
    return (ranked == np.asarray(labels)[:, None]).any(axis=1)


def _worst(probabilities, labels, predicted, paths, class_names, worst):
    wrong = np.flatnonzero(predicted != labels)
    confidence = probabilities[wrong, predicted[wrong]]
    order = wrong[np.argsort(-confidence, kind="stable")][:worst]
    return [{"index": int(i), "path": None if paths is None else paths[i], "true": class_names[labels[i]],
             "predicted": class_names[predicted[i]], "probability": float(probabilities[i, predicted[i]])}
            for i in order]


def report_from_probabilities(probabilities, labels, class_names, *, top_k=5, worst=10, paths=None):
    """An `EvaluationReport` from class probabilities `(n, num_classes)` and int labels."""
    probabilities, labels = class_probabilities(probabilities), np.asarray(labels, np.int64).reshape(-1)
    num_classes = probabilities.shape[1]
    if len(labels) != len(probabilities) or not len(labels):
        raise KerasTransferError(f"Need one label per prediction, and at least one. "
                                 f"Received: {len(labels)} labels for {len(probabilities)} predictions")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise KerasTransferError(f"Labels must be class indices in [0, {num_classes}). "
                                 f"Received: labels from {labels.min()} to {labels.max()}")
    predicted = probabilities.argmax(axis=1)
    matrix = confusion_matrix(labels, predicted, num_classes)
    precision, recall, f1, support = per_class_scores(matrix)
    weights = support / support.sum()
    k = min(top_k, num_classes)
    return EvaluationReport(
        class_names=list(class_names), n=int(len(labels)), accuracy=float((predicted == labels).mean()), top_k=k,
        top_k_accuracy=float(top_k_hits(probabilities, labels, k).mean()),
        per_class={name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                          "support": int(support[i])} for i, name in enumerate(class_names)},
        macro={"precision": float(precision.mean()), "recall": float(recall.mean()), "f1": float(f1.mean())},
        weighted={"precision": float(precision @ weights), "recall": float(recall @ weights),
                  "f1": float(f1 @ weights)},
        confusion_matrix=matrix.tolist(), worst=_worst(probabilities, labels, predicted, paths, class_names, worst))


def _labels(y):
    """Int labels from int labels or one-hot rows."""
    y = np.asarray(y)
    return y.argmax(axis=-1) if y.ndim == 2 and y.shape[1] > 1 else y.reshape(-1).astype(np.int64)


def report_of(model, outputs, targets, class_names=None, *, top_k=5, worst=10, ids=None):
    """The report of `model`'s raw `outputs` against the true `targets`, for the model's task: an
    `EvaluationReport` (int labels or one-hot rows; `ids` name the most confidently wrong examples) or a
    `TaskReport` (its thresholds: the model's own); the names: `class_names`, else the model's own, else "0", "1"..."""
    task, names = task_of(model), default_class_names(model, class_names)
    if task == "classification":
        return report_from_probabilities(outputs, _labels(targets), names, top_k=top_k, worst=worst, paths=ids)
    outputs = np.asarray(outputs, "float64")
    targets = np.asarray(targets, "float64").reshape(outputs.shape)
    return report_from_outputs(task, outputs, targets, names, get_thresholds(model))


def report_and_write(model, outputs, targets, class_names=None, *, top_k=5, worst=10, ids=None, out=None):
    """`(report, paths written)`: `report_of`, written into `out` by `write_report` when `out` is given."""
    report = report_of(model, outputs, targets, class_names, top_k=top_k, worst=worst, ids=ids)
    if out is None:
        return report, []
    return report, write_report(report, out, outputs, targets)


def write_report(report, out, outputs=None, targets=None):
    """Writes `report.json`, `report.txt` and, with matplotlib, the report's plots into `out`: an
    `EvaluationReport`'s `confusion_matrix.png`; a regression `TaskReport`'s predicted-vs-true and residual plots
    (given its `outputs` and `targets`). Returns the paths written."""
    os.makedirs(out, exist_ok=True)
    written = [os.path.join(out, REPORT_JSON), os.path.join(out, REPORT_TXT)]
    io.write_text(written[0], json.dumps(report.to_dict(), indent=2) + "\n")
    io.write_text(written[1], report.summary())
    if not plots.matplotlib_available():
        return written
    if isinstance(report, EvaluationReport):
        written.append(plots.plot_confusion_matrix(report.confusion_matrix, report.class_names,
                                                   os.path.join(out, CONFUSION_PNG)))
    elif report.task == "regression" and outputs is not None:
        written += plots.plot_regression(outputs, np.reshape(targets, np.shape(outputs)), report.names, out)
    return written


def relabel(labels, names_of_labels, class_names, source):
    """Labels re-indexed from `names_of_labels` to the model's `class_names`; a class the model lacks is an error."""
    unknown = sorted(set(names_of_labels) - set(class_names))
    if unknown:
        raise KerasTransferError(f"{source} has classes the model does not know: {', '.join(unknown)}. The model's "
                                 f"classes: {', '.join(class_names)}. Received: classes={sorted(names_of_labels)}")
    index = {name: class_names.index(name) for name in names_of_labels}
    return [index[names_of_labels[label]] for label in labels]


def evaluation_images(model, run_dir, class_names, *, data_dir=None, split=None):
    """`(paths, targets, description)` to evaluate a run's `model` on: the images of `data_dir` (a class folder, or
    a task's manifest), else the run's `splits.json` split `split` (`split_examples`; `api.evaluate_run` refuses
    both). Class labels follow `class_names`; a multi-label model's columns, its own labels (`align_labels`)."""
    if data_dir is None:
        return split_examples(run_dir, split, class_names if task_of(model) == "classification" else None)
    if task_of(model) != "classification":
        found = align_labels(model, find_task_images(data_dir, task_of(model)), data_dir)
        return found.paths, found.targets, data_dir
    found = find_images(data_dir)
    return found.paths, relabel(found.labels, found.class_names, class_names, data_dir), data_dir


def split_examples(run_dir, split=None, class_names=None):
    """`(ids, targets, description)` of the split `split` of a run's `splits.json` (default: `"test"` if it holds
    examples, else `"val"`); with `class_names`, the labels re-indexed to them."""
    file = os.path.join(run_dir, SPLITS_FILE)
    if not os.path.isfile(file):
        raise KerasTransferError(f"No {SPLITS_FILE} in {run_dir}: pass the examples to evaluate on (DATA_DIR), or a "
                                 f"run folder written by `keras-transfer train`. Received: run_dir={run_dir!r}")
    splits = io.read_json(file)
    if split not in (None, "test", "val"):
        raise KerasTransferError(f"split must be 'test' or 'val'. Received: split={split!r}")
    split = split or ("test" if splits.get("test") else "val")
    rows = splits.get(split) or []
    if not rows:
        raise KerasTransferError(f"The {split} split of {file} holds no examples: choose another split or pass "
                                 f"DATA_DIR. Received: split={split!r}")
    targets = [target for _, target in rows]
    if class_names is not None:
        targets = relabel(targets, splits["class_names"], class_names, file)
    return [path for path, _ in rows], targets, f"the {split} split of {file}"


def evaluate(model, data, *, class_names=None, top_k=5, worst=10, batch_size=32, out=None, antialias=False):
    """Evaluates a model of any task on labelled images (or a dataset of a text model's token ids).

    Args:
        model: a Keras model taking raw RGB pixels in [0, 255]: a classifier (softmax, or one sigmoid unit for 2
            classes), a regression or a multi-label model (its names and thresholds: its own).
        data: a `tf.data.Dataset` of `(images, labels or targets)` batches, a `(paths, labels or targets)` pair (read
            with `pipeline.make_dataset` at the model's input size) or an `(x, y)` pair of arrays.
        class_names: a classifier's names in label order (default: the model's own, else "0", "1", ...).
        top_k: the k of a classifier's top-k accuracy (at most the number of classes).
        worst: how many of a classifier's most confidently wrong examples to list.
        batch_size: batch size for paths and arrays.
        out: optional folder to write `report.json`, `report.txt` and the plots (`write_report`) into.
        antialias: for paths: resize as the model's training data was (see `pipeline.make_dataset`).

    Returns:
        An `EvaluationReport` (classification) or a `TaskReport` (regression, multilabel).

    Example:
    >>> import numpy as np; from keras_transfer import build_classifier
    >>> model = build_classifier("vgg16", 3, weights=None, input_size=32)
    >>> x, y = np.zeros((4, 32, 32, 3), "float32"), np.array([0, 1, 2, 0])
    >>> evaluate(model, (x, y)).n
    4
    """
    check_counts(top_k=top_k, worst=worst, batch_size=batch_size)
    if out is not None:
        io.check_writable(out, "the report")  # before the work, not after it
    outputs, targets, paths = model_outputs(model, data, batch_size=batch_size, antialias=antialias)
    return report_and_write(model, outputs, targets, class_names, top_k=top_k, worst=worst, ids=paths, out=out)[0]


evaluate_task = evaluate  # the name regression and multi-label models were evaluated with (deprecated)
