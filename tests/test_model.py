"""The classifier builder: shapes, structure, save/load with class names, augmentation, preprocessing, bad input."""

import keras
import numpy as np
import pytest
from conftest import as_numpy, randomize_head
from keras.src.models import Functional

import keras_transfer  # noqa: F401  (registers the serialisable classes, as a user script would)
from keras_transfer import (ClassifierHead, ImagePreprocessing, build_classifier, class_indices, freeze,
                            get_backbone, get_class_names)
from keras_transfer.errors import KerasTransferError
from keras_transfer.models.freezing import backbone_blocks
from keras_transfer.models.classifier import backbone_spec_of


@pytest.fixture(scope="module")
def vgg16_light():
    """VGG16 at 32 px with light augmentation and no dropout, random head (built once for this module)."""
    keras.utils.set_random_seed(0)
    model = build_classifier("vgg16", 4, weights=None, input_size=32, augmentation="light", dropout=0.0,
                             class_names=["a", "b", "c", "d"], seed=3)
    randomize_head(model)
    return model


def test_multiclass_output_shape_and_structure(vgg16_light, tiny_xy):
    model = vgg16_light
    assert type(model) is Functional and isinstance(model, keras.Model)  # a plain functional model
    assert model.input_shape == (None, 32, 32, 3)
    assert model.output_shape == (None, 4)
    backbone = model.get_layer("backbone")
    assert isinstance(backbone, keras.Model)
    assert get_backbone(model) is backbone
    assert backbone_spec_of(model).name == "vgg16"
    head = model.get_layer("predictions")
    assert isinstance(head, ClassifierHead) and head.activation.__name__ == "softmax"
    x, _ = tiny_xy(3, 32, 4)
    probabilities = model.predict(x, verbose=0)
    assert probabilities.shape == (3, 4)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, rtol=1e-5)


def test_two_classes_get_one_sigmoid_unit(small_cnn, tiny_xy):
    model = build_classifier(small_cnn(), 2, augmentation=None)
    assert model.output_shape == (None, 1)
    assert model.get_layer("predictions").activation.__name__ == "sigmoid"
    randomize_head(model)
    p = model.predict(tiny_xy(4, 32, 2)[0], verbose=0)
    assert p.shape == (4, 1) and np.all((p > 0) & (p < 1))


def test_class_names_travel_through_keras_save_and_load(vgg16_light, tmp_path, tiny_xy):
    path = str(tmp_path / "model.keras")
    vgg16_light.save(path)
    restored = keras.saving.load_model(path)  # no custom_objects: `import keras_transfer` registered them
    assert get_class_names(restored) == ["a", "b", "c", "d"]
    assert get_class_names(vgg16_light) == ["a", "b", "c", "d"]
    assert backbone_spec_of(restored).name == "vgg16"
    x, _ = tiny_xy(3, 32, 4)
    np.testing.assert_allclose(restored.predict(x, verbose=0), vgg16_light.predict(x, verbose=0), atol=1e-5)


def test_no_class_names(small_cnn):
    assert get_class_names(build_classifier(small_cnn(), 3, augmentation=None)) is None


def test_num_classes_defaults_to_the_class_names(small_cnn):
    model = build_classifier(small_cnn(), class_names=["x", "y", "z"], augmentation=None)
    assert model.output_shape == (None, 3)


def test_augmentation_is_inactive_at_inference(vgg16_light, tiny_xy):
    x, _ = tiny_xy(4, 32, 4)
    first = vgg16_light.predict(x, verbose=0)
    second = vgg16_light.predict(x, verbose=0)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(as_numpy(vgg16_light(x, training=False)), first, atol=1e-5)


def test_augmentation_is_active_in_training(vgg16_light, tiny_xy):
    x, _ = tiny_xy(4, 32, 4)
    first = as_numpy(vgg16_light(x, training=True))
    second = as_numpy(vgg16_light(x, training=True))
    assert np.abs(first - second).max() > 1e-6


def test_without_augmentation_training_calls_agree(tiny_xy):
    # The control for the test above: with no augmentation (and no dropout) training mode is deterministic.
    model = build_classifier("vgg16", 4, weights=None, input_size=32, augmentation=None, dropout=0.0)
    randomize_head(model)
    x, _ = tiny_xy(4, 32, 4)
    np.testing.assert_allclose(as_numpy(model(x, training=True)), as_numpy(model(x, training=True)), atol=1e-6)


