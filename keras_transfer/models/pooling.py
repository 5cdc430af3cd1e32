"""The text model's pooling layer, in a module without KerasHub so that loading a `.keras` file can always
register it (`models.saving`), whether or not the text extra was imported in this process."""

import keras

from keras_transfer.models.text_registry import check_pooling


@keras.saving.register_keras_serializable(package="keras_transfer")
class SequencePooling(keras.layers.Layer):
    """`(sequence_output, padding_mask)` -> one vector a text: the first token (`"cls"`) or the mean over the
    real tokens (`"mean"`, padding left out, as sentence-transformers pools)."""

    def __init__(self, mode="cls", **kwargs):
        super().__init__(**kwargs)
        check_pooling(mode)
        self.mode = mode

    def call(self, sequence, padding_mask):
        if self.mode == "cls":
            return sequence[:, 0, :]
        mask = keras.ops.expand_dims(keras.ops.cast(padding_mask, sequence.dtype), -1)
        total = keras.ops.sum(sequence * mask, axis=1)
        return total / keras.ops.maximum(keras.ops.sum(mask, axis=1), 1.0)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}
