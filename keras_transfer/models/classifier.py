"""Builds the classifier: raw pixels in, augmentation, preprocessing, backbone, pooling, dropout, head."""

import os

import keras

from keras_transfer.models.augmentation import make_augmentation
from keras_transfer.models.registry import check_input_size, get_backbone_spec
from keras_transfer.models.text_registry import is_text_backbone_name, text_spec_of
from keras_transfer.errors import KerasTransferError
from keras_transfer.models.precision import dtype_policy
from keras_transfer.models.preprocessing import ImagePreprocessing
from keras_transfer.models.saving import load_keras_file
from keras_transfer.models.weights import build_backbone, load_weights_file

BACKBONE_LAYER = "backbone"
HEAD_LAYER = "predictions"
POOLINGS = ("avg", "max")


@keras.saving.register_keras_serializable(package="keras_transfer")
class ClassifierHead(keras.layers.Dense):
    """The output layer: a float32 `Dense` with softmax (or one sigmoid unit for two classes)
    that also carries the class names and the registry backbone name, so they travel with the
    saved model."""

    def __init__(self, units, class_names=None, backbone_name=None, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(units, **kwargs)
        self.class_names = list(class_names) if class_names is not None else None
        self.backbone_name = backbone_name

    def get_config(self):
        return {**super().get_config(), "class_names": self.class_names, "backbone_name": self.backbone_name}


def build_classifier(backbone, num_classes=None, *, weights="imagenet", input_size=None, augmentation="light",
                     dropout=0.2, pooling="avg", class_names=None, preprocess=None, seed=None, name=None,
                     precision=None):
    """Builds a transfer-learning classifier as a plain functional `keras.Model`.

    The model takes raw RGB pixels in [0, 255] at `input_size`, applies `augmentation` (active only
    in training), the backbone's own preprocessing, the backbone (called with `training=False`, so
    frozen BatchNorm layers stay in inference mode), pooling, dropout and the head. The backbone is
    the layer named `"backbone"`; `freeze()` sets its inner layers' `trainable`.

    Args:
        backbone: a registry name (`"resnet50"`, see `list_backbones()`), a `keras.Model` mapping
            images to features, or a path to a `.keras` file holding one.
        num_classes: number of classes (>= 2); two classes get one sigmoid unit. Defaults to
            `len(class_names)`.
        weights: `"imagenet"`, `None`, or a weights file path. A user backbone keeps its own weights
            under the default `"imagenet"`, or loads a weights file given here.
        input_size: square input side; defaults to the backbone's default size.
        augmentation: `"light"` (default), `"flip"`, `"geometric"`, `"none"`/`None`, or a list of layers.
        dropout: dropout rate before the head (0 for none).
        pooling: `"avg"` or `"max"` global pooling of the backbone's feature map.
        class_names: optional class names, stored in the head layer (and so in saved models).
        preprocess: override the preprocessing mode (`"caffe"`, `"tf"`, `"torch"`, `"none"`);
            a user backbone defaults to `"none"` (it should include its own).
        seed: seed for augmentation and dropout. (The head starts at zero: on large pretrained features a
            random head starts with large random logits that a few hundred images cannot undo.)
        name: the model name (default `"<backbone>_classifier"`).
        precision: `"float32"` (default), `"mixed_bfloat16"` or `"mixed_float16"`: the dtype policy the
            model is built under (the global policy is restored afterwards); the head stays float32.

    Returns:
        A functional `keras.Model`, not compiled.

    Example:
    >>> model = build_classifier("mobilenetv2", 3, weights=None, input_size=32)
    >>> model.output_shape
    (None, 3)
    """
    with dtype_policy(precision):
        num_classes = resolve_num_classes(num_classes, class_names)
        spec, base, input_size, preprocess = _resolve_backbone(backbone, weights, input_size, preprocess)
        if pooling not in POOLINGS:
            raise KerasTransferError(f"Unknown pooling '{pooling}'. Allowed: avg, max. Received: pooling={pooling!r}")
        if not 0 <= float(dropout) < 1:
            raise KerasTransferError(f"dropout must be in [0, 1). Received: dropout={dropout!r}")

        inputs = keras.Input((input_size, input_size, 3), name="image")
        x = inputs
        augment = make_augmentation(augmentation, seed=seed)
        if augment is not None:
            x = augment(x)
        x = ImagePreprocessing(preprocess, name="preprocessing")(x)
        x = base(x, training=False)
        if len(x.shape) == 4:
            pool = keras.layers.GlobalAveragePooling2D if pooling == "avg" else keras.layers.GlobalMaxPooling2D
            x = pool(name="pooling")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, seed=seed, name="dropout")(x)
        units, activation = (1, "sigmoid") if num_classes == 2 else (num_classes, "softmax")
        outputs = ClassifierHead(units, class_names=class_names, backbone_name=spec.name if spec else None,
                                 activation=activation, name=HEAD_LAYER, kernel_initializer="zeros")(x)
        return keras.Model(inputs, outputs, name=name or f"{spec.name if spec else 'custom'}_classifier")


