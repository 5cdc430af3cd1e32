"""Metrics of regression and multi-label models, from their raw outputs, with numpy (scikit-learn's definitions).

Regression (`regression_metrics`): MAE, RMSE and R^2 per target and averaged over targets (R^2 as scikit-learn's
`r2_score`, `multioutput="uniform_average"`; a constant target scores 1 if predicted exactly, else 0).
Multi-label (`multilabel_metrics`): per-label precision, recall, F1 (a zero denominator counts as 0, as
`zero_division=0`), micro and macro F1 at the model's per-label thresholds (positive when probability >=
threshold), and mAP, the macro mean of each label's average precision (scikit-learn's `average_precision_score`:
sum over thresholds of (R_n - R_{n-1}) P_n; a label with no positive is left out of the mean, with a warning
in scikit-learn, and `None` here).
`choose_thresholds` picks each label's threshold on validation outputs: the one maximising its F1.
"""

import numpy as np

from keras_transfer.errors import KerasTransferError


def _check(outputs, targets):
    outputs, targets = np.asarray(outputs, "float64"), np.asarray(targets, "float64")
    targets = targets.reshape(outputs.shape) if targets.size == outputs.size else targets
    if outputs.ndim != 2 or outputs.shape != targets.shape or not len(outputs):
        raise KerasTransferError(f"Need outputs and targets of the same shape (n, outputs), n >= 1. "
                                 f"Received: outputs.shape={outputs.shape}, targets.shape={targets.shape}")
    return outputs, targets


def regression_metrics(predicted, targets, names=None):
    """`{"mae", "rmse", "r2", "per_target": {name: {"mae", "rmse", "r2"}}}` of predictions in the targets' units.

    Example:
    >>> regression_metrics([[1.0], [2.0]], [[1.0], [3.0]])["mae"]
    0.5
    """
    predicted, targets = _check(predicted, targets)
    names = names or [f"target_{i}" for i in range(targets.shape[1])]
    error = predicted - targets
    mae, rmse = np.abs(error).mean(0), np.sqrt((error ** 2).mean(0))
    residual, total = (error ** 2).sum(0), ((targets - targets.mean(0)) ** 2).sum(0)
    r2 = np.where(total > 0, 1.0 - residual / np.where(total > 0, total, 1.0), np.where(residual == 0, 1.0, 0.0))
    per = {name: {"mae": float(mae[i]), "rmse": float(rmse[i]), "r2": float(r2[i])} for i, name in enumerate(names)}
    return {"mae": float(mae.mean()), "rmse": float(rmse.mean()), "r2": float(r2.mean()), "per_target": per}


def _ratio(a, b):
    a, b = np.asarray(a, "float64"), np.asarray(b, "float64")
    return np.divide(a, b, out=np.zeros_like(a), where=b != 0)


def average_precision(scores, positives):
    """One label's average precision (scikit-learn's step-wise sum); `None` without any positive."""
    positives = np.asarray(positives) > 0.5
    if not positives.any():
        return None
    order = np.argsort(-np.asarray(scores), kind="mergesort")
    scores, positives = np.asarray(scores)[order], positives[order]
    last = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]  # the end of each run of tied scores
    tp = np.cumsum(positives)[last]
    precision, recall = tp / (last + 1), tp / positives.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def multilabel_metrics(probabilities, targets, thresholds=0.5, names=None):
    """Per-label precision/recall/F1/support, micro and macro F1 at `thresholds`, and mAP.

    Example:
    >>> multilabel_metrics([[0.9, 0.2], [0.4, 0.7]], [[1, 0], [0, 1]])["micro_f1"]
    1.0
    """
    probabilities, targets = _check(probabilities, targets)
    k = targets.shape[1]
    names = names or [str(i) for i in range(k)]
    thresholds = np.broadcast_to(np.asarray(thresholds, "float64"), (k,))
    predicted, truth = probabilities >= thresholds, targets > 0.5
    tp, fp, fn = (predicted & truth).sum(0), (predicted & ~truth).sum(0), (~predicted & truth).sum(0)
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = _ratio(2 * precision * recall, precision + recall)
    micro_p, micro_r = _ratio(tp.sum(), tp.sum() + fp.sum()), _ratio(tp.sum(), tp.sum() + fn.sum())
    micro_f1 = float(_ratio(2 * micro_p * micro_r, micro_p + micro_r))
    ap = [average_precision(probabilities[:, j], truth[:, j]) for j in range(k)]
    known = [a for a in ap if a is not None]
    per = {name: {"precision": float(precision[j]), "recall": float(recall[j]), "f1": float(f1[j]),
                  "support": int(truth[:, j].sum()), "threshold": float(thresholds[j]), "average_precision": ap[j]}
           for j, name in enumerate(names)}
    return {"micro_f1": micro_f1, "macro_f1": float(f1.mean()), "map": float(np.mean(known)) if known else None,
            "per_label": per}


def choose_thresholds(probabilities, targets, *, default=0.5):
    """Per-label thresholds maximising each label's F1 on `(probabilities, targets)` (validation outputs).

    A candidate is each distinct probability (positive when probability >= it); ties go to the highest
    threshold; a label without any positive keeps `default`.

    Example:
    >>> choose_thresholds([[0.9], [0.3], [0.6]], [[1], [0], [1]])
    [0.6]
    """
    probabilities, targets = _check(probabilities, targets)
    chosen = []
    for j in range(targets.shape[1]):
        truth = targets[:, j] > 0.5
        if not truth.any():
            chosen.append(float(default))
            continue
        best, best_f1 = float(default), -1.0
        for candidate in np.unique(probabilities[:, j])[::-1]:  # highest first: ties keep the highest
            predicted = probabilities[:, j] >= candidate
            tp = float((predicted & truth).sum())
            f1 = 2 * tp / (predicted.sum() + truth.sum())
            if f1 > best_f1:
                best, best_f1 = float(candidate), f1
        chosen.append(best)
    return chosen
