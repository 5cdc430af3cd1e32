"""The backbone registry: every keras.applications image model, each declared once.

A `BackboneSpec` holds everything a call site needs: the constructor, the preprocessing its
weights expect, default and minimum input sizes, the named blocks (stages) from input to output,
the ImageNet weights file name and the parameter count. `keras-transfer backbones` prints the table.
"""

import dataclasses
import re

import keras

from keras_transfer.errors import KerasTransferError, unknown_name


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """One backbone, declared once.

    Args:
        name: registry name, lower case (`"resnet50"`).
        build: the `keras.applications` constructor.
        preprocess: `ImagePreprocessing` mode its weights expect (`"caffe"`, `"tf"`, `"torch"`, `"none"`).
        default_size: the input size its ImageNet weights were trained at.
        min_size: the smallest input side the architecture accepts.
        blocks: `(block_name, end_layer_regex)` pairs from input to output. Block k holds the layers
            after block k-1 up to and including the last layer whose name fully matches the regex;
            layers after the last block's end belong to the last block.
        params: parameter count without the top (`include_top=False`).
        weights_file: the no-top ImageNet weights file Keras caches in `$KERAS_HOME/models/`
            (`{size}` is replaced by the nearest size in `weights_sizes`).
        weights_sizes: input sizes that have their own ImageNet weights file (empty: any size).
        fixed_size_for_imagenet: the only input size its ImageNet weights load at, if any.
        family: a family name for the table.
        kwargs: extra constructor arguments.
    """

    name: str
    build: object
    preprocess: str
    default_size: int
    min_size: int
    blocks: tuple
    params: int
    weights_file: str
    weights_sizes: tuple = ()
    fixed_size_for_imagenet: int = 0
    family: str = ""
    kwargs: tuple = ()

    @property
    def block_names(self):
        return tuple(name for name, _ in self.blocks)

    def weights_file_for(self, input_size):
        """The cached weights file name Keras uses for this input size."""
        if not self.weights_sizes:
            return self.weights_file
        size = input_size if input_size in self.weights_sizes else self.default_size
        return self.weights_file.format(size=size)


_A = keras.applications
_RESNET_BLOCKS = (("conv1", r"pool1_pool"), ("conv2", r"conv2_block\d+_out"), ("conv3", r"conv3_block\d+_out"),
                  ("conv4", r"conv4_block\d+_out"), ("conv5", r"conv5_block\d+_out"))


def _vgg_blocks():
    return tuple((f"block{i}", rf"block{i}_pool") for i in range(1, 6))


_SPECS = [
    BackboneSpec("resnet50", _A.ResNet50, "caffe", 224, 32, _RESNET_BLOCKS, 23_587_712,
                 "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5", family="ResNet"),
    BackboneSpec("vgg16", _A.VGG16, "caffe", 224, 32, _vgg_blocks(), 14_714_688,
                 "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", family="VGG"),
    BackboneSpec("inceptionv3", _A.InceptionV3, "tf", 299, 75,
                 tuple((f"mixed{i}", rf"mixed{i}") for i in range(11)), 21_802_784,
                 "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5", family="Inception"),
]

BACKBONES = {spec.name: spec for spec in _SPECS}


def _canonical(name):
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def get_backbone_spec(name):
    """Looks up a registry entry by name (case, `-` and `_` ignored: `"ResNet-50"` is `"resnet50"`).

    Raises:
        KerasTransferError: for an unknown name, with the closest match and the listing command.
    """
    if isinstance(name, BackboneSpec):
        return name
    spec = BACKBONES.get(_canonical(name))
    if spec is None:
        raise unknown_name("backbone", name, BACKBONES, hint=" See `keras-transfer backbones`.")
    return spec


def list_backbones():
    """All registry entries, in declaration order."""
    return list(BACKBONES.values())


def check_input_size(spec, input_size):
    """Raises a clear error when `input_size` is below the backbone's minimum."""
    if not isinstance(input_size, int) or isinstance(input_size, bool) or input_size < spec.min_size:
        raise KerasTransferError(
            f"Input size {input_size} is too small for backbone '{spec.name}': it needs at least "
            f"{spec.min_size}x{spec.min_size} pixels (its ImageNet weights were trained at {spec.default_size}). "
            f"Received: input_size={input_size!r}"
        )


def split_blocks(backbone, blocks=None):
    """Assigns each layer of `backbone` (input layers excluded) to a named block.

    Args:
        backbone: a functional `keras.Model`.
        blocks: `(name, end_regex)` pairs as in `BackboneSpec.blocks`; `None` finds blocks
            generically (a new block wherever the spatial resolution drops).

    Returns:
        A list of `(block_name, [layers])`, from input to output.
    """
    layers = [layer for layer in backbone.layers if not isinstance(layer, keras.layers.InputLayer)]
    if blocks is None:
        return _generic_blocks(layers)
    result, start = [], 0
    for name, pattern in blocks:
        ends = [i for i, layer in enumerate(layers) if re.fullmatch(pattern, layer.name)]
        if not ends or ends[-1] < start:
            raise KerasTransferError(
                f"Block '{name}' of backbone '{backbone.name}' ends at a layer matching '{pattern}', "
                f"but no such layer follows the previous block. Received: blocks={blocks!r}"
            )
        result.append((name, layers[start:ends[-1] + 1]))
        start = ends[-1] + 1
    result[-1][1].extend(layers[start:])
    return result


def _spatial_size(layer):
    try:
        shape = layer.output.shape
    except (AttributeError, ValueError):
        return None
    return tuple(shape[1:3]) if len(shape) == 4 else None


def _generic_blocks(layers):
    """Stages of an unknown model: a new block starts where the output resolution shrinks."""
    result, current, last = [], [], None
    for layer in layers:
        size = _spatial_size(layer)
        if current and size is not None and last is not None and size != last and None not in size \
                and None not in last and size[0] < last[0]:
            result.append((f"stage{len(result) + 1}", current))
            current = []
        current.append(layer)
        if size is not None:
            last = size
    if current:
        result.append((f"stage{len(result) + 1}", current))
    return result
