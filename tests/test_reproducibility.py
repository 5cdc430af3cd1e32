"""One seed controls splits, augmentation, initialisation and shuffling: two runs with the same seed on
the same backend (CPU) give identical metrics; another seed gives others."""

import json
import os

from conftest import write_image_folder
from keras_transfer.runs.train import train_from_folder

RUN = dict(recipe="two_phase", backbone="tinyvgg", weights=None, input_size=32, strategy="head_only", epochs=2, batch_size=4,
           augmentation="light", dropout=0.5, verbose=0)


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
