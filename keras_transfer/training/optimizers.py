"""Discriminative (layer-wise) learning rates that are correct for Adam-type optimizers.

Scaling a layer's gradients does nothing to Adam's step (the step is normalised by the gradient's own
size), so the multiplier here scales the learning rate that Keras passes to `update_step`, which
`BaseOptimizer` calls once per variable on every backend (TensorFlow through its distribution-aware
`_backend_update_step`, JAX through `stateless_apply` -> `apply`).

A variable belongs to the layer named in its `variable.path`: `"block1_conv1/kernel"` for a layer of a
backbone built on its own and then nested in the classifier (the outer model's name does not appear),
`"bn/gamma"` for a BatchNormalization, `"mha/query/kernel"` for a sublayer. The most specific (deepest)
path component found in `multipliers` decides; a variable matching none gets 1.0.
"""

import math
import warnings

import keras

from keras_transfer.errors import KerasTransferError, unknown_name
from keras_transfer.models.classifier import get_backbone
from keras_transfer.models.freezing import backbone_blocks

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")


def _check_multipliers(multipliers):
    """A plain `{layer name: float}` copy of `multipliers`, each a finite number >= 0."""
    if multipliers is None:
        return {}
    if not isinstance(multipliers, dict):
        raise KerasTransferError(f"multipliers must be a dict of layer name -> float. Received: "
                                 f"multipliers={multipliers!r}")
    checked = {}
    for name, value in multipliers.items():
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not isinstance(name, str) or not number or not math.isfinite(value) or value < 0:
            raise KerasTransferError(f"multipliers must map layer names to finite numbers >= 0. "
                                     f"Received: multipliers[{name!r}]={value!r}")
        checked[name] = float(value)
    return checked


def multiplier_for(path, multipliers):
    """The multiplier of the variable at `path`: its deepest layer component named in `multipliers`, else 1.0.

    Example:
    >>> multiplier_for("backbone/block1_conv1/kernel", {"backbone": 0.1, "block1_conv1": 0.5})
    0.5
    """
    for name in reversed(path.split("/")[:-1]):
        if name in multipliers:
            return multipliers[name]
    return 1.0


class LayerwiseMixin:
    """Scales each variable's learning rate (and decoupled weight decay) by its layer's multiplier.

    Mixed in before a Keras optimizer class. The multipliers are resolved once in `build`, into a tuple
    indexed like the optimizer's variables; `update_step` only looks its variable's one up. A multiplier
    of 0 skips the variable's update (its optimizer slots stay as they are).

    Weight decay (`weight_decay=`, decoupled as in AdamW) is scaled by the same multiplier, like timm's
    layer decay, which scales a parameter group's whole learning rate, decay included.
    """

    def __init__(self, *args, multipliers=None, **kwargs):  # the Keras optimizer's arguments, then the multipliers
        super().__init__(*args, **kwargs)
        self.multipliers = _check_multipliers(multipliers)
        self._variable_multipliers = ()

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._variable_multipliers = tuple(multiplier_for(v.path, self.multipliers) for v in var_list)
        if self.multipliers and var_list and not any(self._matches(v) for v in var_list):
            warnings.warn(f"{type(self).__name__}: no trainable variable belongs to a layer named in multipliers "
                          f"({', '.join(sorted(self.multipliers))}); every rate is unscaled. Variable paths "
                          f"look like {var_list[0].path!r}.", stacklevel=2)

    def _matches(self, variable):
        return any(name in self.multipliers for name in variable.path.split("/")[:-1])

    def _multiplier_of(self, variable):
        return self._variable_multipliers[self._get_variable_index(variable)]

    def multipliers_by_variable(self):
        """`{variable path: multiplier}` for the variables the optimizer was built with."""
        return {v.path: m for v, m in zip(self._trainable_variables, self._variable_multipliers)}

    def update_step(self, gradient, variable, learning_rate):
        multiplier = self._multiplier_of(variable)
        if multiplier == 0.0:
            return
        if multiplier != 1.0:
            learning_rate = learning_rate * multiplier
        super().update_step(gradient, variable, learning_rate)

    def _apply_weight_decay(self, variables):
        if self.weight_decay is None:
            return
        groups = {}
        for variable in variables:
            groups.setdefault(self._multiplier_of(variable), []).append(variable)
        # The backend's own decay (TensorFlow's is tf.distribute-aware), once per multiplier, with the decay
        # rate scaled for that group while it runs.
        weight_decay = self.weight_decay
        try:
            for multiplier, group in groups.items():
                if multiplier:
                    self.weight_decay = weight_decay * multiplier
                    super()._apply_weight_decay(group)
        finally:
            self.weight_decay = weight_decay

    def get_config(self):
        return {**super().get_config(), "multipliers": dict(self.multipliers)}


@keras.saving.register_keras_serializable(package="keras_transfer")
class LayerwiseAdam(LayerwiseMixin, keras.optimizers.Adam):
    """`keras.optimizers.Adam` with a learning-rate multiplier per layer (see `LayerwiseMixin`).

    Args:
        learning_rate: a float or a `LearningRateSchedule`.
        multipliers: `{layer name: multiplier}`; layers not named get 1.0, 0 freezes a layer's updates.
        **kwargs: any other argument of `keras.optimizers.Adam`.

    Example:
    >>> optimizer = LayerwiseAdam(1e-3, multipliers={"conv_a": 0.1, "predictions": 1.0})
    """


