"""L2-SP and head penalties: in `model.losses`, in the loss `fit` minimises, off for frozen and BatchNorm weights,
pulling fine-tuned weights towards the pretrained ones, and (the head's) kept by `.keras` save and load."""

import keras
import numpy as np
import pytest

from conftest import as_numpy, make_small_cnn, make_tiny_xy, randomize_head
from keras_transfer.errors import KerasTransferError
from keras_transfer.models.classifier import build_classifier, get_backbone
from keras_transfer.training.regularization import (L2SP, attach_l2sp, detach_regularization,
                                                    regularize_head)


def _model(batchnorm=True):
    """A classifier on a small CNN backbone whose random weights stand in for pretrained ones."""
    model = build_classifier(make_small_cnn(batchnorm=batchnorm), 3, augmentation="none", dropout=0)
    randomize_head(model)
    return model


def _perturb(variables, seed=0, scale=0.1):
    rng = np.random.default_rng(seed)
    for variable in variables:
        variable.assign(as_numpy(variable) + rng.normal(0, scale, tuple(variable.shape)).astype("float32"))


def _l2sp_numpy(variables, references, alpha):
    return sum(alpha / 2 * np.sum((as_numpy(v).astype("float64") - r) ** 2) for v, r in zip(variables, references))


def _total(losses):
    return float(sum(float(as_numpy(loss)) for loss in losses))


def _fit_loss(model, x, y):
    """The loss `fit` reports for one full batch at learning rate 0 (weights unchanged)."""
    return model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0).history["loss"][0]


def _penalised(backbone):
    return [v for v in backbone.weights if "bn_" not in v.path]


def test_l2sp_penalty_is_in_losses_and_in_the_loss_fit_minimises():
    model = _model()
    backbone = get_backbone(model)
    pretrained = backbone.get_weights()
    model.compile(keras.optimizers.SGD(0.0), "sparse_categorical_crossentropy")
    x, y = make_tiny_xy(6)
    plain = _fit_loss(model, x, y)  # the train step is traced here, before the penalty exists

    report = attach_l2sp(model, 0.5)
    assert _total(model.losses) == pytest.approx(0.0, abs=1e-6)  # at the reference: no penalty yet
    _perturb(backbone.weights)  # BatchNorm weights too: their distance must not count
    references = [r for v, r in zip(backbone.weights, pretrained) if "bn_" not in v.path]
    expected = _l2sp_numpy(_penalised(backbone), references, 0.5)
    assert expected > 1.0
    assert _total(model.losses) == pytest.approx(expected, rel=1e-4)

    with_penalty = _fit_loss(model, x, y)
    assert detach_regularization(model) == report.variables == 10
    without = _fit_loss(model, x, y)
    assert with_penalty - without == pytest.approx(expected, rel=1e-3)
    assert without != pytest.approx(plain)  # the weights did move: the comparison is not trivially equal


def test_explicit_reference_is_the_pretrained_weights():
    model = _model()
    backbone = get_backbone(model)
    pretrained = backbone.get_weights()
    _perturb(backbone.weights, seed=1)
    attach_l2sp(model, 2.0, reference=pretrained)
    references = [r for v, r in zip(backbone.weights, pretrained) if "bn_" not in v.path]
    assert _total(model.losses) == pytest.approx(_l2sp_numpy(_penalised(backbone), references, 2.0), rel=1e-4)
    regularizer = backbone.get_layer("conv_a").kernel.regularizer
    assert isinstance(regularizer, L2SP)
    np.testing.assert_array_equal(regularizer.reference, pretrained[0])


def _distance_after_fine_tuning(model, initial, alpha):
    model.set_weights(initial)
    backbone = get_backbone(model)
    pretrained = backbone.get_weights()
    detach_regularization(model)
    if alpha:
        attach_l2sp(model, alpha)
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    x, y = make_tiny_xy(12, seed=3)
    model.fit(x / 255.0, y, batch_size=4, epochs=8, shuffle=False, verbose=0)
    return np.sqrt(sum(np.sum((as_numpy(v) - r) ** 2) for v, r in zip(backbone.weights, pretrained)))


def test_l2sp_pulls_fine_tuned_weights_towards_the_pretrained_ones():
    model = _model(batchnorm=False)
    initial = model.get_weights()
    free = _distance_after_fine_tuning(model, initial, 0.0)
    pulled = _distance_after_fine_tuning(model, initial, 1.0)
    assert free > 0.5  # measured: 3.5 without the penalty, 0.1 with it (TensorFlow)
    assert pulled < 0.2 * free


