"""One seed controls splits, augmentation, initialisation and shuffling: two runs with the same seed on
the same backend (CPU) give identical metrics; another seed gives others."""

import json
import os

import keras
import numpy as np

from conftest import make_small_cnn, write_image_folder
from keras_transfer.models.classifier import build_classifier
from keras_transfer.training.batches import reshuffled_batches
from keras_transfer.training.phases import train_phase
from keras_transfer.training.presets import get_preset
from keras_transfer.runs.train import train_from_folder

RUN = dict(recipe="two_phase", backbone="tinyvgg", weights=None, input_size=32, strategy="head_only", epochs=2,
           batch_size=4, augmentation="light", dropout=0.5, verbose=0)


def _history(data, out, seed):
    train_from_folder(data, out, seed=seed, **RUN)
    with open(os.path.join(out, "history.json")) as f:
        history = json.load(f)
    with open(os.path.join(out, "splits.json")) as f:
        return history, json.load(f)


def test_same_seed_same_metrics_other_seed_other_metrics(tmp_path):
    data = write_image_folder(tmp_path / "data", per_class=5)

    first, first_splits = _history(data, str(tmp_path / "a"), seed=7)
    second, second_splits = _history(data, str(tmp_path / "b"), seed=7)
    other, other_splits = _history(data, str(tmp_path / "c"), seed=8)

    assert first_splits == second_splits
    assert first == second  # every metric of every epoch, bit for bit
    assert first_splits != other_splits or first["loss"] != other["loss"]
    assert first["val_loss"] != other["val_loss"]


class _OrderSignature(keras.metrics.Metric):
    """Sum over an epoch's steps of step number x the batch's first label: it differs between two epochs that
    see their rows in different orders (almost surely), equal for epochs that repeat one order."""

    def __init__(self, name="order"):
        super().__init__(name=name)
        self.step = self.add_variable((), initializer="zeros", name="step")
        self.total = self.add_variable((), initializer="zeros", name="total")

    def update_state(self, y_true, y_pred, sample_weight=None):
        step = keras.ops.add(self.step.value, 1.0)
        first = keras.ops.cast(keras.ops.reshape(y_true, (-1,))[0], "float32")
        self.step.assign(step)
        self.total.assign(keras.ops.add(self.total.value, step * (first + 1.0)))

    def result(self):
        return keras.ops.convert_to_tensor(self.total)


def test_a_seeded_run_on_arrays_sees_a_new_order_every_epoch(monkeypatch):
    # Keras's fit(x, y, shuffle=True) on TensorFlow repeats one order every epoch once a seed is set.
    from keras_transfer.training import presets

    monkeypatch.setattr(presets, "default_metrics", lambda model: [_OrderSignature()])
    keras.utils.set_random_seed(0)
    x, y = np.random.default_rng(0).random((40, 8, 8, 3), dtype="float32"), np.arange(40) % 4
    model = build_classifier(make_small_cnn(size=8, filters=(4,) * 5), 4, input_size=8, augmentation="none",
                             dropout=0.0)
    history, _ = train_phase(model, (x, y), preset=get_preset("feature_extraction", epochs=4, batch_size=5),
                             verbose=0)
    orders = history.history["order"]
    assert len(orders) == 4 and len(set(orders)) >= 3, orders
    assert all(value >= sum(range(1, 9)) for value in orders)  # 8 steps of 5 rows, every epoch


def test_reshuffled_batches_cover_every_row_once_per_epoch_in_new_orders():
    keras.utils.set_random_seed(0)
    x = {"ids": np.arange(23)[:, None] * np.ones((1, 3), "int32"), "mask": np.ones((23, 3), "int32")}
    dataset = reshuffled_batches(x, np.arange(23, dtype="float32"), batch_size=5)
    epochs = [[(batch[0]["ids"].numpy()[:, 0].tolist(), batch[1].numpy().tolist()) for batch in dataset]
              for _ in range(3)]
    for epoch in epochs:
        assert [len(labels) for _, labels in epoch] == [5, 5, 5, 5, 3]
        assert all(ids == labels for ids, labels in epoch)  # rows stay paired across the dict and the labels
        assert sorted(row for _, labels in epoch for row in labels) == list(range(23))
    assert len({str(epoch) for epoch in epochs}) == 3