@pytest.mark.parametrize("mode, module", [("caffe", "vgg16"), ("tf", "mobilenet_v2"), ("torch", "densenet")])
def test_preprocessing_matches_keras_applications(mode, module, rng):
    x = rng.uniform(0, 255, size=(2, 8, 8, 3)).astype("float32")
    expected = getattr(keras.applications, module).preprocess_input(x.copy())
    got = as_numpy(ImagePreprocessing(mode)(x))
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert np.abs(got - x).max() > 1  # it did something


def test_preprocessing_none_and_a_custom_mean(rng):
    x = rng.uniform(0, 255, size=(2, 4, 4, 3)).astype("float32")
    np.testing.assert_array_equal(as_numpy(ImagePreprocessing("none")(x)), x)
    mean = (104.0, 116.5, 122.5)  # BGR, as the caffe mode's channel order
    np.testing.assert_allclose(as_numpy(ImagePreprocessing("caffe", mean=mean)(x)),
                               x[..., ::-1] - np.array(mean, "float32"), atol=1e-4)
    layer = ImagePreprocessing.from_config(ImagePreprocessing("caffe", mean=mean).get_config())
    assert layer.mode == "caffe" and layer.mean == mean


def test_unknown_preprocessing_mode():
    with pytest.raises(KerasTransferError, match="Received: mode='bgr'"):
        ImagePreprocessing("bgr")


def test_class_indices():
    assert list(class_indices(np.array([[0.2], [0.7]]))) == [0, 1]
    assert list(class_indices(np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]]))) == [1, 0]


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(num_classes=1), "Received: num_classes=1"),
    (dict(num_classes=None), "Received: num_classes=None"),
    (dict(num_classes=3, class_names=["a", "b"]), "class_names has 2 names but num_classes is 3"),
    (dict(num_classes=3, pooling="sum"), "Received: pooling='sum'"),
    (dict(num_classes=3, dropout=1.5), "Received: dropout=1.5"),
    (dict(num_classes=3, augmentation="heavy"), "Received: augmentation='heavy'"),
    (dict(num_classes=3, input_size=64), "Received: input_size=64"),  # the user backbone takes 32 px
])
def test_bad_arguments(small_cnn, kwargs, fragment):
    with pytest.raises(KerasTransferError) as info:
        build_classifier(small_cnn(), **kwargs)
    assert fragment in str(info.value)


def test_a_user_backbone_with_generic_blocks_and_freeze(small_cnn):
    model = build_classifier(small_cnn(), 3, augmentation=None)
    assert model.input_shape == (None, 32, 32, 3)  # taken from the backbone
    assert backbone_spec_of(model) is None
    backbone = get_backbone(model)
    assert backbone.name == "backbone"
    blocks = backbone_blocks(model)
    assert [name for name, _ in blocks] == ["stage1", "stage2", "stage3"]
    assert [layer.name for layer in blocks[-1][1]] == ["conv_d", "conv_e"]

    report = freeze(model, "top_blocks", n=1)

    head = model.get_layer("predictions")
    expected = {id(w) for w in head.trainable_weights}
    expected |= {id(w) for name in ("conv_d", "conv_e") for w in backbone.get_layer(name).weights}
    assert {id(w) for w in model.trainable_weights} == expected
    assert report.trainable_weights_after == len(expected) == 6
    assert report.trainable_blocks == ("stage3",)


def test_a_user_backbone_from_a_keras_file(small_cnn, tmp_path):
    path = str(tmp_path / "cnn.keras")
    small_cnn().save(path)
    model = build_classifier(path, 3, augmentation=None)
    assert model.output_shape == (None, 3)
    assert [layer.name for layer in get_backbone(model).layers][1:] == ["conv_a", "conv_b", "pool", "conv_c",
                                                                      "conv_d", "conv_e"]


def test_a_missing_keras_backbone_file(tmp_path):
    missing = str(tmp_path / "nowhere.keras")
    with pytest.raises(KerasTransferError) as info:
        build_classifier(missing, 3)
    assert missing in str(info.value)


def test_weights_for_a_user_backbone_are_not_ignored_silently(small_cnn, tmp_path):
    with pytest.raises(KerasTransferError):
        build_classifier(small_cnn(), 3, weights=str(tmp_path / "nowhere.weights.h5"), augmentation=None)
