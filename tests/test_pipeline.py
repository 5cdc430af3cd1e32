"""`pipeline.make_dataset`: shapes, dtypes, labels, the same pixels as read_image + resize_image, seeded
reshuffling, caching, bad arguments; and a Keras fit on it (on whichever backend runs the suite)."""

import keras
import numpy as np
import pytest
from image_files import write_16bit_png, write_gray_jpeg, write_png, write_rgba_png

from keras_transfer.errors import KerasTransferError
from keras_transfer.data.images import read_image, resize_image
from keras_transfer.data.pipeline import make_dataset


@pytest.fixture
def files(tmp_path):
    paths = [write_png(tmp_path / f"{i}.png", height=10 + i, width=14, seed=i) for i in range(5)]
    paths += [write_rgba_png(tmp_path / "rgba.png"), write_gray_jpeg(tmp_path / "gray.jpg"),
              write_16bit_png(tmp_path / "deep.png")[0]]
    return paths, [i % 3 for i in range(len(paths))]


def _collect(dataset):
    images, labels = [], []
    for x, y in dataset:
        images.append(np.asarray(x))
        labels.append(np.asarray(y))
    return np.concatenate(images), np.concatenate(labels)


def test_shapes_dtypes_labels_and_pixels(files):
    paths, labels = files
    dataset = make_dataset(paths, labels, image_size=12, batch_size=3)
    batches = [np.asarray(x).shape for x, _ in dataset]
    assert batches == [(3, 12, 12, 3), (3, 12, 12, 3), (2, 12, 12, 3)]
    images, got = _collect(dataset)
    assert images.dtype == np.float32 and got.dtype == np.int32
    assert got.tolist() == labels
    expected = np.stack([resize_image(read_image(p), 12) for p in paths])
    np.testing.assert_array_equal(images, expected)


def test_shuffle_is_seeded_and_changes_each_epoch(files):
    paths, labels = files
    order = {p: i for i, p in enumerate(paths)}
    expected = np.stack([resize_image(read_image(p), 8) for p in paths])

    def epochs(seed):
        dataset = make_dataset(paths, list(range(len(paths))), image_size=8, batch_size=4, shuffle=True, seed=seed)
        return [_collect(dataset) for _ in range(3)]

    first, again = epochs(5), epochs(5)
    for (images_a, ids_a), (images_b, ids_b) in zip(first, again):
        assert ids_a.tolist() == ids_b.tolist()
        np.testing.assert_array_equal(images_a, images_b)
        np.testing.assert_array_equal(images_a, expected[ids_a])  # each image still carries its own label
    assert len({tuple(ids.tolist()) for _, ids in first}) > 1  # reshuffled between epochs
    assert all(sorted(ids.tolist()) == list(range(len(paths))) for _, ids in first)
    assert len(order) == len(paths)


@pytest.mark.parametrize("cache", ["memory", "file"])
def test_cache_gives_the_same_examples(files, tmp_path, cache):
    paths, labels = files
    cache = str(tmp_path / "cache") if cache == "file" else cache
    plain = _collect(make_dataset(paths, labels, image_size=8, batch_size=4))
    dataset = make_dataset(paths, labels, image_size=8, batch_size=4, cache=cache)
    for _ in range(2):
        images, got = _collect(dataset)
        np.testing.assert_allclose(images, plain[0], rtol=0, atol=0.5)  # cached as uint8: rounded to whole levels
        np.testing.assert_array_equal(images, np.round(images))
        assert got.tolist() == labels
    shuffled = make_dataset(paths, labels, image_size=8, batch_size=4, cache=cache + "2" if cache != "memory"
                            else cache, shuffle=True, seed=1)
    images, got = _collect(shuffled)
    assert sorted(got.tolist()) == sorted(labels) and images.shape == plain[0].shape


def test_keras_fits_on_it(files):
    paths, labels = files
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Rescaling(1 / 255.0), keras.layers.Flatten(),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    history = model.fit(make_dataset(paths, labels, image_size=8, batch_size=4, shuffle=True), epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"]).all()


@pytest.mark.parametrize("kwargs, received", [
    (dict(image_size=0), "image_size=0"), (dict(batch_size=2.5), "batch_size=2.5"), (dict(cache=3), "cache=3")])
def test_bad_arguments(files, kwargs, received):
    paths, labels = files
    args = dict(image_size=8, batch_size=2) | kwargs
    with pytest.raises(KerasTransferError, match=f"Received: {received}"):
        make_dataset(paths, labels, **args)


def test_paths_and_labels_must_match(files):
    paths, labels = files
    with pytest.raises(KerasTransferError, match="same length"):
        make_dataset(paths, labels[:-1], image_size=8, batch_size=2)


def test_tensorflow_is_kept_off_the_gpu_only_under_other_backends(files, monkeypatch):
    import tensorflow as tf

    calls = []
    monkeypatch.setattr(tf.config, "set_visible_devices", lambda devices, kind: calls.append((devices, kind)))
    paths, labels = files
    make_dataset(paths, labels, image_size=8, batch_size=2)
    expected = [] if keras.backend.backend() == "tensorflow" else [([], "GPU")]
    assert calls == expected


@pytest.mark.backend_free
def test_the_shuffle_after_a_cache_is_bounded_by_bytes():
    from keras_transfer.data.pipeline import shuffle_buffer

    assert shuffle_buffer(10**6, (224, 224)) == 128 * 2**20 // (224 * 224 * 3) == 891  # not the whole data set
    assert shuffle_buffer(100, (224, 224)) == 100 and shuffle_buffer(10**6, (2000, 2000)) == 64


def test_readers_must_name_a_known_decoder(files):
    paths, labels = files
    with pytest.raises(KerasTransferError, match="readers must hold one of"):
        make_dataset(paths, labels, image_size=8, batch_size=2, readers=["gif"] * len(paths))
