"""Weight penalties for fine-tuning: L2-SP on the backbone, plain L1/L2 on the head.

L2-SP (Li, Grandvalet, Davoine, ICML 2018, "Explicit Inductive Bias for Transfer Learning with Convolutional
Networks") pulls the backbone towards its pretrained starting point instead of towards zero:

    alpha/2 * ||w - w0||^2  over the backbone's weights   +   beta/2 * ||w||^2  over the new head's kernel

Both are Keras regularizers set on the variables (`variable.regularizer`), so `model.losses`, and with it the
loss that `fit` minimises, carries them on TensorFlow and JAX alike. Keras collects a variable's regularizer
only while the variable is trainable: a frozen layer carries no penalty, and freezing or unfreezing later
(with `freeze`) switches the penalty with it.

What is penalised: every backbone weight (kernels, depthwise kernels and biases: the paper's "all pretrained
parameters") except those of normalisation layers (BatchNorm gammas, betas and statistics, LayerNorm). L2-SP
is a training-time penalty: it is not written into the layers' configs, so a saved model does not carry it.
`regularize_head` is the opposite: it sets the head's `kernel_regularizer`, which a saved model keeps.
"""

import dataclasses
import math

import keras
import numpy as np

from keras_transfer.errors import KerasTransferError
from keras_transfer.models.classifier import HEAD_LAYER, get_backbone

NORMALIZATION_LAYERS = (keras.layers.BatchNormalization, keras.layers.LayerNormalization,
                        keras.layers.GroupNormalization, keras.layers.Normalization)


@keras.saving.register_keras_serializable(package="keras_transfer")
class L2SP(keras.regularizers.Regularizer):
    """`alpha/2 * ||w - reference||^2`: an L2 penalty towards a reference (the pretrained values), not zero.

    Args:
        alpha: the penalty's strength (>= 0).
        reference: the values to pull towards (array-like, the variable's shape).

    Example:
    >>> penalty = L2SP(0.1, np.ones((2, 2)))
    >>> round(float(penalty(np.zeros((2, 2)))), 4)
    0.2
    """

    def __init__(self, alpha, reference):
        self.alpha = _check_strength("alpha", alpha)
        # Held as a backend tensor made once, eagerly: a compiled train step captures it instead of
        # copying the values into its graph as a constant.
        self._reference = keras.ops.convert_to_tensor(np.asarray(reference, dtype="float32"))

    @property
    def reference(self):
        """The reference values, as a numpy array."""
        return np.asarray(keras.ops.convert_to_numpy(self._reference))

    def __call__(self, x):
        difference = keras.ops.cast(x, "float32") - self._reference
        return (self.alpha / 2.0) * keras.ops.sum(keras.ops.square(difference))

    def get_config(self):
        return {"alpha": self.alpha, "reference": self.reference.tolist()}


@keras.saving.register_keras_serializable(package="keras_transfer")
class HeadL2(keras.regularizers.L2):
    """`beta/2 * ||w||^2` on the new head's kernel: the L2 part of L2-SP (`attach_l2sp(..., beta=)`)."""

    def __init__(self, beta):
        self.beta = _check_strength("beta", beta)
        super().__init__(l2=self.beta / 2.0)

    def get_config(self):
        return {"beta": self.beta}


@dataclasses.dataclass(frozen=True)
class L2SPReport:
    """What `attach_l2sp` set."""

    alpha: float
    beta: float
    variables: int            # backbone variables carrying the L2-SP penalty
    params: int
    trainable_variables: int  # of those, trainable now: penalised by the next `fit`
    trainable_params: int
    head_variables: int       # head kernels under `beta` (0 when beta is 0)
    normalization_variables: int  # backbone variables of normalisation layers, left unpenalised

    def __str__(self):
        head = f", beta={self.beta:g} on the head kernel" if self.head_variables else ""
        return (f"L2-SP alpha={self.alpha:g} on {self.variables} backbone variables ({self.params:,} params; "
                f"{self.trainable_variables} variables, {self.trainable_params:,} params trainable now){head}; "
                f"{self.normalization_variables} normalisation variables not penalised")


def attach_l2sp(model, alpha=1e-2, *, beta=0.0, reference=None):
    """Penalises the backbone's distance from its pretrained weights (L2-SP), and optionally the head's size.

    Call it right after the pretrained weights are in place and before fine-tuning: `reference=None` takes the
    backbone's current weights as the starting point. A compiled model's train and test steps are rebuilt.

    Args:
        model: a model made by `build_classifier`.
        alpha: strength of `alpha/2 * ||w - w0||^2` over the backbone's weights (>= 0).
        beta: strength of `beta/2 * ||w||^2` over the head's kernel (>= 0; 0 sets nothing on the head).
        reference: the pretrained values, as a list matching `get_backbone(model).weights` (what
            `get_backbone(model).get_weights()` returned); `None` takes the current values.

    Returns:
        An `L2SPReport`.

    Example:
    >>> model = build_classifier("mobilenetv2", 3, weights=None, input_size=32)
    >>> attach_l2sp(model, 0.01).alpha
    0.01
    """
    alpha = _check_strength("alpha", alpha)
    beta = _check_strength("beta", beta)
    backbone = get_backbone(model)
    references = _reference_values(backbone, reference)
    skipped = _normalization_variable_ids(backbone)
    penalised = []
    for variable, values in zip(backbone.weights, references):
        if id(variable) in skipped or not _is_float(variable):
            continue
        variable.regularizer = L2SP(alpha, values)
        penalised.append(variable)
    head_variables = _set_head_beta(model, beta)
    _rebuild_steps(model)
    trainable_ids = {id(v) for v in model.trainable_weights}
    trainable = [v for v in penalised if id(v) in trainable_ids]
    return L2SPReport(alpha=alpha, beta=beta, variables=len(penalised), params=_count(penalised),
                      trainable_variables=len(trainable), trainable_params=_count(trainable),
                      head_variables=head_variables, normalization_variables=len(skipped))


