"""Plots of a run: the training history over all phases, a confusion matrix and a regression's predicted-vs-true
and residual panels, written as PNG files.

matplotlib is optional (`pip install "keras-transfer[plots]"`) and imported only here, when a plot is
drawn. Figures are drawn on their own Agg canvas, so the global pyplot backend and state are left alone;
each PNG is written to a temporary name and renamed into place.
"""

import importlib.util
import os

import numpy as np

from keras_transfer import io
from keras_transfer.errors import KerasTransferError
from keras_transfer.history import history_columns
from keras_transfer.layout import HISTORY_JSON

RESIDUALS_PNG = "residuals.png"
PREDICTED_PNG = "predicted_vs_true.png"
INSTALL_HINT = 'pip install "keras-transfer[plots]"'


def matplotlib_available():
    """True when matplotlib can be imported."""
    try:
        return importlib.util.find_spec("matplotlib") is not None
    except ValueError:  # sys.modules["matplotlib"] is None (or has no spec)
        return False


def _figure(width, height):
    """A matplotlib Figure on an Agg canvas (no pyplot), or the install hint."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # optional (the plots extra)
        from matplotlib.figure import Figure  # optional (the plots extra)
    except ImportError:
        raise KerasTransferError(f"Plots need matplotlib, which is not installed: {INSTALL_HINT}") from None
    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path):
    """Writes `figure` to `path` as a PNG through a temporary file renamed into place."""
    path = os.fspath(path)
    with io.atomic_path(path, ".png") as tmp:
        figure.savefig(tmp, format="png")
    return path


def _history_columns(history):
    """`{"phase": [...], metric: [...]}` from a run folder, a `history.json` file, columns or per-epoch rows."""
    if isinstance(history, (str, os.PathLike)):
        file = os.path.join(history, HISTORY_JSON) if os.path.isdir(history) else os.fspath(history)
        if not os.path.isfile(file):
            raise KerasTransferError(f"No history at {file}: pass a run folder holding history.json, the file, "
                                     f"or its rows. Received: history={os.fspath(history)!r}")
        history = io.read_json(file)
    if isinstance(history, (list, tuple)):
        history = history_columns(history)
    if not isinstance(history, dict) or "loss" not in history or not len(history["loss"]):
        raise KerasTransferError("A history needs a non-empty 'loss' column (per-epoch rows or columns as in "
                                 "history.json).")
    return history


def phase_boundaries(phases):
    """The epochs (1-based, over all phases) after which a new phase starts."""
    return [i for i in range(1, len(phases)) if phases[i] != phases[i - 1]]


def plot_history(history, path):
    """Plots loss and accuracy (training and validation) per epoch over all phases, a dashed line at each
    phase boundary.

    Args:
        history: a run folder (its `history.json`), a `history.json` path, its columns
            (`{"phase": [...], "loss": [...], ...}`) or per-epoch rows (`[{"phase": ..., "loss": ...}, ...]`).
        path: the PNG file to write.

    Returns:
        The phase boundaries drawn: epochs after which a new phase starts.

    Example:
    >>> rows = [{"phase": "head", "loss": 1.0, "accuracy": 0.5}, {"phase": "fine_tune", "loss": 0.5, "accuracy": 0.8}]
    >>> plot_history(rows, "/tmp/kt_history.png")
    [1]
    """
    columns = _history_columns(history)
    figure = _figure(11, 4)  # first: a missing matplotlib is reported before anything else
    from matplotlib.ticker import MaxNLocator  # optional (the plots extra)

    n = len(columns["loss"])
    phases = list(columns.get("phase") or ["train"] * n)
    metrics = [m for m in ("loss", "accuracy") if m in columns]
    figure.set_size_inches(5.5 * len(metrics), 4)
    epochs = np.arange(1, n + 1)
    boundaries = phase_boundaries(phases)
    for i, metric in enumerate(metrics):
        axes = figure.add_subplot(1, len(metrics), i + 1)
        for key, label in ((metric, "train"), (f"val_{metric}", "validation")):
            if key in columns:
                values = np.array([np.nan if v is None else v for v in columns[key]], dtype=np.float64)
                axes.plot(epochs, values, marker="o", label=label)
        for b in boundaries:
            axes.axvline(b + 0.5, color="gray", linestyle="--", linewidth=1)
            axes.text(b + 0.5, 1.0, f" {phases[b]}", transform=axes.get_xaxis_transform(), va="top", fontsize=8)
        axes.set(title=metric, xlabel="epoch (all phases)")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.legend()
        axes.grid(alpha=0.3)
    figure.tight_layout()
    _save(figure, path)
    return boundaries


def plot_confusion_matrix(matrix, class_names, path):
    """Draws a confusion matrix (rows true, columns predicted) with its counts, shaded by row share.

    Args:
        matrix: `(k, k)` counts.
        class_names: k names.
        path: the PNG file to write.

    Returns:
        `path`.

    Example:
    >>> plot_confusion_matrix([[3, 1], [0, 4]], ["cat", "dog"], "/tmp/kt_confusion.png")
    '/tmp/kt_confusion.png'
    """
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] != len(class_names):
        raise KerasTransferError(f"matrix must be square with one row per class name. Received: matrix.shape="
                                 f"{matrix.shape}, {len(class_names)} class names")
    k = len(class_names)
    side = min(4 + 0.4 * k, 20)
    figure = _figure(side + 1, side)
    axes = figure.add_subplot(1, 1, 1)
    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros(matrix.shape), where=rows != 0)
    image = axes.imshow(share, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=axes, label="share of the true class")
    axes.set_xticks(range(k), labels=class_names, rotation=45, ha="right")
    axes.set_yticks(range(k), labels=class_names)
    axes.set(xlabel="predicted", ylabel="true", title="Confusion matrix")
    if k <= 30:
        for (i, j), count in np.ndenumerate(matrix):
            axes.text(j, i, str(count), ha="center", va="center", fontsize=10,
                      color="white" if share[i, j] > 0.5 else "black")
    figure.tight_layout()
    return _save(figure, path)


def pareto_front(scores, costs):
    """Indices of the points no other point beats: none has a score as high and a cost as low, one of them
    strictly (higher score is better, lower cost is better).

    Example:
    >>> pareto_front([0.9, 0.8, 0.7], [10.0, 2.0, 5.0])
    [0, 1]
    """
    points = list(zip(scores, costs))
    return [i for i, (s, c) in enumerate(points)
            if not any(s2 >= s and c2 <= c and (s2 > s or c2 < c) for s2, c2 in points)]


def plot_selection(names, scores, costs, path, *, score_label="score", cost_label="ms per image"):
    """Draws candidate backbones as points of score against serving cost, the Pareto front joined and marked.

    Args:
        names: a label per point; scores: higher is better; costs: lower is better (e.g. ms per image).
        path: the PNG file to write.

    Returns:
        `path`.

    Example:
    >>> plot_selection(["a", "b"], [0.9, 0.8], [10.0, 2.0], "/tmp/kt_selection.png")
    '/tmp/kt_selection.png'
    """
    if not len(names) == len(scores) == len(costs) or not names:
        raise KerasTransferError(f"plot_selection needs one score and one cost per name, at least one. Received: "
                                 f"{len(names)} names, {len(scores)} scores, {len(costs)} costs")
    front = pareto_front(scores, costs)
    figure = _figure(7, 5)
    axes = figure.add_subplot(1, 1, 1)
    others = [i for i in range(len(names)) if i not in front]
    axes.scatter([costs[i] for i in others], [scores[i] for i in others], color="tab:gray", label="dominated")
    ordered = sorted(front, key=lambda i: costs[i])
    axes.plot([costs[i] for i in ordered], [scores[i] for i in ordered], "o-", color="tab:red",
              label="Pareto front")
    for name, score, cost in zip(names, scores, costs):
        axes.annotate(name, (cost, score), textcoords="offset points", xytext=(4, 4), fontsize=9)
    axes.set(xlabel=cost_label, ylabel=score_label, title="Backbones: score against serving cost")
    axes.legend()
    figure.tight_layout()
    return _save(figure, path)


def plot_regression(predicted, targets, names, out):
    """Writes `predicted_vs_true.png` (with the identity line) and `residuals.png` (residual against prediction),
    one panel per target, into `out`; returns their paths."""
    predicted, targets = np.asarray(predicted), np.asarray(targets)
    k = predicted.shape[1]
    scatter, residual = _figure(4 * k, 4), _figure(4 * k, 4)
    for j, name in enumerate(names):
        ax = scatter.add_subplot(1, k, j + 1)
        ax.scatter(targets[:, j], predicted[:, j], s=8, alpha=0.6)
        low = float(min(targets[:, j].min(), predicted[:, j].min()))
        high = float(max(targets[:, j].max(), predicted[:, j].max()))
        ax.plot([low, high], [low, high], color="gray", linewidth=1)
        ax.set(xlabel=f"true {name}", ylabel=f"predicted {name}", title="predicted vs true")
        ax = residual.add_subplot(1, k, j + 1)
        ax.scatter(predicted[:, j], predicted[:, j] - targets[:, j], s=8, alpha=0.6)
        ax.axhline(0.0, color="gray", linewidth=1)
        ax.set(xlabel=f"predicted {name}", ylabel="residual (predicted - true)", title="residuals")
    scatter.tight_layout()
    residual.tight_layout()
    return [_save(scatter, os.path.join(out, PREDICTED_PNG)), _save(residual, os.path.join(out, RESIDUALS_PNG))]
