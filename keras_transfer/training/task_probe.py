"""The linear probe for regression and multi-label heads: the head fitted to convergence on frozen features.

`linear_probe.fit_linear_head` solves a softmax (or one-sigmoid) head; the two other tasks have their own
convex problems on the same standardised features, each solved exactly rather than by gradient steps:

- regression: ridge regression on the standardised targets (the head's `target_mean`/`target_scale`), in
  closed form (the primal normal equations, or the dual ones when there are fewer images than features). It
  minimises squared error whatever the head's loss; for `"mae"`/`"huber"` the fine-tuning phase that follows
  optimises the head's own loss from there. The L2 strength is chosen by the validation loss.
- multi-label: one logistic regression per label (independent sigmoids), solved jointly by L-BFGS (their sum
  separates by label), each positive term weighted by the head's `label_weights` when it has them (the
  weighted loss the later phases train); the L2 strength is chosen by the validation loss.

The loss reported is the compiled loss's (MSE/MAE/Huber on standardised values; binary or focal cross-entropy),
so a later phase's `val_loss` compares with the probe's (the checkpoint and `keep_start` rely on it).
"""

import dataclasses
import time

import numpy as np

from keras_transfer.errors import KerasTransferError
from keras_transfer.models.classifier import feature_extractor
from keras_transfer.models.heads import head_of, task_of
from keras_transfer.training.linear_probe import C_GRID, write_head, extract, standardiser, takes_views


@dataclasses.dataclass
class TaskProbe:
    """What `fit_task_head` chose and reached: the L2 strength, `{l2: validation loss}`, and the epoch logs."""

    task: str
    l2: float
    validation: dict
    train_logs: dict
    val_logs: dict
    seconds: float

    def logs(self):
        """The epoch logs Keras would write: the compiled loss and metrics (+ `val_` ones)."""
        return {**self.train_logs, **{f"val_{k}": v for k, v in (self.val_logs or {}).items()}}

    def __str__(self):
        shown = ", ".join(f"{k} {v:.4f}" for k, v in self.logs().items())
        return f"{self.task} probe: l2 {self.l2:.3g}; {shown}; {self.seconds:.1f} s"


def task_features(model, data, batch_size=64, *, extractor=None, views=0, seed=0):
    """`(features, targets)`: `linear_probe.extract`'s features (with `views` shifted copies of each image) and the
    float targets `(n, outputs)`."""
    features, targets = extract(extractor or feature_extractor(model), data, batch_size, views=views, seed=seed)
    return features, targets.astype("float64").reshape(len(features), int(head_of(model).units))


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def task_logs(head, outputs, targets):
    """The compiled loss and metrics of `head` (a `TaskHead`) on the model's `outputs`, with numpy."""
    if head.task == "regression":
        r = (outputs - targets) / np.asarray(head.target_scale)  # the residual in standardised units
        per = {"mse": r ** 2, "mae": np.abs(r),
               "huber": np.where(np.abs(r) <= 1.0, 0.5 * r ** 2, np.abs(r) - 0.5)}[head.loss]
        error = outputs - targets
        return dict(loss=float(per.mean()), mae=float(np.abs(error).mean()), rmse=float(np.sqrt((error ** 2).mean())))
    p = np.clip(outputs, 1e-7, 1 - 1e-7)
    bce = -(targets * np.log(p) + (1 - targets) * np.log(1 - p))
    if head.loss == "focal":
        p_t = targets * p + (1 - targets) * (1 - p)
        bce = (1 - p_t) ** 2.0 * bce
    bce = _term_weights(head, targets) * bce  # WeightedBinaryCrossentropy's, when the head weighs rare labels
    accuracy = float(((outputs > 0.5) == (targets > 0.5)).mean())
    return dict(loss=float(bce.mean()), binary_accuracy=accuracy)


def _ridge(f, y, l2):
    """`argmin 1/(2n) |f W + b - y|^2 + l2/2 |W|^2` for centred `f`: `(W, b)`, primal or dual by shape."""
    n, d = f.shape
    if d <= n:
        kernel = np.linalg.solve(f.T @ f + n * l2 * np.eye(d), f.T @ (y - y.mean(0)))
    else:
        kernel = f.T @ np.linalg.solve(f @ f.T + n * l2 * np.eye(n), y - y.mean(0))
    return kernel, y.mean(0)


def _term_weights(head, targets):
    """Each `(image, label)` term's weight: `1 + (w_j - 1) y_ij` with the head's positive `label_weights`, else 1."""
    if getattr(head, "label_weights", None) is None:
        return np.ones_like(targets)
    return 1.0 + (np.asarray(head.label_weights) - 1.0) * targets