@keras.saving.register_keras_serializable(package="keras_transfer")
class LayerwiseAdamW(LayerwiseMixin, keras.optimizers.AdamW):
    """`keras.optimizers.AdamW` with a learning-rate multiplier per layer; the decoupled weight decay is
    scaled by the same multiplier (as in timm's layer decay).

    Args:
        learning_rate: a float or a `LearningRateSchedule`.
        multipliers: `{layer name: multiplier}`; layers not named get 1.0, 0 freezes a layer's updates.
        **kwargs: any other argument of `keras.optimizers.AdamW` (`weight_decay` defaults to 0.004).

    Example:
    >>> optimizer = LayerwiseAdamW(1e-3, multipliers={"conv_a": 0.1}, weight_decay=0.01)
    """


@keras.saving.register_keras_serializable(package="keras_transfer")
class LayerwiseSGD(LayerwiseMixin, keras.optimizers.SGD):
    """`keras.optimizers.SGD` with a learning-rate multiplier per layer (see `LayerwiseMixin`).

    Args:
        learning_rate: a float or a `LearningRateSchedule`.
        multipliers: `{layer name: multiplier}`; layers not named get 1.0, 0 freezes a layer's updates.
        **kwargs: any other argument of `keras.optimizers.SGD`.

    Example:
    >>> optimizer = LayerwiseSGD(0.01, multipliers={"conv_a": 0.1}, momentum=0.9)
    """


@keras.saving.register_keras_serializable(package="keras_transfer")
class LayerwiseRMSprop(LayerwiseMixin, keras.optimizers.RMSprop):
    """`keras.optimizers.RMSprop` with a learning-rate multiplier per layer (see `LayerwiseMixin`).

    Args:
        learning_rate: a float or a `LearningRateSchedule`.
        multipliers: `{layer name: multiplier}`; layers not named get 1.0, 0 freezes a layer's updates.
        **kwargs: any other argument of `keras.optimizers.RMSprop`.

    Example:
    >>> optimizer = LayerwiseRMSprop(1e-3, multipliers={"conv_a": 0.1})
    """


_CLASSES = {
    "adam": (keras.optimizers.Adam, LayerwiseAdam),
    "adamw": (keras.optimizers.AdamW, LayerwiseAdamW),
    "sgd": (keras.optimizers.SGD, LayerwiseSGD),
    "rmsprop": (keras.optimizers.RMSprop, LayerwiseRMSprop),
}


def make_optimizer(name, learning_rate, *, multipliers=None, weight_decay=None):
    """An optimizer by name: the plain Keras one, or its layer-wise version where `multipliers` is given.

    Args:
        name: `"adam"`, `"adamw"` (weight decay 0.004 unless given), `"sgd"` (momentum 0.9) or `"rmsprop"`.
        learning_rate: a float or a `keras.optimizers.schedules.LearningRateSchedule`.
        multipliers: `{layer name: multiplier}` (see `block_multipliers`), or `None` for one rate everywhere.
        weight_decay: decoupled weight decay, or `None` (none, except AdamW's default).

    Example:
    >>> make_optimizer("adamw", 1e-3, multipliers={"conv_a": 0.1}).multipliers
    {'conv_a': 0.1}
    """
    if name not in _CLASSES:
        raise unknown_name("optimizer", name, OPTIMIZERS)
    plain, layerwise = _CLASSES[name]
    kwargs = {"weight_decay": weight_decay}
    if name == "adamw" and weight_decay is None:
        kwargs["weight_decay"] = 0.004
    if name == "sgd":
        kwargs["momentum"] = 0.9
    if multipliers is None:
        return plain(learning_rate, **kwargs)
    return layerwise(learning_rate, multipliers=multipliers, **kwargs)


def block_multipliers(model, decay, *, head=1.0):
    """Discriminative rates by backbone block (fastai's, timm's layer decay): `{layer name: multiplier}`.

    The head (every layer outside the backbone) gets `head`, the backbone's top block `head * decay`, the
    block below `head * decay**2`, and so on down to the stem. The names are the backbone's inner layer
    names, which is what a nested layer's variable paths hold.

    Args:
        model: a model made by `build_classifier`.
        decay: the factor between neighbouring blocks, in (0, 1].
        head: the head's multiplier (>= 0).

    Returns:
        A dict for `make_optimizer(..., multipliers=...)`.

    Example:
    >>> model = build_classifier("vgg16", 3, weights=None, input_size=32)
    >>> block_multipliers(model, 0.5)["block5_conv3"], block_multipliers(model, 0.5)["block4_conv3"]
    (0.5, 0.25)
    """
    if not (isinstance(decay, (int, float)) and not isinstance(decay, bool) and 0 < decay <= 1):
        raise KerasTransferError(f"decay must be a number in (0, 1]. Received: decay={decay!r}")
    _check_multipliers({"head": head})
    backbone = get_backbone(model)
    result, weighted = {}, set()
    for layer in model.layers:
        if layer is not backbone:
            _assign(result, weighted, layer, float(head))
    for depth, (_, layers) in enumerate(reversed(backbone_blocks(model)), start=1):
        for layer in layers:
            _assign(result, weighted, layer, float(head) * decay ** depth)
    return result


def _assign(result, weighted, layer, multiplier):
    """Sets the multiplier of `layer` and its sublayers. A weightless layer never overrides a layer with
    weights of the same name; two layers with weights under one name (told apart by no path) is an error."""
    for inner in layer._flatten_layers(include_self=True):
        if inner.name in weighted:
            if inner.weights and result[inner.name] != multiplier:
                raise KerasTransferError(
                    f"Two layers with weights are named '{inner.name}' (one in the backbone, one outside it), so "
                    f"their variables cannot be told apart; rename one. Received: layer={inner.name!r}")
            continue
        result[inner.name] = multiplier
        if inner.weights:
            weighted.add(inner.name)
