"""No setting is silently ignored: every `RunConfig` field, for every kind of run (image classification,
regression, multi-label; text), is either read by the run or refused by `RunConfig.validate` in one line."""

import ast
import dataclasses
import os
import re

import pytest

from keras_transfer.errors import KerasTransferError
from keras_transfer.runs.config import RunConfig
from keras_transfer.runs.config_checks import NOT_USED

pytestmark = pytest.mark.backend_free

RUNS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "keras_transfer", "runs")
# The one driver (train.py) reads a run's settings, and so do the two parts it composes: a modality and a task.
PARTS = {"classification": ("modalities.py:ImageModality", "tasks.py:Classification"),
         "regression": ("modalities.py:ImageModality", "tasks.py:Regression"),
         "multilabel": ("modalities.py:ImageModality", "tasks.py:Multilabel"),
         "text": ("text_modality.py:TextModality", "tasks.py:Classification")}
KINDS = {"classification": dict(), "regression": dict(task="regression"), "multilabel": dict(task="multilabel"),
         "text": dict(modality="text")}
DEFINE_THE_KIND = ("data_dir", "task", "modality")  # what picks the driver, read where the run is dispatched
# A value other than the default for each field, with the settings it needs to take effect.
OTHER = dict(backbone=dict(backbone="vgg16"), weights=dict(weights=None), input_size=dict(input_size=64),
             recipe=dict(recipe="lp_ft"), strategy=dict(strategy="full"), n=dict(n=1),
             layer=dict(strategy="from_layer", layer="block_5"), epochs=dict(epochs=3),
             fine_tune_epochs=dict(fine_tune_epochs=3), batch_size=dict(batch_size=4),
             validation_split=dict(validation_split=0.3), test_split=dict(test_split=0.1), strict=dict(strict=True),
             antialias=dict(antialias=True), class_weight=dict(class_weight="balanced"),
             augmentation=dict(augmentation="none"), dropout=dict(dropout=0.3), label_smoothing=dict(label_smoothing=0.1),
             learning_rate=dict(learning_rate=1e-2), fine_tune_learning_rate=dict(fine_tune_learning_rate=1e-3),
             l2sp=dict(l2sp=0.01), head_l2=dict(head_l2=0.01), layer_decay=dict(layer_decay=0.7), seed=dict(seed=1),
             cache_features=dict(cache_features=True, augmentation="none"),
             cache_dir=dict(cache_features=True, augmentation="none", cache_dir="features"),
             precision=dict(precision="mixed_bfloat16"), jit_compile=dict(jit_compile=False), devices=dict(devices=2),
             sequence_length=dict(sequence_length=16), label_separator=dict(label_separator=";"),
             loss=dict(classification="mse", regression="mae", multilabel="focal", text="mse"),
             distribution=None)  # one choice only: nothing else to give
FIELDS = [f.name for f in RunConfig.fields()]


def _class_source(part):
    """The source of the class `name` in `file` (`"file:name"`) under keras_transfer/runs."""
    file, name = part.split(":")
    text = open(os.path.join(RUNS, file), encoding="utf-8").read()
    node = next(n for n in ast.parse(text).body if isinstance(n, ast.ClassDef) and n.name == name)
    return ast.get_source_segment(text, node)


def _read_by(kind):
    """The fields a kind of run reads: the driver's `config.<field>`, its modality and task parts', plus
    `recipe_options`'s."""
    driver = open(os.path.join(RUNS, "train.py"), encoding="utf-8").read().split("def run_training")[1]
    driver += "".join(_class_source(part) for part in PARTS[kind])
    options = open(os.path.join(RUNS, "config.py"), encoding="utf-8").read().split("def recipe_options")[1]
    return set(re.findall(r"\bconfig\.(\w+)", driver + options))


def _data(tmp_path, kind):
    if kind == "classification":
        os.makedirs(tmp_path / "photos" / "cat")
        return str(tmp_path / "photos")
    path = tmp_path / ("texts.csv" if kind == "text" else "manifest.csv")
    path.write_text("text,label\na,b\n" if kind == "text" else "path,target\na.png,1\n")
    return str(path)


def test_every_field_has_another_value_to_walk_or_says_why_not():
    assert set(OTHER) | set(DEFINE_THE_KIND) == set(FIELDS)
    assert all(name in FIELDS for names in NOT_USED.values() for name in names)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_field_no_run_of_a_kind_reads_is_refused_by_validate(kind):
    unread = set(FIELDS) - _read_by(kind) - set(DEFINE_THE_KIND)
    refused_elsewhere = {"classification": {"loss"}, "regression": {"class_weight"}}.get(kind, set())  # own lines
    assert sorted(unread - set(NOT_USED[kind]) - refused_elsewhere) == []


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("field", sorted(set(OTHER) - {"distribution"}))
def test_each_setting_is_honoured_or_refused_in_one_line(tmp_path, monkeypatch, kind, field):
    monkeypatch.chdir(tmp_path)
    other = OTHER[field]
    if field == "loss":
        other = dict(loss=other[kind])
    if field == "backbone" and kind == "text":
        other = dict(backbone="all-MiniLM-L6-v2")  # the text registry's other spelling of its default encoder
    if kind == "text" and field != "augmentation":
        other = {name: value for name, value in other.items() if name != "augmentation"}  # texts are not augmented
    settings = dict(KINDS[kind], data_dir=_data(tmp_path, kind), **other)
    config = RunConfig.create(**settings)
    try:
        validated = config.validate()
    except KerasTransferError as error:
        message = str(error)
        assert "\n" not in message and field in message and "Received:" in message
        return
    assert field not in NOT_USED[kind], f"{field}={other[field]!r} was accepted by a {kind} run that does not use it"
    assert field in _read_by(kind) or field == "backbone"
    changed = {name: value for name, value in dataclasses.asdict(validated).items()
               if name in other and name not in ("cache_dir", "backbone")}
    assert changed == {name: value for name, value in other.items() if name not in ("cache_dir", "backbone")}


@pytest.mark.parametrize("settings, message", [
    (dict(modality="text", precision="mixed_bfloat16"), "precision is not supported for modality 'text'"),
    (dict(modality="text", jit_compile=True), "jit_compile is not supported for modality 'text'"),
    (dict(modality="text", l2sp=0.1), "l2sp is not supported for modality 'text'"),
    (dict(modality="text", layer_decay=0.9), "layer_decay is not supported for modality 'text'"),
    (dict(sequence_length=32), "sequence_length is not supported for task 'classification'"),
    (dict(task="regression", strict=True), "strict is not supported for task 'regression'"),
    (dict(layer="block_5"), "strategy='from_layer' starts unfreezing"),
    (dict(cache_dir="features"), "cache_dir is where cache_features streams"),
])
def test_the_settings_the_issue_names_are_refused(tmp_path, monkeypatch, settings, message):
    monkeypatch.chdir(tmp_path)
    kind = "text" if settings.get("modality") == "text" else settings.get("task", "classification")
    with pytest.raises(KerasTransferError, match=re.escape(message)):
        RunConfig.create(data_dir=_data(tmp_path, kind), **settings).validate()