def resolve_num_classes(num_classes, class_names):
    if num_classes is None and class_names is not None:
        num_classes = len(class_names)
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
        raise KerasTransferError(
            f"num_classes must be an integer >= 2 (two classes get one sigmoid unit). Received: num_classes={num_classes!r}"
        )
    if class_names is not None and len(class_names) != num_classes:
        raise KerasTransferError(
            f"class_names has {len(class_names)} names but num_classes is {num_classes}. "
            f"Received: class_names={list(class_names)!r}"
        )
    return num_classes


def _resolve_backbone(backbone, weights, input_size, preprocess):
    """Returns (spec or None, backbone model, input size, preprocessing mode)."""
    if isinstance(backbone, (str, os.PathLike)) and os.fspath(backbone).endswith(".keras"):
        if not os.path.isfile(backbone):
            raise KerasTransferError(f"Backbone file not found: {backbone}. Received: backbone={backbone!r}")
        backbone = load_keras_file(backbone, compile=False)
    if isinstance(backbone, keras.Model):
        if weights is None:
            raise KerasTransferError(
                "A user backbone keeps its own weights; weights=None cannot reset them. Pass a freshly built "
                "model, or weights='imagenet' (the default: keep them) or a weights file to load into it. "
                "Received: weights=None"
            )
        if weights != "imagenet":
            load_weights_file(backbone, weights)
        if backbone.name != BACKBONE_LAYER:
            backbone.name = BACKBONE_LAYER
        return None, backbone, _user_input_size(backbone, input_size), preprocess or "none"
    spec = get_backbone_spec(backbone)
    input_size = spec.default_size if input_size is None else input_size
    check_input_size(spec, input_size)
    return spec, build_backbone(spec, input_size, weights), input_size, preprocess or spec.preprocess


def _user_input_size(model, input_size):
    shape = model.input_shape
    fixed = shape[1] if isinstance(shape, tuple) and len(shape) == 4 else None
    if input_size is None and fixed is None:
        raise KerasTransferError("This backbone accepts any input size: pass input_size. Received: input_size=None")
    if input_size is not None and fixed is not None and input_size != fixed:
        raise KerasTransferError(
            f"The backbone takes {fixed}x{fixed} images but input_size={input_size} was given. "
            f"Received: input_size={input_size!r}"
        )
    return input_size or fixed


def get_backbone(model):
    """The backbone layer of a model made by `build_classifier`."""
    try:
        return model.get_layer(BACKBONE_LAYER)
    except ValueError:
        raise KerasTransferError(
            f"Model '{model.name}' has no layer named '{BACKBONE_LAYER}': was it made by build_classifier? "
            f"Received: model={model.name!r}"
        ) from None


def _head(model):
    try:
        return model.get_layer(HEAD_LAYER)
    except ValueError:
        return None


def get_class_names(model):
    """The class names stored in the head of a model made by `build_classifier` (or `None`)."""
    return getattr(_head(model), "class_names", None)


def backbone_spec_of(model):
    """The registry entry a classifier was built on, or `None` for a user backbone."""
    name = getattr(_head(model), "backbone_name", None)
    if is_text_backbone_name(name):  # a text encoder: its blocks from its layer count
        return text_spec_of(name, get_backbone(model))
    return get_backbone_spec(name) if name else None


def class_indices(probabilities):
    """Predicted class indices from a classifier's output (one sigmoid unit or a softmax)."""
    probabilities = keras.ops.convert_to_numpy(probabilities)
    if probabilities.shape[-1] == 1:
        return (probabilities[..., 0] > 0.5).astype("int64")
    return probabilities.argmax(-1)


def head_layers(model):
    """The classifier's own `dropout` (if any) and head layers, in order."""
    names = [layer.name for layer in model.layers]
    return [model.get_layer(name) for name in ("dropout", HEAD_LAYER) if name in names]


def feature_extractor(model):
    """The model up to the head's input: preprocessing, backbone and pooling (inference mode)."""
    first = head_layers(model)[0]
    return keras.Model(model.inputs, first.input, name=f"{model.name}_features")


def head_model(model):
    """`Input(features) -> model's own dropout and head layers`: training it trains `model`'s head."""
    layers = head_layers(model)
    inputs = keras.Input(tuple(layers[0].input.shape[1:]), name="features")
    x = inputs
    for layer in layers:
        x = layer(x)
    return keras.Model(inputs, x, name=f"{model.name}_head")


def input_size(model):
    """`(height, width)` of a single-input image model taking `(None, height, width, 3)`.

    Example:
    >>> input_size(build_classifier("mobilenetv2", 3, weights=None, input_size=32))
    (32, 32)
    """
    shape = model.input_shape
    if not (isinstance(shape, tuple) and len(shape) == 4 and shape[1] and shape[2]):
        raise KerasTransferError(f"Expected a model taking images of a fixed size, (None, height, width, 3). "
                                 f"Received: model.input_shape={shape}")
    return int(shape[1]), int(shape[2])
