"""Task heads beyond single-label classification: regression (values) and multi-label (tags).

Both are a `TaskHead`, a float32 `Dense` layer named `"predictions"` (where `build_classifier` puts its head), so
freezing, recipes, the linear probe, feature caching and export find it as they find a classifier's. Everything
a task needs at inference travels in the layer's config, and so in `.keras` files; the arithmetic is in its
`call`, and so in every SavedModel and TFLite graph:

- regression: a linear layer whose output is mapped back to the user's units, `y = z * target_scale +
  target_mean` (the targets' standardisation, stored in the model); the loss (`"mse"`, `"mae"`, `"huber"`) is
  computed on standardised values (`StandardisedRegressionLoss`), so one learning rate fits any unit.
- multi-label: one sigmoid per label, binary cross-entropy (or `"focal"`: `keras.losses.BinaryFocalCrossentropy`),
  and one decision threshold per label (`thresholds`, 0.5 until `set_thresholds` stores the ones chosen on
  validation data); optionally per-label positive weights for rare labels (`label_weights`, see
  `label_weights`: the loss is then `WeightedBinaryCrossentropy`).
"""

import keras
import numpy as np

from keras_transfer.errors import KerasTransferError, unknown_name
from keras_transfer.vocabulary import DEFAULT_LOSS, LOSSES, TASKS
from keras_transfer.models.classifier import HEAD_LAYER, ClassifierHead, build_classifier, head_layers
from keras_transfer.models.label_weights import WeightedBinaryCrossentropy
from keras_transfer.models.text_registry import is_text_backbone_name


@keras.saving.register_keras_serializable(package="keras_transfer")
class TaskHead(ClassifierHead):
    """The output layer of a regression or multi-label model (see the module docstring).

    Args:
        units: outputs (regression targets, or labels).
        task: `"regression"` or `"multilabel"`.
        loss: the training loss's name (`LOSSES[task]`), kept so a reloaded model trains the same way.
        target_mean: per-output mean of the regression targets' standardisation (default 0).
        target_scale: per-output scale of the regression targets' standardisation (default 1).
        thresholds: per-label decision thresholds of a multi-label head (default 0.5 each).
        label_weights: per-label positive weights of a multi-label head's loss (default: unweighted).
        **kwargs: `ClassifierHead`'s, e.g. `class_names`: the target or label names.
    """

    def __init__(self, units, task="regression", loss=None, target_mean=None, target_scale=None, thresholds=None,
                 label_weights=None, **kwargs):
        if task not in LOSSES:
            raise unknown_name("task", task, LOSSES)
        kwargs.setdefault("activation", "sigmoid" if task == "multilabel" else None)
        super().__init__(units, **kwargs)
        self.task, self.loss = task, loss or DEFAULT_LOSS[task]
        if self.loss not in LOSSES[task]:
            raise unknown_name("loss", self.loss, LOSSES[task], hint=f" (for task {task!r})")
        self.target_mean = _per_output(target_mean, units, 0.0, "target_mean")
        self.target_scale = _per_output(target_scale, units, 1.0, "target_scale")
        if any(s <= 0 for s in self.target_scale):
            raise KerasTransferError(f"target_scale must be positive. Received: target_scale={self.target_scale}")
        self.thresholds = _per_output(thresholds, units, 0.5, "thresholds") if task == "multilabel" else None
        self.label_weights = None if label_weights is None else _per_output(label_weights, units, 1.0, "label_weights")
        if self.label_weights is not None and (task != "multilabel" or min(self.label_weights) <= 0):
            raise KerasTransferError(f"label_weights are positive weights, one per label of a multilabel head. "
                                     f"Received: label_weights={label_weights!r} (task {task!r})")

    def call(self, inputs):
        outputs = super().call(inputs)
        if self.task == "regression":
            scale = keras.ops.convert_to_tensor(np.asarray(self.target_scale, "float32"))
            mean = keras.ops.convert_to_tensor(np.asarray(self.target_mean, "float32"))
            outputs = outputs * scale + mean
        return outputs

    def get_config(self):
        return {**super().get_config(), "task": self.task, "loss": self.loss, "target_mean": self.target_mean,
                "target_scale": self.target_scale, "thresholds": self.thresholds, "label_weights": self.label_weights}


