"""Class weighting for rare labels in multi-label models: per-label positive weights and the weighted loss.

A label carried by few training images contributes few positive terms to the binary cross-entropy, so the
head learns to say "absent" for it. Its positive terms are weighted up by `negatives / positives` of the
training split (the weight that makes a label's positives and negatives count equally, PyTorch's `pos_weight`),
clipped to `[1, cap]`: common labels keep weight 1 and one very rare label cannot dominate the loss.

The weights are stored in the model's head (`TaskHead.label_weights`, so in `.keras` files) and the loss is
built from the head wherever the model is compiled (`heads.task_loss`): a reloaded or resumed model, and the
head model that trains on cached features, train with the same weighted loss without the training split at hand.
Inference ignores them: probabilities and thresholds are unchanged in meaning.
"""

import keras
import numpy as np

from keras_transfer.errors import KerasTransferError

DEFAULT_CAP = 10.0


def positive_weights(targets, *, cap=DEFAULT_CAP):
    """Per-label positive weights `clip(negatives / positives, 1, cap)` of 0/1 `targets` `(images, labels)`.

    Args:
        targets: the training split's 0/1 label matrix.
        cap: the largest weight (>= 1).

    Returns:
        A list of floats, one per label.

    Example:
    >>> positive_weights([[1, 1], [0, 1], [0, 1], [0, 1]])
    [3.0, 1.0]
    """
    targets = np.asarray(targets, "float64")
    if targets.ndim != 2 or not len(targets) or not np.isin(targets, (0.0, 1.0)).all():
        raise KerasTransferError(f"targets must be a non-empty 0/1 matrix (images, labels). Received: targets of "
                                 f"shape {targets.shape}")
    if isinstance(cap, bool) or not isinstance(cap, (int, float)) or not 1 <= cap < float("inf"):
        raise KerasTransferError(f"cap must be a number >= 1. Received: cap={cap!r}")
    positives = targets.sum(0)
    if (positives == 0).any():
        missing = int(np.flatnonzero(positives == 0)[0])
        raise KerasTransferError(f"Every label needs a positive training image to be weighted; label {missing} has "
                                 f"none. Received: positives={positives.astype(int).tolist()}")
    return np.clip((len(targets) - positives) / positives, 1.0, cap).tolist()


@keras.saving.register_keras_serializable(package="keras_transfer")
class WeightedBinaryCrossentropy(keras.losses.Loss):
    """Binary (or focal, `gamma` 2 as `keras.losses.BinaryFocalCrossentropy`) cross-entropy on probabilities
    with each label's positive term weighted: `mean_j (1 + (w_j - 1) y_j) * bce(y_j, p_j)`.

    With every weight 1 it equals `keras.losses.BinaryCrossentropy()` (or the focal loss).

    Args:
        label_weights: one positive weight per label.
        focal: multiply each term by `(1 - p_t) ** gamma` (focal loss).
        gamma: the focal exponent.
    """

    def __init__(self, label_weights, focal=False, gamma=2.0, name=None, **kwargs):
        super().__init__(name=name or ("weighted_focal" if focal else "weighted_bce"), **kwargs)
        self.label_weights, self.focal, self.gamma = [float(w) for w in label_weights], bool(focal), float(gamma)

    def call(self, y_true, y_pred):
        y_pred = keras.ops.cast(y_pred, "float32")
        y_true = keras.ops.reshape(keras.ops.cast(y_true, "float32"), keras.ops.shape(y_pred))
        terms = keras.ops.binary_crossentropy(y_true, y_pred)
        if self.focal:
            p_t = y_true * y_pred + (1.0 - y_true) * (1.0 - y_pred)
            terms = keras.ops.power(1.0 - p_t, self.gamma) * terms
        weights = keras.ops.convert_to_tensor(np.asarray(self.label_weights, "float32"))
        return keras.ops.mean((1.0 + (weights - 1.0) * y_true) * terms, axis=-1)

    def get_config(self):
        return {**super().get_config(), "label_weights": self.label_weights, "focal": self.focal, "gamma": self.gamma}
