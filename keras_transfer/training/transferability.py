"""How well a frozen backbone's features fit a task, before any fine-tuning: LogME and a cross-validated probe.

LogME (You, Liu, Wang and Long, "LogME: Practical Assessment of Pre-trained Models for Transfer Learning",
ICML 2021) scores features `F` (n x D) for a target column `y` by the evidence of a Bayesian linear model
`y = F w + noise`, `w ~ N(0, 1/alpha I)`, noise `~ N(0, 1/beta)`, with alpha and beta set to maximise it:

    log p(y | F, alpha, beta) = n/2 log beta + D/2 log alpha - n/2 log 2 pi - beta/2 |F m - y|^2
                                - alpha/2 m'm - 1/2 log |A|,   A = alpha I + beta F'F,   m = beta A^-1 F'y,

reached by the paper's fixed point (its Algorithm 1): gamma = sum beta s_i / (alpha + beta s_i) over the
eigenvalues s_i of F'F, alpha = gamma / m'm, beta = (n - gamma) / |F m - y|^2. One SVD of F serves every
column and iteration. The score is the evidence divided by n, averaged over the columns: the one-hot columns
of a classification, the target columns of a regression, the 0/1 columns of a multi-label task.

The probe score is the held-out score of the head the default recipe fits first (a linear probe on
standardised features, `linear_probe`'s L-BFGS solver at scikit-learn's default strength C = 1), averaged
over k stratified folds: accuracy for a classification, mean per-label accuracy for a multi-label task, R^2
(ridge) for a regression. Shifted views of the training folds' images (`linear_probe.shifted_views`) join
the training rows as they do in the recipe; the held-out rows are the images alone.
"""

import numpy as np

from keras_transfer.errors import KerasTransferError
from keras_transfer.training.linear_probe import score_head, solve_head, standardiser

TASKS = ("classification", "regression", "multilabel")
PROBE_METRIC = {"classification": "accuracy", "multilabel": "label accuracy", "regression": "R^2"}


def log_evidence(features, target, *, tol=1e-12, max_iterations=10_000, svd=None):
    """`(evidence / n, alpha, beta)`: LogME's maximised log evidence of one target column.

    Args:
        features: `(n, D)` array.
        target: `(n,)` array of values (a one-hot column, a label's 0/1, or a regression target).
        tol: the fixed point stops when the evidence changes by less than this share.
        svd: `np.linalg.svd(features, full_matrices=False)`, when the caller has it (one per feature matrix).

    Example:
    >>> rng = np.random.default_rng(0); f = rng.normal(size=(20, 4))
    >>> bool(log_evidence(f, f @ [1.0, 0, 0, 0])[0] > log_evidence(f, rng.normal(size=20))[0])
    True
    """
    f, y = np.asarray(features, "float64"), np.asarray(target, "float64").reshape(-1)
    n, dim = f.shape
    u, s, _ = svd if svd is not None else np.linalg.svd(f, full_matrices=False)
    sigma = s ** 2  # the nonzero eigenvalues of F'F (the other dim - len(s) are 0)
    x2 = (u.T @ y) ** 2  # y's energy along each singular direction
    outside = max(float(y @ y - x2.sum()), 0.0)  # |y|^2 outside F's column span
    def evidence(alpha, beta):  # per sample, with |F m - y|^2 and m'm from the spectrum
        shrink = alpha + beta * sigma
        mm = float((beta ** 2 * sigma * x2 / shrink ** 2).sum())
        residual = float((x2 * (alpha / shrink) ** 2).sum()) + outside
        log_det = float(np.log(shrink).sum()) + (dim - len(sigma)) * np.log(alpha)
        value = (n * np.log(beta) + dim * np.log(alpha) - n * np.log(2 * np.pi) - beta * residual - alpha * mm
                 - log_det) / (2 * n)
        return value, mm, residual

    alpha, beta = 1.0, 1.0
    value, mm, residual = evidence(alpha, beta)
    for _ in range(max_iterations):
        gamma = float((beta * sigma / (alpha + beta * sigma)).sum())
        # With n <= D the features can fit y exactly: beta grows without bound while the evidence converges,
        # so the iteration stops on the evidence (or at the largest beta a float holds).
        alpha = min(max(gamma / max(mm, 1e-300), 1e-300), 1e300)
        beta = min(max((n - gamma) / max(residual, 1e-300), 1e-300), 1e300)
        last, (value, mm, residual) = value, evidence(alpha, beta)
        if abs(value - last) <= tol * max(1.0, abs(value)):
            break
    return value, alpha, beta


def target_columns(labels, task):
    """The columns LogME scores: one-hot class columns, regression targets, or multi-label 0/1 columns."""
    check_task(task)
    labels = np.asarray(labels)
    if task == "classification":
        labels = labels.reshape(-1).astype("int64")
        return (labels[:, None] == np.unique(labels)[None, :]).astype("float64")
    return labels.reshape(len(labels), -1).astype("float64")


def logme(features, labels, task="classification"):
    """LogME of `features` for `labels`: the per-sample log evidence averaged over `target_columns` (higher is
    better; comparable across backbones on the same data).

    Example:
    >>> rng = np.random.default_rng(0); y = np.arange(30) % 3
    >>> logme(np.eye(3)[y] + 0.1 * rng.normal(size=(30, 3)), y) > logme(rng.normal(size=(30, 3)), y)
    True
    """
    return float(np.mean(logme_per_column(features, labels, task)))


