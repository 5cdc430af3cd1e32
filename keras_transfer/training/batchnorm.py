"""BatchNorm statistics re-estimated on training images ("precise BN": Wu & Johnson, "Rethinking 'Batch' in
BatchNorm", 2021), for models whose BatchNorm trains.

During training BatchNorm normalises with each batch's statistics and keeps an exponential moving average of
them for inference. Trained from scratch for a few hundred steps, the weights move fast and the average lags
behind them: measured here, a MobileNetV2 that reaches training accuracy 1.0 on a separable task predicted
one class for every image in inference mode (accuracy 0.5) with its moving averages, and 1.0 once they were
re-estimated. So before every validation (and at every epoch's end) the statistics are recomputed: a
training-mode pass of the backbone over a fixed sample of training images, each layer's batch mean and
variance averaged over the sample's batches, written as its moving statistics.
"""

import keras
import numpy as np

from keras_transfer.models.classifier import get_backbone

SAMPLE_IMAGES = 256


def batchnorm_layers(model):
    """The backbone's BatchNorm layers."""
    return [layer for layer in get_backbone(model)._flatten_layers(include_self=False)
            if isinstance(layer, keras.layers.BatchNormalization)]


def sample_batches(train, images=SAMPLE_IMAGES, batch_size=32):
    """A fixed list of image batches (numpy) from `(x, y)` arrays or a dataset of `(x, y)` batches."""
    if isinstance(train, tuple):
        x = np.asarray(train[0][:images])
        return [x[i:i + batch_size] for i in range(0, len(x), batch_size)]
    batches, seen = [], 0
    for element in train:
        x = np.asarray(keras.ops.convert_to_numpy(element[0]))
        batches.append(x)
        seen += len(x)
        if seen >= images:
            break
    return batches


class _Forward:
    """A training-mode pass of preprocessing + backbone with BatchNorm momentum 0, so each layer's moving
    statistics become the batch's; on JAX a compiled stateless call (op by op it is ~4x slower)."""

    def __init__(self, model):
        self.backbone = get_backbone(model)
        names = [layer.name for layer in model.layers]
        self.preprocess = model.get_layer("preprocessing") if "preprocessing" in names else None
        self.layers = batchnorm_layers(model)
        self._jitted = None

    def _inputs(self, x):
        return self.preprocess(x) if self.preprocess is not None else x

    def statistics(self, x):
        """`[(mean, variance)]` per BatchNorm layer for the batch `x` (the moving statistics are left changed)."""
        momenta = [layer.momentum for layer in self.layers]
        for layer in self.layers:
            layer.momentum = 0.0
        try:
            if keras.backend.backend() == "jax":
                self._jax_pass(x)
            else:
                self.backbone(self._inputs(x), training=True)
        finally:
            for layer, momentum in zip(self.layers, momenta):
                layer.momentum = momentum
        return [(keras.ops.convert_to_numpy(layer.moving_mean), keras.ops.convert_to_numpy(layer.moving_variance))
                for layer in self.layers]

    def _jax_pass(self, x):
        import jax  # lazy: the JAX backend only

        backbone = self.backbone
        if self._jitted is None:
            def step(trainable, non_trainable, images):
                _, updated = backbone.stateless_call(trainable, non_trainable, self._inputs(images), training=True)
                return updated
            self._jitted = jax.jit(step)  # traced once, with momentum 0
        updated = self._jitted([v.value for v in backbone.trainable_variables],
                               [v.value for v in backbone.non_trainable_variables], x)
        for variable, value in zip(backbone.non_trainable_variables, updated):
            variable.assign(value)


def recalibrate_batchnorm(model, batches, forward=None):
    """Sets every backbone BatchNorm layer's moving mean and variance to its batch statistics averaged over
    `batches` (training-mode passes). Returns the number of layers set; the weights are otherwise unchanged."""
    forward = forward or _Forward(model)
    if not forward.layers or not batches:
        return 0
    sums = None
    for x in batches:
        stats = forward.statistics(x)
        sums = stats if sums is None else [(m0 + m, v0 + v) for (m0, v0), (m, v) in zip(sums, stats)]
    for layer, (mean, variance) in zip(forward.layers, sums):
        layer.moving_mean.assign(mean / len(batches))
        layer.moving_variance.assign(variance / len(batches))
    return len(forward.layers)


class BatchNormRecalibration(keras.callbacks.Callback):
    """Re-estimates the BatchNorm statistics on `batches` before each validation, and at each epoch's end when
    there is none, so validation, checkpoints and the final model use statistics of the current weights. Put it
    before the callbacks that save or compare the model."""

    def __init__(self, batches):
        super().__init__()
        self.batches, self._forward, self._done = batches, None, False

    def _recalibrate(self):
        if self._forward is None:
            self._forward = _Forward(self.model)
        recalibrate_batchnorm(self.model, self.batches, self._forward)
        self._done = True

    def on_epoch_begin(self, epoch, logs=None):
        self._done = False

    def on_test_begin(self, logs=None):
        if not self._done:
            self._recalibrate()

    def on_epoch_end(self, epoch, logs=None):
        if not self._done:
            self._recalibrate()
