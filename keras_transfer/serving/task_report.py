"""Evaluates a regression or multi-label model into a `TaskReport`: metrics (`task_metrics`), a text report and,
with matplotlib, residual and predicted-vs-true plots (regression)."""

import dataclasses
import os

import keras
import numpy as np

from keras_transfer import io
from keras_transfer.errors import KerasTransferError
from keras_transfer.data.task_sources import find_task_images, task_dataset
from keras_transfer.layout import SPLITS_FILE
from keras_transfer.models.classifier import input_size
from keras_transfer.models.heads import get_thresholds, head_of, task_of
from keras_transfer.serving.evaluation import report_from_probabilities, write_report
from keras_transfer.serving.task_metrics import multilabel_metrics, regression_metrics

@dataclasses.dataclass
class TaskReport:
    """What `evaluate_task` measured: the task, the target or label names, the number of images and the metrics."""

    task: str
    names: list
    n: int
    metrics: dict

    def to_dict(self):
        return dataclasses.asdict(self)

    def summary(self):
        """A readable text report."""
        m = self.metrics
        if self.task == "regression":
            lines = [f"{self.n} images, {len(self.names)} target(s): MAE {m['mae']:.4f}, RMSE {m['rmse']:.4f}, "
                     f"R^2 {m['r2']:.4f}", "", f"{'target':<16}  mae       rmse      r2"]
            lines += [f"{name[:16]:<16}  {v['mae']:<8.4f}  {v['rmse']:<8.4f}  {v['r2']:.4f}"
                      for name, v in m["per_target"].items()]
            return "\n".join(lines) + "\n"
        shown = "n/a" if m["map"] is None else f"{m['map']:.4f}"
        lines = [f"{self.n} images, {len(self.names)} labels: micro F1 {m['micro_f1']:.4f}, macro F1 "
                 f"{m['macro_f1']:.4f}, mAP {shown}", "",
                 f"{'label':<16}  threshold  precision  recall  f1      AP      support"]
        for name, v in m["per_label"].items():
            ap = "n/a" if v["average_precision"] is None else f"{v['average_precision']:.4f}"
            lines.append(f"{name[:16]:<16}  {v['threshold']:<9.3f}  {v['precision']:<9.4f}  {v['recall']:<6.4f}  "
                         f"{v['f1']:<6.4f}  {ap:<6}  {v['support']}")
        return "\n".join(lines) + "\n"

    def __str__(self):
        return self.summary()


def task_outputs(model, data, batch_size=32):
    """`(outputs, targets)` of `model` on a dataset of `(images, targets)` batches or an `(x, y)` pair of arrays."""
    units = int(head_of(model).units)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = np.asarray(data[0], "float32"), np.asarray(data[1], "float64")
        outputs = keras.ops.convert_to_numpy(model.predict(x, batch_size=batch_size, verbose=0))
        return np.asarray(outputs, "float64"), y.reshape(len(x), units)
    outputs, targets = [], []
    for batch in data:
        inputs = keras.tree.map_structure(np.asarray, batch[0])  # images, or a text model's token dict
        outputs.append(np.asarray(keras.ops.convert_to_numpy(model.predict_on_batch(inputs)), "float64"))
        targets.append(np.asarray(batch[1], "float64").reshape(len(outputs[-1]), units))
    if not outputs:
        raise KerasTransferError("The dataset is empty. Received: data=<empty tf.data.Dataset>")
    return np.concatenate(outputs), np.concatenate(targets)


def report_from_outputs(task, outputs, targets, names, thresholds=None):
    """A `TaskReport` from raw model outputs (values, or label probabilities) and the true targets."""
    if task == "regression":
        metrics = regression_metrics(outputs, targets, names)
    elif task == "multilabel":
        metrics = multilabel_metrics(outputs, targets, 0.5 if thresholds is None else thresholds, names)
    else:
        raise KerasTransferError(f"A TaskReport is for regression or multilabel models. Received: task={task!r}")
    return TaskReport(task=task, names=list(names), n=int(len(targets)), metrics=metrics)


