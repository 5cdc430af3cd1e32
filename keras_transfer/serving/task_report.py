"""The report of a regression or multi-label model, a `TaskReport`: its metrics (`task_metrics`) and a text report
(`evaluation.evaluate` reports on any task and writes the plots)."""

import dataclasses

import numpy as np

from keras_transfer.errors import KerasTransferError
from keras_transfer.models.heads import head_of, task_of
from keras_transfer.serving.predict import model_outputs
from keras_transfer.serving.task_metrics import multilabel_metrics, regression_metrics

@dataclasses.dataclass
class TaskReport:
    """What `evaluation.evaluate` measured of a regression or multi-label model: the task, the target or label
    names, the number of examples and the metrics."""

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
    """`(outputs, targets)` of `model` on a dataset of `(inputs, targets)` batches or an `(x, y)` pair of arrays:
    `predict.model_outputs`, its targets as `(n, outputs)` rows."""
    outputs, targets, _ = model_outputs(model, data, batch_size=batch_size)
    return outputs, np.asarray(targets, "float64").reshape(outputs.shape)


def report_from_outputs(task, outputs, targets, names, thresholds=None):
    """A `TaskReport` from raw model outputs (values, or label probabilities) and the true targets."""
    if task == "regression":
        metrics = regression_metrics(outputs, targets, names)
    else:  # multilabel: `evaluation.report_of` sends a classifier's outputs to its `EvaluationReport`
        metrics = multilabel_metrics(outputs, targets, 0.5 if thresholds is None else thresholds, names)
    return TaskReport(task=task, names=list(names), n=int(len(targets)), metrics=metrics)


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
