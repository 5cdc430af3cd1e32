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
_DENSENET_BLOCKS = (("conv1", r"pool1"), ("conv2", r"pool2_pool"), ("conv3", r"pool3_pool"),
                    ("conv4", r"pool4_pool"), ("conv5", r"conv5_block\d+_concat"))
# The stem has no explicit layer names, so it joins mixed_5b.
_INCEPTION_RESNET_V2_BLOCKS = (("mixed_5b", r"mixed_5b"), ("block35", r"block35_\d+_ac"), ("mixed_6a", r"mixed_6a"),
                               ("block17", r"block17_\d+_ac"), ("mixed_7a", r"mixed_7a"), ("block8", r"conv_7b_ac"))
# The model-name prefix (`convnext_tiny_`) is matched by `\w+`; the stem includes the pre-stem normalization.
_CONVNEXT_BLOCKS = (("stem", r"\w+_stem"),) + tuple((f"stage_{i}", rf"\w+_stage_{i}_block_\d+_\w+") for i in range(4))


def _vgg_blocks():
    return tuple((f"block{i}", rf"block{i}_pool") for i in range(1, 6))


def _prefixed_blocks(count):
    """Blocks `block1`..`block{count}`, each ending at the last layer named `block{i}_*` (Xception)."""
    return tuple((f"block{i}", rf"block{i}_\w+") for i in range(1, count + 1))


def _efficientnet_blocks(stages):
    """EfficientNet(V2) stages `block1`.. (layers `block{i}a_*`, `block{i}b_*`, ...): the stem joins
    `block1`, the `top_*` layers the last stage."""
    return tuple((f"block{i}", rf"block{i}[a-z]_\w+") for i in range(1, stages + 1))


def _ranges(prefix, pattern, first, ends):
    """Blocks of numbered units `first..ends[-1]`: block k holds the units after `ends[k-1]` up to `ends[k]`
    and is named `{prefix}{start}_{end}` (`{prefix}{end}` for one unit); `pattern.format(i)` matches unit i's layers."""
    blocks, start = [], first
    for end in ends:
        blocks.append((f"{prefix}{start}" if start == end else f"{prefix}{start}_{end}", pattern.format(end)))
        start = end + 1
    return tuple(blocks)


def _inverted_residual_blocks(prefix, ends):
    """MobileNetV2/V3: the stem with unit 0 (layers `expanded_conv_*`, unnumbered), then the units
    `{prefix}{i}_*` grouped by resolution."""
    return (("expanded_conv", r"expanded_conv_[a-z]\w*"),) + _ranges(prefix, prefix + r"{}_\w+", 1, ends)


def _nasnet_blocks(num_blocks):
    """The stem (stem conv and reduction cell `stem_1`), then one stage per reduction: reduction cell
    (`stem_2`, `reduce_{n}`, `reduce_{2n}`) and the normal cells after it."""
    n = num_blocks
    return (("stem", r"reduction_concat_stem_1"), ("stage1", rf"normal_concat_{n - 1}"),
            ("stage2", rf"normal_concat_{2 * n}"), ("stage3", rf"normal_concat_{3 * n}"))


