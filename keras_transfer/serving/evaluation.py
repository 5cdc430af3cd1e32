"""Evaluates a classifier on labelled images: accuracy, top-k accuracy, per-class precision, recall and
F1, the confusion matrix and the most confidently wrong examples, as an `EvaluationReport`.

Everything is computed with numpy from the model's probabilities (a softmax, or one sigmoid unit read as
`[1 - p, p]`); a precision or recall whose denominator is zero counts as 0 (scikit-learn's
`zero_division=0`).
"""

import dataclasses
import json
import os

import numpy as np

from keras_transfer import io
from keras_transfer.data.pipeline import make_dataset
from keras_transfer.data.sources import find_images
from keras_transfer.errors import KerasTransferError
from keras_transfer.layout import CONFUSION_PNG, REPORT_JSON, REPORT_TXT, SPLITS_FILE
from keras_transfer.models.classifier import input_size
from keras_transfer.serving import plots
from keras_transfer.serving.loading import default_class_names
from keras_transfer.serving.predict import class_probabilities

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


def _is_paths(values):
    return len(values) > 0 and all(isinstance(v, (str, os.PathLike)) for v in values)


def _dataset_predictions(model, dataset):
    """`(probabilities, labels, paths_or_None)`; paths where the batches carry them (`(images, labels, paths)`)."""
    probabilities, labels, paths = [], [], []
    for batch in dataset:
        if not (isinstance(batch, (tuple, list)) and len(batch) >= 2):
            raise KerasTransferError("The dataset must yield (images, labels) batches. "
                                     f"Received: a batch of type {type(batch).__name__}")
        probabilities.append(class_probabilities(model.predict_on_batch(np.asarray(batch[0]))))
        labels.append(_labels(np.asarray(batch[1])))
        if len(batch) == 3:
            paths += [os.fsdecode(p) for p in np.asarray(batch[2]).tolist()]
    if not probabilities:
        raise KerasTransferError("The dataset is empty. Received: data=<empty tf.data.Dataset>")
    return np.concatenate(probabilities), np.concatenate(labels), paths or None


def predictions(model, data, *, batch_size=32, antialias=False):
    """`(probabilities, labels, paths_or_None)` of `model` on a dataset, `(paths, labels)` or `(x, y)`; a file
    that fails to decode is named in a warning and left out (its path with it)."""
    if hasattr(data, "element_spec"):  # a tf.data.Dataset
        return _dataset_predictions(model, data)
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise KerasTransferError("data must be a tf.data.Dataset of (images, labels), a (paths, labels) pair or "
                                 f"an (x, y) pair of arrays. Received: data of type {type(data).__name__}")
    x, y = data
    if _is_paths(x):
        dataset = make_dataset([os.fspath(p) for p in x], y, image_size=input_size(model), batch_size=batch_size,
                               antialias=antialias, include_paths=True, fill_skipped=False)
        return _dataset_predictions(model, dataset)
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 4 or len(x) != len(y) or not len(x):
        raise KerasTransferError(f"x must be a non-empty batch of images (n, height, width, 3) with one label each. "
                                 f"Received: x.shape={x.shape}, len(y)={len(y)}")
    return class_probabilities(model.predict(x, batch_size=batch_size, verbose=0)), _labels(y), None


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
        written += plots.plot_regression(outputs, targets, report.names, out)
    return written


def relabel(labels, names_of_labels, class_names, source):
    """Labels re-indexed from `names_of_labels` to the model's `class_names`; a class the model lacks is an error."""
    unknown = sorted(set(names_of_labels) - set(class_names))
    if unknown:
        raise KerasTransferError(f"{source} has classes the model does not know: {', '.join(unknown)}. The model's "
                                 f"classes: {', '.join(class_names)}. Received: classes={sorted(names_of_labels)}")
    index = {name: class_names.index(name) for name in names_of_labels}
    return [index[names_of_labels[label]] for label in labels]


def evaluation_images(run_dir, class_names, *, data_dir=None, split=None):
    """`(paths, labels, description)` to evaluate a run on: the images in `data_dir`, else the run's
    `splits.json` split `split` (default: `"test"` if it holds images, else `"val"`). Labels follow `class_names`."""
    if data_dir is not None:
        if split is not None:
            raise KerasTransferError(f"split picks a split of the run's {SPLITS_FILE}; with a data folder every image "
                                     f"there is evaluated. Received: split={split!r}, data_dir={data_dir!r}")
        found = find_images(data_dir)
        return found.paths, relabel(found.labels, found.class_names, class_names, data_dir), data_dir
    file = os.path.join(run_dir, SPLITS_FILE)
    if not os.path.isfile(file):
        raise KerasTransferError(f"No {SPLITS_FILE} in {run_dir}: pass the images to evaluate on (DATA_DIR), or a run "
                                 f"folder written by `keras-transfer train`. Received: run_dir={run_dir!r}")
    splits = io.read_json(file)
    if split not in (None, "test", "val"):
        raise KerasTransferError(f"split must be 'test' or 'val'. Received: split={split!r}")
    split = split or ("test" if splits.get("test") else "val")
    rows = splits.get(split) or []
    if not rows:
        raise KerasTransferError(f"The {split} split of {file} holds no images: choose another split or pass "
                                 f"DATA_DIR. Received: split={split!r}")
    labels = relabel([label for _, label in rows], splits["class_names"], class_names, file)
    return [path for path, _ in rows], labels, f"the {split} split of {file}"


def evaluate(model, data, *, class_names=None, top_k=5, worst=10, batch_size=32, out=None, antialias=False):
    """Evaluates a classifier on labelled images.

    Args:
        model: a Keras classifier taking raw RGB pixels in [0, 255] (softmax, or one sigmoid unit for 2 classes).
        data: a `tf.data.Dataset` of `(images, labels)` batches, a `(paths, labels)` pair (read with
            `pipeline.make_dataset` at the model's input size) or an `(x, y)` pair of arrays.
        class_names: names in label order (default: the model's own, else "0", "1", ...).
        top_k: the k of the top-k accuracy (at most the number of classes).
        worst: how many of the most confidently wrong examples to list.
        batch_size: batch size for paths and arrays.
        out: optional folder to write `report.json`, `report.txt` and `confusion_matrix.png` into.
        antialias: for paths: resize as the model's training data was (see `pipeline.make_dataset`).

    Returns:
        An `EvaluationReport`.

    Example:
    >>> import numpy as np; from keras_transfer import build_classifier
    >>> model = build_classifier("vgg16", 3, weights=None, input_size=32)
    >>> x, y = np.zeros((4, 32, 32, 3), "float32"), np.array([0, 1, 2, 0])
    >>> evaluate(model, (x, y)).n
    4
    """
    for name, value in (("top_k", top_k), ("worst", worst), ("batch_size", batch_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < (0 if name == "worst" else 1):
            raise KerasTransferError(f"{name} must be a {'non-negative' if name == 'worst' else 'positive'} int. "
                                     f"Received: {name}={value!r}")
    names = default_class_names(model, class_names)
    if out is not None:
        io.check_writable(out, "the report")  # before the work, not after it
    probabilities, labels, paths = predictions(model, data, batch_size=batch_size, antialias=antialias)
    report = report_from_probabilities(probabilities, labels, names, top_k=top_k, worst=worst, paths=paths)
    if out is not None:
        write_report(report, out)
    return report