def logme_per_column(features, labels, task="classification"):
    """LogME of each of `target_columns` (a class, a regression target, a label), as a list of floats; `logme`
    is their mean. For a multi-label task it says which labels the features carry.

    Example:
    >>> rng = np.random.default_rng(0); f = rng.normal(size=(40, 3))
    >>> labels = np.stack([f[:, 0] > 0, rng.random(40) > 0.5], axis=1)  # the first label is in the features
    >>> first, second = logme_per_column(f, labels, "multilabel"); first > second
    True
    """
    f = np.asarray(features, "float64").reshape(len(features), -1)
    columns = target_columns(labels, task)
    if len(f) != len(columns) or len(f) < 2:
        raise KerasTransferError(f"LogME needs one label row per feature row, and at least 2 rows. "
                                 f"Received: {len(f)} feature rows, {len(columns)} label rows")
    svd = np.linalg.svd(f, full_matrices=False)
    return [float(log_evidence(f, column, svd=svd)[0]) for column in columns.T]


def check_task(task):
    if task not in TASKS:
        raise KerasTransferError(f"task must be one of {', '.join(TASKS)}. Received: task={task!r}")


def effective_folds(labels, task, folds):
    """The folds a probe can use: `folds`, or for a classification at most the smallest class's count."""
    if task != "classification":
        return min(folds, len(labels))
    counts = np.unique(np.asarray(labels).reshape(-1), return_counts=True)[1]
    return min(folds, int(counts.min()))


def folds_of(labels, task, folds, seed=0):
    """A fold index per row: stratified by class for a classification (each class dealt round-robin after a
    seeded shuffle), a seeded shuffle otherwise."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    fold = np.empty(n, "int64")
    if task == "classification":
        labels = np.asarray(labels).reshape(-1)
        start = 0
        for c in np.unique(labels):
            rows = rng.permutation(np.flatnonzero(labels == c))
            fold[rows] = (start + np.arange(len(rows))) % folds
            start += len(rows)
    else:
        fold[rng.permutation(n)] = np.arange(n) % folds
    return fold


def probe_score(features, labels, task="classification", *, folds=5, views=0, seed=0, max_iterations=500):
    """The k-fold held-out score of a linear probe (see the module doc).

    Args:
        features: `(n * (views + 1), D)`: the images' features, then `views` blocks of their shifted views'
            (as `linear_probe.extract` returns them).
        labels: the n images' class indices, or `(n, outputs)` targets.
        folds: k; a classification uses at most the smallest class's count (at least 2).

    Example:
    >>> y = np.arange(20) % 2
    >>> probe_score(np.eye(2)[y] + np.random.default_rng(0).normal(0, 0.1, (20, 2)), y)
    1.0
    """
    check_task(task)
    labels = np.asarray(labels)
    n = len(labels)
    f = np.asarray(features, "float64").reshape(n * (views + 1), -1)
    folds = effective_folds(labels, task, folds)
    if folds < 2:
        raise KerasTransferError(f"A cross-validated probe needs 2 folds, so at least 2 images per class. "
                                 f"Received: {n} images, {folds} fold(s) possible")
    fold = folds_of(labels, task, folds, seed)
    scores = []
    for k in range(folds):
        train = np.flatnonzero(fold != k)
        rows = np.concatenate([train + view * n for view in range(views + 1)])
        test = np.flatnonzero(fold == k)
        scores.append(_fold_score(f[rows], np.concatenate([labels[train]] * (views + 1)), f[test], labels[test],
                                  task, max_iterations))
    return float(np.mean(scores))


def _fold_score(f, y, f_test, y_test, task, max_iterations):
    mean, std = standardiser(f)
    f, f_test = (f - mean) / std, (f_test - mean) / std
    l2 = 1.0 / len(f)  # scikit-learn's C = 1 (see linear_probe.C_GRID)
    if task == "regression":
        return _ridge_r2(f, y.reshape(len(y), -1), f_test, y_test.reshape(len(y_test), -1), l2)
    if task == "multilabel":
        accuracies = []
        for j in range(y.shape[1]):
            params, _ = solve_head(f, y[:, j], np.ones(len(y)), l2, 1, max_iterations)
            accuracies.append(score_head(params, f_test, y_test[:, j], 1)[1])
        return float(np.mean(accuracies))
    classes = np.unique(y)
    index = np.searchsorted(classes, y)  # the training folds' classes as 0..k-1
    units = 1 if len(classes) == 2 else len(classes)
    params, _ = solve_head(f, index, np.ones(len(y)), l2, units, max_iterations)
    dim = f.shape[1]
    logits = f_test @ params[:dim * units].reshape(dim, units) + params[dim * units:]
    predicted = (logits[:, 0] > 0).astype("int64") if units == 1 else logits.argmax(1)
    return float(np.mean(classes[predicted] == y_test))


def _ridge_r2(f, y, f_test, y_test, l2):
    """Mean R^2 over the target columns of ridge regression (mean squared error + l2 |W|^2 on centred targets)."""
    centre = y.mean(0)
    kernel = np.linalg.solve(f.T @ f / len(f) + l2 * np.eye(f.shape[1]), f.T @ (y - centre) / len(f))
    predicted = f_test @ kernel + centre
    total = ((y_test - y_test.mean(0)) ** 2).sum(0)
    total[total < 1e-12] = 1.0
    return float(np.mean(1.0 - ((y_test - predicted) ** 2).sum(0) / total))
