"""Text runs through `train_from_folder(..., modality="text")`: the run folder (the real MiniLM, the default
backbone) and the text settings' one-line errors. `keras-transfer train --modality text` (its flags and call, on
the tiny random BERT) is checked on the run test_text_run_cli trains once for its module."""

import csv
import json
import os

import pytest

from keras_transfer.errors import KerasTransferError
from keras_transfer.runs.config import RunConfig
from keras_transfer.runs.train import train_from_folder

# The first lines of real Python standard-library docstrings, labelled by their module family.
TEXTS = {"maths": ["Return the square root of x.", "Return the sine of x (measured in radians).",
                   "Return the cosine of x (measured in radians).", "Return the natural logarithm of x.",
                   "Return the greatest common divisor of the integers.", "Return the factorial of n.",
                   "Return the arc tangent of x.", "Return the floor of x as an Integral."],
         "network": ["Return the current host name.", "Create a new socket using the given address family.",
                     "Connect to a remote socket at address.", "Receive up to buffersize bytes from the socket.",
                     "Send a data string to the socket.", "Shut down the reading side of the socket.",
                     "Return the address of the remote endpoint.", "Set the socket to blocking or non-blocking."],
         "time": ["Return the current time in seconds since the Epoch.", "Return the current date and time.",
                  "Return a new date with the given year, month and day.", "Difference between two datetime values.",
                  "Return the number of days in the month.", "Delay execution for a given number of seconds.",
                  "Return the day of the week as an integer.", "Return true if the year is a leap year."]}


def _write(path):
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([("text", "label")] + [(t, k) for k, texts in TEXTS.items() for t in texts])
    return str(path)


def test_a_text_run_writes_its_folder_and_a_test_report(tmp_path):
    source = _write(tmp_path / "texts.csv")
    out = str(tmp_path / "run")
    model, result = train_from_folder(source, out, modality="text", sequence_length=16, validation_split=0.25,
                                      test_split=0.25, seed=0, verbose=0)
    for name in ("config.json", "class_names.json", "splits.json", "data_summary.json", "recipe.json", "report.json"):
        assert os.path.isfile(os.path.join(out, name)), name
    assert os.path.isdir(os.path.join(out, "preprocessor"))
    config = json.load(open(os.path.join(out, "config.json")))["settings"]
    assert (config["modality"], config["backbone"], config["sequence_length"]) == ("text", "all_minilm_l6_v2", 16)
    recipe = json.load(open(os.path.join(out, "recipe.json")))
    assert recipe["recipe"] == "lp_ft" and any("linear" in line or "converge" in line for line in recipe["plan"])
    report = json.load(open(os.path.join(out, "report.json")))
    assert report["n"] == 6 and report["accuracy"] >= 0.5  # 2 held-out texts a class; chance is 1/3
    with pytest.raises(KerasTransferError, match="already holds a run|exists"):
        train_from_folder(source, out, modality="text", sequence_length=16)


@pytest.mark.backend_free
@pytest.mark.parametrize("settings, message", [
    (dict(sequence_length=600), r"sequence_length must be an integer from 2 to 512"),
    (dict(backbone="all_minilm"), r"Did you mean 'all_minilm_l6_v2'"),
    (dict(weights="w.h5"), r"takes weights 'imagenet' \(its pretrained weights\) or none"),
])
def test_text_settings_are_checked_before_anything_runs(tmp_path, settings, message):
    source = _write(tmp_path / "texts.csv")
    with pytest.raises(KerasTransferError, match=message) as info:
        RunConfig.create(data_dir=source, modality="text", **settings).validate()
    assert "\n" not in str(info.value)


@pytest.mark.backend_free
def test_text_data_must_be_a_table_or_a_folder(tmp_path):
    bad = tmp_path / "texts.xlsx"
    bad.write_text("x")
    with pytest.raises(KerasTransferError, match=r"\.csv/\.tsv/\.jsonl table.*Received: data_dir="):
        RunConfig.create(data_dir=str(bad), modality="text").validate()