_SPECS = [
    # ResNet v1: caffe preprocessing.
    BackboneSpec("resnet50", _A.ResNet50, "caffe", 224, 32, _RESNET_BLOCKS, 23_587_712,
                 "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5", family="ResNet"),
    BackboneSpec("resnet101", _A.ResNet101, "caffe", 224, 32, _RESNET_BLOCKS, 42_658_176,
                 "resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5", family="ResNet"),
    BackboneSpec("resnet152", _A.ResNet152, "caffe", 224, 32, _RESNET_BLOCKS, 58_370_944,
                 "resnet152_weights_tf_dim_ordering_tf_kernels_notop.h5", family="ResNet"),
    # ResNet v2: tf preprocessing; conv2..conv4 stride in their last unit; post_bn/post_relu join conv5.
    BackboneSpec("resnet50v2", _A.ResNet50V2, "tf", 224, 32, _RESNET_BLOCKS, 23_564_800,
                 "resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5", family="ResNetV2"),
    BackboneSpec("resnet101v2", _A.ResNet101V2, "tf", 224, 32, _RESNET_BLOCKS, 42_626_560,
                 "resnet101v2_weights_tf_dim_ordering_tf_kernels_notop.h5", family="ResNetV2"),
    BackboneSpec("resnet152v2", _A.ResNet152V2, "tf", 224, 32, _RESNET_BLOCKS, 58_331_648,
                 "resnet152v2_weights_tf_dim_ordering_tf_kernels_notop.h5", family="ResNetV2"),
    # VGG
    BackboneSpec("vgg16", _A.VGG16, "caffe", 224, 32, _vgg_blocks(), 14_714_688,
                 "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", family="VGG"),
    BackboneSpec("vgg19", _A.VGG19, "caffe", 224, 32, _vgg_blocks(), 20_024_384,
                 "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5", family="VGG"),
    # Inception
    BackboneSpec("inceptionv3", _A.InceptionV3, "tf", 299, 75,
                 tuple((f"mixed{i}", rf"mixed{i}") for i in range(11)), 21_802_784,
                 "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5", family="Inception"),
    BackboneSpec("inceptionresnetv2", _A.InceptionResNetV2, "tf", 299, 75, _INCEPTION_RESNET_V2_BLOCKS, 54_336_736,
                 "inception_resnet_v2_weights_tf_dim_ordering_tf_kernels_notop.h5", family="Inception"),
    # Xception: the auto-named residual add (and shortcut batch norm) closing block k falls into block k+1.
    BackboneSpec("xception", _A.Xception, "tf", 299, 71, _prefixed_blocks(14), 20_861_480,
                 "xception_weights_tf_dim_ordering_tf_kernels_notop.h5", family="Xception"),
    # MobileNet v1/v2: a weights file per input size (alpha 1.0); blocks by resolution (112/56/28/14/7 at 224).
    BackboneSpec("mobilenet", _A.MobileNet, "tf", 224, 32, _ranges("conv_pw_", "conv_pw_{}_relu", 1, (1, 3, 5, 11, 13)),
                 3_228_864, "mobilenet_1_0_{size}_tf_no_top.h5", weights_sizes=(128, 160, 192, 224),
                 family="MobileNet"),
    BackboneSpec("mobilenetv2", _A.MobileNetV2, "tf", 224, 32, _inverted_residual_blocks("block_", (2, 5, 12, 16)),
                 2_257_984, "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{size}_no_top.h5",
                 weights_sizes=(96, 128, 160, 192, 224), family="MobileNet"),
    # MobileNetV3 rescales inside the model (include_preprocessing=True).
    BackboneSpec("mobilenetv3small", _A.MobileNetV3Small, "none", 224, 32,
                 _inverted_residual_blocks("expanded_conv_", (2, 7, 10)), 939_120,
                 "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5", family="MobileNet"),
    BackboneSpec("mobilenetv3large", _A.MobileNetV3Large, "none", 224, 32,
                 _inverted_residual_blocks("expanded_conv_", (2, 5, 11, 14)), 2_996_352,
                 "weights_mobilenet_v3_large_224_1.0_float_no_top_v2.h5", family="MobileNet"),
    # EfficientNet: rescaling and normalization inside the model. With weights="imagenet" Keras also adds a
    # Rescaling(1/sqrt(std)) layer after the normalization that a weights=None build lacks; build_backbone
    # always builds ImageNet models through the Keras constructor, so they get it (a weights file path does not).
    BackboneSpec("efficientnetb0", _A.EfficientNetB0, "none", 224, 32, _efficientnet_blocks(7), 4_049_571,
                 "efficientnetb0_notop.h5", family="EfficientNet"),
    BackboneSpec("efficientnetb1", _A.EfficientNetB1, "none", 240, 32, _efficientnet_blocks(7), 6_575_239,
                 "efficientnetb1_notop.h5", family="EfficientNet"),
    BackboneSpec("efficientnetb2", _A.EfficientNetB2, "none", 260, 32, _efficientnet_blocks(7), 7_768_569,
                 "efficientnetb2_notop.h5", family="EfficientNet"),
    BackboneSpec("efficientnetb3", _A.EfficientNetB3, "none", 300, 32, _efficientnet_blocks(7), 10_783_535,
                 "efficientnetb3_notop.h5", family="EfficientNet"),
    BackboneSpec("efficientnetb4", _A.EfficientNetB4, "none", 380, 32, _efficientnet_blocks(7), 17_673_823,
                 "efficientnetb4_notop.h5", family="EfficientNet"),
    BackboneSpec("efficientnetb5", _A.EfficientNetB5, "none", 456, 32, _efficientnet_blocks(7), 28_513_527,
                 "efficientnetb5_notop.h5", family="EfficientNet"),
    BackboneSpec("efficientnetb6", _A.EfficientNetB6, "none", 528, 32, _efficientnet_blocks(7), 40_960_143,
                 "efficientnetb6_notop.h5", family="EfficientNet"),
    BackboneSpec("efficientnetb7", _A.EfficientNetB7, "none", 600, 32, _efficientnet_blocks(7), 64_097_687,
                 "efficientnetb7_notop.h5", family="EfficientNet"),
    # EfficientNetV2: preprocessing inside the model (include_preprocessing=True); B0-B3 and S have 6 stages.
    BackboneSpec("efficientnetv2b0", _A.EfficientNetV2B0, "none", 224, 32, _efficientnet_blocks(6), 5_919_312,
                 "efficientnetv2-b0_notop.h5", family="EfficientNetV2"),
    BackboneSpec("efficientnetv2b1", _A.EfficientNetV2B1, "none", 240, 32, _efficientnet_blocks(6), 6_931_124,
                 "efficientnetv2-b1_notop.h5", family="EfficientNetV2"),
    BackboneSpec("efficientnetv2b2", _A.EfficientNetV2B2, "none", 260, 32, _efficientnet_blocks(6), 8_769_374,
                 "efficientnetv2-b2_notop.h5", family="EfficientNetV2"),
    BackboneSpec("efficientnetv2b3", _A.EfficientNetV2B3, "none", 300, 32, _efficientnet_blocks(6), 12_930_622,
                 "efficientnetv2-b3_notop.h5", family="EfficientNetV2"),
    BackboneSpec("efficientnetv2s", _A.EfficientNetV2S, "none", 384, 32, _efficientnet_blocks(6), 20_331_360,
                 "efficientnetv2-s_notop.h5", family="EfficientNetV2"),
    BackboneSpec("efficientnetv2m", _A.EfficientNetV2M, "none", 480, 32, _efficientnet_blocks(7), 53_150_388,
                 "efficientnetv2-m_notop.h5", family="EfficientNetV2"),
    BackboneSpec("efficientnetv2l", _A.EfficientNetV2L, "none", 480, 32, _efficientnet_blocks(7), 117_746_848,
                 "efficientnetv2-l_notop.h5", family="EfficientNetV2"),
    # DenseNet: torch preprocessing; each dense block with its transition (pool2..pool4), bn/relu join conv5.
    BackboneSpec("densenet121", _A.DenseNet121, "torch", 224, 32, _DENSENET_BLOCKS, 7_037_504,
                 "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5", family="DenseNet"),
    BackboneSpec("densenet169", _A.DenseNet169, "torch", 224, 32, _DENSENET_BLOCKS, 12_642_880,
                 "densenet169_weights_tf_dim_ordering_tf_kernels_notop.h5", family="DenseNet"),
    BackboneSpec("densenet201", _A.DenseNet201, "torch", 224, 32, _DENSENET_BLOCKS, 18_321_984,
                 "densenet201_weights_tf_dim_ordering_tf_kernels_notop.h5", family="DenseNet"),
    # ConvNeXt: normalization inside the model (include_preprocessing=True).
    BackboneSpec("convnexttiny", _A.ConvNeXtTiny, "none", 224, 32, _CONVNEXT_BLOCKS, 27_820_128,
                 "convnext_tiny_notop.h5", family="ConvNeXt"),
    BackboneSpec("convnextsmall", _A.ConvNeXtSmall, "none", 224, 32, _CONVNEXT_BLOCKS, 49_454_688,
                 "convnext_small_notop.h5", family="ConvNeXt"),
    BackboneSpec("convnextbase", _A.ConvNeXtBase, "none", 224, 32, _CONVNEXT_BLOCKS, 87_566_464,
                 "convnext_base_notop.h5", family="ConvNeXt"),
    BackboneSpec("convnextlarge", _A.ConvNeXtLarge, "none", 224, 32, _CONVNEXT_BLOCKS, 196_230_336,
                 "convnext_large_notop.h5", family="ConvNeXt"),
    BackboneSpec("convnextxlarge", _A.ConvNeXtXLarge, "none", 224, 32, _CONVNEXT_BLOCKS, 348_147_968,
                 "convnext_xlarge_notop.h5", family="ConvNeXt"),
    # NASNet: without the top, Keras loads the ImageNet weights at any static input size.
    BackboneSpec("nasnetmobile", _A.NASNetMobile, "tf", 224, 32, _nasnet_blocks(4), 4_269_716,
                 "nasnet_mobile_no_top.h5", family="NASNet"),
    BackboneSpec("nasnetlarge", _A.NASNetLarge, "tf", 331, 32, _nasnet_blocks(6), 84_916_818,
                 "nasnet_large_no_top.h5", family="NASNet"),
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
            generically, by where the spatial resolution drops (see `_generic_blocks`).

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
    """Stages of an unknown model, split where the output resolution drops: a layer with weights that
    downsamples (a strided conv) starts a new block; a weightless one (pooling) closes the current block."""
    result, current, last, close_next = [], [], None, False
    for layer in layers:
        size = _spatial_size(layer)
        known = size is not None and None not in size
        drops = known and last is not None and size[0] < last[0]
        if any(x.weights for x in current) and (close_next or (drops and layer.weights)):
            result.append((f"stage{len(result) + 1}", current))
            current = []
        close_next = bool(drops and not layer.weights)
        current.append(layer)
        if known:
            last = size
    if current:
        result.append((f"stage{len(result) + 1}", current))
    return result
