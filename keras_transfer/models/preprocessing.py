"""The preprocessing each backbone's weights expect, as a serialisable layer inside the model."""

import keras
from keras import ops

from keras_transfer.errors import KerasTransferError

# ImageNet statistics used by keras.applications.imagenet_utils.
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)

MODES = ("caffe", "tf", "torch", "none")


@keras.saving.register_keras_serializable(package="keras_transfer")
class ImagePreprocessing(keras.layers.Layer):
    """Maps raw RGB pixels in [0, 255] to what a backbone's weights expect.

    Modes match `keras.applications.imagenet_utils.preprocess_input`:
    `"caffe"` (RGB to BGR, minus the ImageNet mean), `"tf"` (scale to [-1, 1]),
    `"torch"` (scale to [0, 1], ImageNet mean and std), `"none"` (the backbone
    preprocesses inside itself, e.g. EfficientNet, ConvNeXt, MobileNetV3).

    Args:
        mode: one of `"caffe"`, `"tf"`, `"torch"`, `"none"`.
        mean: optional per-channel mean overriding the mode's default
            (in the mode's channel order), e.g. the Caffe HED mean.

    Example:
    >>> layer = ImagePreprocessing("tf")
    >>> float(layer(keras.ops.ones((1, 2, 2, 3)) * 255.0)[0, 0, 0, 0])
    1.0
    """

    def __init__(self, mode="caffe", mean=None, **kwargs):
        super().__init__(**kwargs)
        if mode not in MODES:
            raise KerasTransferError(
                f"Unknown preprocessing mode '{mode}'. Allowed: {', '.join(MODES)}. Received: mode={mode!r}"
            )
        self.mode = mode
        self.mean = tuple(float(m) for m in mean) if mean is not None else None

    def call(self, x):
        x = ops.cast(x, self.compute_dtype)
        if self.mode == "caffe":
            x = ops.flip(x, axis=-1)
            return x - ops.convert_to_tensor(self.mean or _CAFFE_MEAN_BGR, dtype=x.dtype)
        if self.mode == "tf":
            return x / 127.5 - 1.0
        if self.mode == "torch":
            mean = ops.convert_to_tensor(self.mean or _TORCH_MEAN, dtype=x.dtype)
            return (x / 255.0 - mean) / ops.convert_to_tensor(_TORCH_STD, dtype=x.dtype)
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mode": self.mode, "mean": self.mean}