def _per_output(values, units, default, name):
    """A list of `units` floats from one number, a sequence, or `None` (the default)."""
    if values is None:
        return [float(default)] * units
    try:
        array = np.asarray(values, "float64").reshape(-1)
    except (TypeError, ValueError):
        array = None
    if array is None or array.size not in (1, units) or not np.all(np.isfinite(array)):
        raise KerasTransferError(f"{name} must be one finite number or one per output ({units}). Received: "
                                 f"{name}={values!r}")
    values = np.broadcast_to(array, (units,))
    return [float(v) for v in values]


def build_model(backbone, task="classification", *, outputs=None, class_names=None, loss=None, target_mean=None,
                target_scale=None, thresholds=None, label_weights=None, **kwargs):
    """`build_classifier` for any task: a classifier, or the same network with a regression or multi-label head.

    Args:
        backbone: as in `build_classifier`.
        task: `"classification"`, `"regression"` or `"multilabel"`.
        outputs: regression targets or labels (default `len(class_names)`); for classification, `num_classes`.
        class_names: the class, target or label names.
        loss: regression `"mse"` (default), `"mae"`, `"huber"`; multi-label `"bce"` (default), `"focal"`.
        target_mean: the regression targets' mean (`standardisation(targets)`).
        target_scale: the regression targets' scale (`standardisation(targets)`).
        thresholds: per-label thresholds of a multi-label head (default 0.5).
        label_weights: per-label positive weights of a multi-label loss (`label_weights.positive_weights`).
        **kwargs: `build_classifier`'s other keywords (weights, input_size, augmentation, dropout, ...).

    Returns:
        A functional `keras.Model`, not compiled; `model.compile(loss=task_loss(model), ...)` and `fit` train it.

    Example:
    >>> model = build_model("mobilenetv2", "regression", outputs=2, weights=None, input_size=32, target_mean=[5, 1])
    >>> model.output_shape
    (None, 2)
    """
    if task not in TASKS:
        raise unknown_name("task", task, TASKS)
    if task == "classification":
        return build_classifier(backbone, outputs, class_names=class_names, **kwargs)
    units = len(class_names) if outputs is None and class_names is not None else outputs
    if not isinstance(units, int) or isinstance(units, bool) or units < 1:
        raise KerasTransferError(f"outputs must be an integer >= 1 (or give class_names). Received: outputs={units!r}")
    if class_names is not None and len(class_names) != units:
        raise KerasTransferError(f"class_names has {len(class_names)} names but outputs is {units}. "
                                 f"Received: class_names={list(class_names)!r}")
    name = kwargs.pop("name", None)
    base = build_classifier(backbone, 2, **kwargs)  # its head is replaced: the rest of the network is kept
    old = base.get_layer(HEAD_LAYER)
    head = TaskHead(units, task=task, loss=loss, target_mean=target_mean, target_scale=target_scale,
                    thresholds=thresholds, label_weights=label_weights, class_names=class_names,
                    backbone_name=old.backbone_name, name=HEAD_LAYER, kernel_initializer="zeros")
    return keras.Model(base.inputs, head(old.input), name=name or base.name.replace("_classifier", f"_{task}"))


def head_of(model):
    """The model's output layer (`"predictions"`)."""
    return head_layers(model)[-1]


def task_of(model):
    """`"classification"`, `"regression"` or `"multilabel"`: what the model's head predicts."""
    return getattr(head_of(model), "task", "classification") if HEAD_LAYER in {l.name for l in model.layers} \
        else "classification"