def test_frozen_and_batchnorm_weights_carry_no_penalty():
    model = _model()
    backbone = get_backbone(model)
    backbone.get_layer("conv_a").trainable = False
    report = attach_l2sp(model, 1.0)
    assert (report.variables, report.trainable_variables, report.normalization_variables) == (10, 8, 4)
    for name in ("gamma", "beta", "moving_mean", "moving_variance"):
        assert getattr(backbone.get_layer("bn_e"), name).regularizer is None
    pretrained = {v.path: as_numpy(v) for v in backbone.weights}
    _perturb(backbone.weights)
    counted = [v for v in _penalised(backbone) if "conv_a" not in v.path]
    expected = _l2sp_numpy(counted, [pretrained[v.path] for v in counted], 1.0)
    assert _total(model.losses) == pytest.approx(expected, rel=1e-4)

    backbone.trainable = False
    assert _total(model.losses) == 0.0
    backbone.trainable = True  # unfreezing switches the penalty back on, conv_a's included
    everything = _penalised(backbone)
    expected = _l2sp_numpy(everything, [pretrained[v.path] for v in everything], 1.0)
    assert _total(model.losses) == pytest.approx(expected, rel=1e-4)


def test_beta_penalises_the_head_and_detach_removes_only_l2sp():
    model = _model()
    head = model.get_layer("predictions")
    report = attach_l2sp(model, 0.1, beta=0.4)
    assert report.head_variables == 1 and "beta=0.4" in str(report)
    assert _total(model.losses) == pytest.approx(0.2 * np.sum(as_numpy(head.kernel) ** 2), rel=1e-5)
    assert detach_regularization(model) == 11
    assert model.losses == []

    regularize_head(model, l2=0.1)
    with pytest.raises(KerasTransferError, match=r"already has a penalty.*Received: beta=0\.4$"):
        attach_l2sp(model, 0.1, beta=0.4)
    attach_l2sp(model, 0.1)
    detach_regularization(model)
    assert _total(model.losses) == pytest.approx(0.1 * np.sum(as_numpy(head.kernel) ** 2), rel=1e-5)


def test_head_penalty_survives_save_and_load_and_is_in_the_fit_loss(tmp_path):
    model = _model()
    x, y = make_tiny_xy(6)
    model.compile(keras.optimizers.SGD(0.0), "sparse_categorical_crossentropy")
    without = _fit_loss(model, x, y)
    regularize_head(model, l1=0.01, l2=0.1)
    kernel = as_numpy(model.get_layer("predictions").kernel).astype("float64")
    expected = 0.01 * np.abs(kernel).sum() + 0.1 * np.square(kernel).sum()
    assert _total(model.losses) == pytest.approx(expected, rel=1e-5)
    assert _fit_loss(model, x, y) - without == pytest.approx(expected, rel=1e-3)

    path = str(tmp_path / "model.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    config = reloaded.get_layer("predictions").get_config()["kernel_regularizer"]["config"]
    assert config == pytest.approx({"l1": 0.01, "l2": 0.1})
    assert _total(reloaded.losses) == pytest.approx(expected, rel=1e-5)

    regularize_head(model)  # both 0: removed
    assert model.losses == [] and model.get_layer("predictions").kernel_regularizer is None


@pytest.mark.parametrize("call, message", [
    (lambda m: attach_l2sp(m, -1.0), r"alpha must be a finite number >= 0\. Received: alpha=-1\.0$"),
    (lambda m: attach_l2sp(m, float("nan")), r"Received: alpha=nan$"),
    (lambda m: attach_l2sp(m, 0.1, beta=-2), r"Received: beta=-2$"),
    (lambda m: attach_l2sp(m, 0.1, reference=[np.zeros(3)]), r"one array per backbone weight.*"
                                                             r"Received: len\(reference\)=1$"),
    (lambda m: attach_l2sp(m, 0.1, reference=[np.zeros(3)] * 14), r"conv_a.*Received: reference\[0\]\.shape=\(3,\)$"),
    (lambda m: attach_l2sp(m.get_layer("backbone"), 0.1), r"no layer named 'backbone'.*Received: model='backbone'$"),
    (lambda m: regularize_head(m, l2=-0.1), r"Received: l2=-0\.1$"),
    (lambda m: regularize_head(m.get_layer("backbone"), l2=0.1), r"no head layer.*Received: model='backbone'$"),
])
def test_bad_arguments_raise_one_line(call, message):
    model = _model()
    with pytest.raises(KerasTransferError, match=message) as raised:
        call(model)
    assert "\n" not in str(raised.value)
    assert model.losses == []