def detach_regularization(model):
    """Removes what `attach_l2sp` set (its backbone and head penalties); `regularize_head`'s stays.

    Returns:
        The number of variables whose penalty was removed.
    """
    removed = 0
    for variable in model.weights:
        if isinstance(variable.regularizer, (L2SP, HeadL2)):
            variable.regularizer = None
            removed += 1
    _rebuild_steps(model)
    return removed


def regularize_head(model, l1=0.0, l2=0.0):
    """Sets an L1/L2 kernel penalty (`l1 * sum|w| + l2 * sum w^2`) on the head, kept by `model.save`.

    Both at 0 removes it. The penalty is set on the head's `kernel_regularizer` (so the layer's config and a
    saved `.keras` file carry it) and on its kernel variable (so it is active now); a compiled model's train and
    test steps are rebuilt.

    Args:
        model: a model made by `build_classifier` (its head is the layer named `"predictions"`).
        l1: L1 strength (>= 0).
        l2: L2 strength (>= 0).

    Returns:
        The regularizer set (a `keras.regularizers.L1L2`), or `None`.

    Example:
    >>> model = build_classifier("mobilenetv2", 3, weights=None, input_size=32)
    >>> regularize_head(model, l2=1e-4).get_config()["l2"]
    0.0001
    """
    l1 = _check_strength("l1", l1)
    l2 = _check_strength("l2", l2)
    head = _head_layer(model)
    regularizer = keras.regularizers.L1L2(l1=l1, l2=l2) if (l1 or l2) else None
    head.kernel_regularizer = regularizer
    head.kernel.regularizer = regularizer
    _rebuild_steps(model)
    return regularizer


def _check_strength(name, value):
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number) or number < 0:
        raise KerasTransferError(f"{name} must be a finite number >= 0. Received: {name}={value!r}")
    return number


def _reference_values(backbone, reference):
    """The reference arrays, one per `backbone.weights` entry, checked against the variables' shapes."""
    variables = backbone.weights
    if reference is None:
        return [keras.ops.convert_to_numpy(v) for v in variables]
    if isinstance(reference, (str, bytes)) or not hasattr(reference, "__len__") or len(reference) != len(variables):
        count = len(reference) if hasattr(reference, "__len__") else type(reference).__name__
        raise KerasTransferError(
            f"reference must hold one array per backbone weight ({len(variables)}, as "
            f"get_backbone(model).get_weights() returns them). Received: len(reference)={count}")
    values = []
    for i, (variable, value) in enumerate(zip(variables, reference)):
        value = np.asarray(value)
        if value.shape != tuple(variable.shape):
            raise KerasTransferError(
                f"reference[{i}] does not match the backbone weight '{variable.path}' of shape "
                f"{tuple(variable.shape)}. Received: reference[{i}].shape={value.shape}")
        values.append(value)
    return values


def _normalization_variable_ids(backbone):
    return {id(v) for layer in backbone._flatten_layers(include_self=False)
            if isinstance(layer, NORMALIZATION_LAYERS) for v in layer.weights}


def _is_float(variable):
    return "float" in str(variable.dtype)


def _head_layer(model):
    try:
        return model.get_layer(HEAD_LAYER)
    except ValueError:
        raise KerasTransferError(
            f"Model '{model.name}' has no head layer named '{HEAD_LAYER}': was it made by build_classifier? "
            f"Received: model={model.name!r}") from None


def _set_head_beta(model, beta):
    """Sets (beta > 0) or clears our `HeadL2` on the head kernel; returns how many kernels carry it."""
    kernel = _head_layer(model).kernel
    if kernel.regularizer is not None and not isinstance(kernel.regularizer, HeadL2):
        if beta:
            raise KerasTransferError(
                "The head kernel already has a penalty (from regularize_head or its kernel_regularizer); use one "
                f"of them: regularize_head(model, l2=...) or attach_l2sp(..., beta=...). Received: beta={beta!r}")
        return 0
    kernel.regularizer = HeadL2(beta) if beta else None
    return 1 if beta else 0


def _rebuild_steps(model):
    """A compiled model's train and test steps read the penalties when traced: trace them again."""
    if getattr(model, "compiled", False):
        model.make_train_function(force=True)
        model.make_test_function(force=True)


def _count(variables):
    return int(sum(math.prod(v.shape) for v in variables))