def is_text_model(model):
    """Whether `model`'s head sits on a text encoder (its `backbone_name` is `"text:<name>"`)."""
    return is_text_backbone_name(getattr(head_of(model), "backbone_name", None))


def standardisation(targets):
    """`(mean, scale)` per column of `targets` (n, outputs): the scale is the standard deviation, 1 where it is 0."""
    targets = np.asarray(targets, "float64").reshape(len(targets), -1)
    mean, scale = targets.mean(0), targets.std(0)
    scale[scale < 1e-12] = 1.0
    return mean.tolist(), scale.tolist()


def get_thresholds(model):
    """The per-label thresholds of a multi-label model (`None` for other tasks)."""
    return getattr(head_of(model), "thresholds", None) if task_of(model) == "multilabel" else None


def set_thresholds(model, thresholds):
    """Stores per-label thresholds in a multi-label model's head (saved with it from then on)."""
    head = head_of(model)
    if task_of(model) != "multilabel":
        raise KerasTransferError(f"Thresholds belong to a multi-label model. Received: a model of task "
                                 f"{task_of(model)!r}")
    values = _per_output(thresholds, int(head.units), 0.5, "thresholds")
    if not all(0.0 <= v <= 1.0 for v in values):
        raise KerasTransferError(f"thresholds must lie in [0, 1]. Received: thresholds={values}")
    head.thresholds = values
    return values


@keras.saving.register_keras_serializable(package="keras_transfer")
class StandardisedRegressionLoss(keras.losses.Loss):
    """MSE, MAE or Huber (delta 1) on standardised targets: `(y - mean) / scale` for both truth and prediction."""

    def __init__(self, kind="mse", target_mean=0.0, target_scale=1.0, name=None, **kwargs):
        super().__init__(name=name or kind, **kwargs)
        if kind not in LOSSES["regression"]:
            raise unknown_name("loss", kind, LOSSES["regression"])
        self.kind, self.target_mean, self.target_scale = kind, target_mean, target_scale

    def call(self, y_true, y_pred):
        mean = keras.ops.convert_to_tensor(np.asarray(self.target_mean, "float32"))
        scale = keras.ops.convert_to_tensor(np.asarray(self.target_scale, "float32"))
        y_pred = keras.ops.cast(y_pred, "float32")
        y_true = keras.ops.reshape(keras.ops.cast(y_true, "float32"), keras.ops.shape(y_pred))
        y_true, y_pred = (y_true - mean) / scale, (y_pred - mean) / scale
        if self.kind == "mse":
            return keras.losses.mean_squared_error(y_true, y_pred)
        if self.kind == "mae":
            return keras.losses.mean_absolute_error(y_true, y_pred)
        return keras.losses.huber(y_true, y_pred, delta=1.0)

    def get_config(self):
        return {**super().get_config(), "kind": self.kind, "target_mean": self.target_mean,
                "target_scale": self.target_scale}


def task_loss(model):
    """The loss a regression or multi-label model trains with (its head names it); `None` for a classifier."""
    task, head = task_of(model), head_of(model)
    if task == "regression":
        return StandardisedRegressionLoss(head.loss, head.target_mean, head.target_scale)
    if task == "multilabel" and getattr(head, "label_weights", None):
        return WeightedBinaryCrossentropy(head.label_weights, focal=head.loss == "focal")
    if task == "multilabel":
        return keras.losses.BinaryFocalCrossentropy() if head.loss == "focal" else keras.losses.BinaryCrossentropy()
    return None


def task_metrics(model):
    """Training-time metrics: MAE and RMSE (in the user's units) for regression, binary accuracy for multi-label."""
    task = task_of(model)
    if task == "regression":
        return [keras.metrics.MeanAbsoluteError(name="mae"), keras.metrics.RootMeanSquaredError(name="rmse")]
    if task == "multilabel":
        return [keras.metrics.BinaryAccuracy(name="binary_accuracy")]
    return None