def evaluate_task(model, data, *, batch_size=32, out=None):
    """Evaluates a regression or multi-label model (thresholds: the model's own) on `(images, targets)`.

    Args:
        model: a model made by `heads.build_model` with `task="regression"` or `"multilabel"`.
        data: a `tf.data.Dataset` of `(images, targets)` batches or an `(x, y)` pair of arrays.
        out: optional folder for `report.json`, `report.txt` and (regression, with matplotlib) the plots.

    Returns:
        A `TaskReport`.

    Example:
    >>> model = build_model("vgg16", "regression", outputs=1, weights=None, input_size=32)
    >>> evaluate_task(model, (np.zeros((4, 32, 32, 3)), np.arange(4.0))).n
    4
    """
    if out is not None:
        io.check_writable(out, "the report")
    outputs, targets = task_outputs(model, data, batch_size)
    report = report_of(model, outputs, targets)
    if out is not None:
        write_report(report, out, outputs, targets)
    return report


def report_of(model, outputs, targets, class_names=None, *, top_k=5, worst=10, ids=None):
    """The report of `model`'s raw `outputs` against the true `targets`, for the model's task: an
    `EvaluationReport` (int labels; `class_names`; `ids` name the most confidently wrong examples) or a `TaskReport`
    (its names and thresholds: the model's own)."""
    task = task_of(model)
    if task == "classification":
        return report_from_probabilities(outputs, targets, class_names, top_k=top_k, worst=worst, paths=ids)
    outputs = np.asarray(outputs, "float64")
    names = head_of(model).class_names or [str(i) for i in range(outputs.shape[1])]
    targets = np.asarray(targets, "float64").reshape(outputs.shape)
    return report_from_outputs(task, outputs, targets, names, get_thresholds(model))


def evaluate_task_run(model, run_dir, *, data_dir=None, split=None, batch_size=32, out=None, antialias=False):
    """Evaluates a regression or multi-label run's model on a manifest (`data_dir`) or a split of the run's
    `splits.json` (default: test if it holds images, else val); returns `(TaskReport, description, paths written)`."""
    task = task_of(model)
    if data_dir is not None:
        found = align_labels(model, find_task_images(data_dir, task), data_dir)
        paths, targets, source = found.paths, found.targets, data_dir
    else:
        paths, targets, source = split_targets(run_dir, split)
    dataset = task_dataset(paths, targets, image_size=input_size(model)[0], batch_size=batch_size, antialias=antialias)
    outputs, targets = task_outputs(model, dataset, batch_size)
    report = report_of(model, outputs, targets)
    return report, source, write_report(report, out, outputs, targets) if out is not None else []


def align_labels(model, found, data_dir):
    """`found` (a `TaskImages`) with a multi-label model's label columns, in its order (0 for a label `found`
    lacks); a label the model does not know is an error."""
    names = head_of(model).class_names
    if task_of(model) == "multilabel" and names and found.names != list(names):
        unknown = sorted(set(found.names) - set(names))
        if unknown:
            raise KerasTransferError(f"{data_dir} has labels the model does not know: {', '.join(unknown)}. "
                                     f"Received: data_dir={data_dir!r}")
        index = [found.names.index(n) if n in found.names else None for n in names]
        found.targets = np.stack([found.targets[:, i] if i is not None else np.zeros(len(found.paths))
                                  for i in index], axis=1)
    return found


def split_targets(run_dir, split=None):
    """`(ids, target rows, description)` of a task run's split in `splits.json` (default: test if it holds
    examples, else val)."""
    splits = io.read_json(os.path.join(run_dir, SPLITS_FILE))
    split = split or ("test" if splits.get("test") else "val")
    if not splits.get(split):
        raise KerasTransferError(f"The {split} split of {run_dir} holds no examples. Received: split={split!r}")
    return [p for p, _ in splits[split]], [t for _, t in splits[split]], \
        f"the {split} split of {os.path.join(run_dir, SPLITS_FILE)}"