def _logistic(f, y, l2, max_iterations, weights=None):
    from scipy.optimize import minimize  # lazy: scipy loads only when a probe is fitted

    n, d = f.shape
    k = y.shape[1]
    weights = np.ones_like(y) if weights is None else weights

    def loss_and_grad(params):
        kernel, bias = params[:d * k].reshape(d, k), params[d * k:]
        z = f @ kernel + bias
        loss = (weights * (np.logaddexp(0.0, z) - y * z)).sum() / n + 0.5 * l2 * (kernel ** 2).sum()
        delta = weights * (_sigmoid(z) - y) / n
        return loss, np.concatenate([(f.T @ delta + l2 * kernel).ravel(), delta.sum(0)])

    result = minimize(loss_and_grad, np.zeros(d * k + k), jac=True, method="L-BFGS-B",
                      options=dict(maxiter=max_iterations, gtol=1e-6))
    return result.x[:d * k].reshape(d, k), result.x[d * k:]


def fit_task_head(model, train, val=None, *, l2=None, c_grid=C_GRID, class_weight=None, batch_size=64,
                  max_iterations=1000, views=0, seed=0):
    """Fits a regression or multi-label head to convergence on the frozen features and writes it into `model`.

    Args:
        model: a model made by `heads.build_model` with `task="regression"` or `"multilabel"`.
        train: `(images, targets)` arrays or `tf.data.Dataset`s of `(images, targets)` batches.
        val: the validation data, as `train`.
        l2: a fixed L2 strength; `None` tries l2 = 1 / (n C) for C in `c_grid` and keeps the lowest validation
            loss (C = 1 without `val`).
        class_weight: not supported for these tasks (a dict is an error).
        max_iterations: L-BFGS iterations (multi-label).
        views: shifted copies of each training image whose features join the training set, as in
            `linear_probe.fit_linear_head` (a digit's value and the digits in a tile do not change when the
            image moves by a few pixels); validation sees the images as they are.
        seed: the seed of the shifts.

    Returns:
        A `TaskProbe`.

    Example:
    >>> model = build_model("vgg16", "regression", outputs=1, weights=None, input_size=32, augmentation=None)
    >>> x, y = np.random.rand(12, 32, 32, 3) * 255, np.arange(12.0)
    >>> fit_task_head(model, (x, y)).task
    'regression'
    """
    task, head = task_of(model), head_of(model)
    if task == "classification":
        raise KerasTransferError("fit_task_head fits regression and multi-label heads; a classifier's is "
                                 "linear_probe.fit_linear_head. Received: a classification model")
    if class_weight:
        raise KerasTransferError(f"class_weight applies to classification only. Received: class_weight={class_weight!r}")
    start = time.perf_counter()
    extractor = feature_extractor(model)
    views = views if takes_views(train) else 0
    f, y = task_features(model, train, batch_size, extractor=extractor, views=views, seed=seed)
    originals = len(y) // (views + 1)  # the first rows: the images themselves (the logs score these)
    mean, std = standardiser(f)
    scaled = (f - mean) / std
    if task == "regression":
        y = (y - np.asarray(head.target_mean)) / np.asarray(head.target_scale)
    fv, yv = task_features(model, val, batch_size, extractor=extractor) if val is not None else (None, None)
    fv = None if fv is None else (fv - mean) / std  # standardised once, for every strength
    grid = [l2] if l2 is not None else [1.0 / (len(y) * c) for c in c_grid]
    if fv is None and l2 is None:
        grid = [1.0 / len(y)]
    fits, validation = {}, {}
    for strength in grid:
        fits[strength] = _ridge(scaled, y, strength) if task == "regression" else \
            _logistic(scaled, y, strength, max_iterations, _term_weights(head, y))
        if fv is not None:
            validation[strength] = task_logs(head, _outputs(head, fv, *fits[strength]), yv)["loss"]
    chosen = min(validation, key=validation.get) if validation else grid[0]
    kernel, bias = fits[chosen]
    write_head(head, np.concatenate([kernel.ravel(), bias]), mean, std, int(head.units))
    raw_y = y * np.asarray(head.target_scale) + np.asarray(head.target_mean) if task == "regression" else y
    train_logs = task_logs(head, _outputs(head, scaled[:originals], kernel, bias), raw_y[:originals])
    val_logs = task_logs(head, _outputs(head, fv, kernel, bias), yv) if fv is not None else None
    return TaskProbe(task=task, l2=chosen, validation=validation, train_logs=train_logs, val_logs=val_logs,
                     seconds=time.perf_counter() - start)


def _outputs(head, scaled, kernel, bias):
    """The model's outputs for standardised features: values in the user's units, or label probabilities."""
    z = scaled @ kernel + bias
    if head.task == "regression":
        return z * np.asarray(head.target_scale) + np.asarray(head.target_mean)
    return _sigmoid(z)
