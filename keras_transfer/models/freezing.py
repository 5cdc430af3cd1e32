"""Freeze strategies, set through `layer.trainable` on the backbone's inner layers.

BatchNorm layers stay frozen (and so in inference mode, with fixed moving statistics) unless the
caller asks otherwise: calling the backbone with `training=False` alone does not keep unfrozen
BatchNorm layers in inference mode during `fit` (keras-team/keras#20285). Every call recompiles a
compiled model, so a changed model never trains with a stale train step or optimizer.
"""

import dataclasses
import math

import keras

from keras_transfer.models.registry import split_blocks
from keras_transfer.errors import KerasTransferError, unknown_name
from keras_transfer.models.classifier import backbone_spec_of, get_backbone
from keras_transfer.models.text_registry import UNUSED_ENCODER_LAYERS

FREEZE_STRATEGIES = ("head_only", "top_blocks", "from_layer", "full")


@dataclasses.dataclass
class FreezeReport:
    """What `freeze` changed."""

    strategy: str
    trainable_weights_before: int
    trainable_weights_after: int
    trainable_params_before: int
    trainable_params_after: int
    trainable_blocks: tuple
    frozen_batchnorm_layers: int
    recompiled: bool

    def __str__(self):
        blocks = ", ".join(self.trainable_blocks) or "none"
        return (f"freeze '{self.strategy}': trainable weights {self.trainable_weights_before} -> "
                f"{self.trainable_weights_after} ({self.trainable_params_before:,} -> "
                f"{self.trainable_params_after:,} params); backbone blocks trainable: {blocks}; "
                f"{self.frozen_batchnorm_layers} BatchNorm layers frozen"
                f"{'; recompiled' if self.recompiled else ''}")


def backbone_blocks(model):
    """The backbone's blocks as `[(name, [layers])]`: the registry's, or found generically."""
    spec = backbone_spec_of(model)
    return split_blocks(get_backbone(model), spec.blocks if spec else None)


def _params(model):
    return int(sum(math.prod(w.shape) for w in model.trainable_weights))


def freeze(model, strategy="head_only", *, n=None, layer=None, train_batchnorm=False, recompile=True):
    """Sets which backbone layers train, and recompiles a compiled model.

    Args:
        model: a model made by `build_classifier`.
        strategy: `"head_only"` (backbone frozen), `"top_blocks"` (the top `n` blocks train),
            `"from_layer"` (backbone layers from `layer` onwards train), `"full"` (all train).
        n: number of top blocks, for `"top_blocks"` (1 to the backbone's block count).
        layer: a backbone layer name, for `"from_layer"`.
        train_batchnorm: let unfrozen BatchNorm layers train (and update their statistics).
        recompile: recompile a compiled model with its compile configuration (a fresh optimizer).

    Returns:
        A `FreezeReport` with trainable weight counts before and after.

    Example:
    >>> model = build_classifier("vgg16", 3, weights=None, input_size=32)
    >>> freeze(model, "top_blocks", n=1).trainable_blocks
    ('block5',)
    """
    if strategy not in FREEZE_STRATEGIES:
        raise unknown_name("freeze strategy", strategy, FREEZE_STRATEGIES)
    before = (len(model.trainable_weights), _params(model))
    backbone = get_backbone(model)
    blocks = backbone_blocks(model)
    trainable = _trainable_layers(backbone, blocks, strategy, n, layer)
    for outer in model.layers:
        if outer is not backbone:
            outer.trainable = True
    backbone.trainable = bool(trainable)
    frozen_bn = 0
    for inner in backbone.layers:
        inner.trainable = inner in trainable and inner.name not in UNUSED_ENCODER_LAYERS
    for inner in backbone._flatten_layers(include_self=False):
        if isinstance(inner, keras.layers.BatchNormalization) and not train_batchnorm:
            frozen_bn += 1
            inner.trainable = False
    recompiled = bool(recompile and getattr(model, "compiled", False))
    if recompiled:
        model.compile_from_config(model.get_compile_config())
    trainable_ids = {id(layer) for layer in trainable}
    return FreezeReport(
        strategy=strategy,
        trainable_weights_before=before[0],
        trainable_weights_after=len(model.trainable_weights),
        trainable_params_before=before[1],
        trainable_params_after=_params(model),
        trainable_blocks=tuple(name for name, layers in blocks if any(id(x) in trainable_ids for x in layers)),
        frozen_batchnorm_layers=frozen_bn,
        recompiled=recompiled,
    )


def check_strategy(model, strategy, *, n=None, layer=None):
    """Raises the error `freeze` would raise for these arguments, without changing the model."""
    if strategy not in FREEZE_STRATEGIES:
        raise unknown_name("freeze strategy", strategy, FREEZE_STRATEGIES)
    _trainable_layers(get_backbone(model), backbone_blocks(model), strategy, n, layer)


def _trainable_layers(backbone, blocks, strategy, n, layer):
    """The set of backbone layers (top level) that should train."""
    all_layers = [x for _, layers in blocks for x in layers]
    if strategy == "head_only":
        return set()
    if strategy == "full":
        return set(all_layers)
    if strategy == "top_blocks":
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= len(blocks):
            raise KerasTransferError(
                f"'top_blocks' needs n between 1 and {len(blocks)} (the backbone's blocks: "
                f"{', '.join(name for name, _ in blocks)}). Received: n={n!r}"
            )
        return {x for _, layers in blocks[-n:] for x in layers}
    names = [x.name for x in all_layers]
    if layer not in names:
        raise unknown_name("layer", layer, names, hint=f" (layers of the backbone '{backbone.name}')")
    return set(all_layers[names.index(layer):])
