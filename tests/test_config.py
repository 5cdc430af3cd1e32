"""RunConfig: the one run configuration agrees with train_from_folder, the CLI and config.json."""

import argparse
import dataclasses
import inspect
import json
import os

import keras
import numpy as np
import pytest

import keras_transfer as kt
from keras_transfer.cli import _build_parser
from keras_transfer.errors import KerasTransferError
from keras_transfer.runs.config import RunConfig
from keras_transfer.runs.config_args import add_flags, given_settings
from keras_transfer.runs.folder import read_config

RUN_ONLY = ("overwrite", "verbose", "resume")  # how to run, not what: not settings
FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


def _train_parser():
    parser = argparse.ArgumentParser()
    add_flags(parser)
    return parser


@pytest.mark.backend_free
def test_train_from_folder_parameters_are_the_config_fields_with_their_defaults():
    params = inspect.signature(kt.train_from_folder).parameters
    settings = {name: p.default for name, p in params.items() if name not in ("data_dir", "out") + RUN_ONLY}
    fields = {f.name: f.default for f in RunConfig.fields() if f.name != "data_dir"}
    assert settings == fields
    assert list(params)[:2] == ["data_dir", "out"]
    assert all(params[name].kind is inspect.Parameter.KEYWORD_ONLY for name in fields)


@pytest.mark.backend_free
def test_cli_train_flags_are_the_config_fields_and_their_defaults_agree():
    train = next(a for a in _build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices["train"]
    dests = {a.dest for a in train._actions} - {"help", "out", "overwrite", "resume"}
    assert dests == {f.name for f in RunConfig.fields()}
    # every flag left out takes the dataclass default: nothing is given, so RunConfig() is the result
    assert given_settings(train.parse_args(["--out", "x"])) == {}
    # every flag given is a key; its value parses to the field's type
    args = train.parse_args(["photos", "--out", "x", "--blocks", "3", "--weights", "none", "--jit-compile", "false",
                             "--strict", "--learning-rate", "1e-4", "--class-weight", "balanced"])
    assert given_settings(args) == dict(data_dir="photos", n=3, weights=None, jit_compile=False, strict=True,
                                        learning_rate=1e-4, class_weight="balanced")


@pytest.mark.backend_free
def test_every_field_has_help_and_its_default_passes_its_own_check(tmp_path):
    for field in RunConfig.fields():
        assert field.metadata["help"], field.name
    RunConfig(data_dir=str(tmp_path), weights=None).validate()  # all defaults valid


@pytest.mark.backend_free
@pytest.mark.parametrize("changes, text", [
    (dict(task="regresion"), "Unknown task 'regresion'. Did you mean 'regression'?"),
    (dict(modality="audio"), "Unknown modality 'audio'"),
    (dict(strategy="top_block"), "Did you mean 'top_blocks'?"),
    (dict(n=0), "n must be an integer >= 1. Received: n=0"),
    (dict(seed=-1), "seed must be an integer >= 0"),
    (dict(seed=2 ** 32), "seed must be an integer <= 4294967295"),
    (dict(input_size=100_000), "input_size must be an integer <= 2048"),
    (dict(batch_size=10 ** 9), "batch_size must be an integer <= 65536"),
    (dict(epochs=10 ** 12), "epochs must be an integer <= 100000"),
    (dict(dropout=float("nan")), "dropout must be in [0, 1)"),
    (dict(learning_rate=float("inf")), "learning_rate must be a positive number"),
    (dict(precision="float16"), "Unknown precision 'float16'"),
    (dict(jit_compile="yes"), "jit_compile must be 'auto', True or False"),
    (dict(strict="yes"), "strict must be True or False"),
    (dict(recipe="lpft"), "Unknown recipe 'lpft'. Did you mean 'lp_ft'?"),
    (dict(layer_decay=0.0), "layer_decay must be in (0, 1]"),
    (dict(layer_decay=1.5), "layer_decay must be in (0, 1]"),
    (dict(l2sp=-0.1), "l2sp must be a positive number"),
    (dict(head_l2=-1.0), "head_l2 must be a number >= 0"),
    (dict(head_l2=float("nan")), "head_l2 must be a number >= 0"),
])
def test_validate_names_the_bad_setting(tmp_path, changes, text):
    with pytest.raises(KerasTransferError) as info:
        RunConfig(data_dir=str(tmp_path), weights=None, **changes).validate()
    assert text in str(info.value) and "Received:" in str(info.value)


@pytest.mark.backend_free
def test_an_unknown_setting_suggests_the_closest_field():
    with pytest.raises(KerasTransferError, match="Unknown training setting 'epoch'. Did you mean 'epochs'?"):
        kt.train_from_folder("photos", "runs/x", epoch=3)
    with pytest.raises(KerasTransferError, match="Did you mean 'learning_rate'"):
        kt.resume_run("runs/x", learning_rte=1e-3)


@pytest.mark.backend_free
def test_validate_resolves_defaults_once(tmp_path):
    resolved = RunConfig(data_dir=os.path.relpath(tmp_path), backbone="VGG16", weights=None,
                         jit_compile="false").validate()
    assert resolved.backbone == "vgg16" and resolved.input_size == 224
    assert resolved.data_dir == str(tmp_path) and resolved.jit_compile is False
    assert resolved.validate() == resolved  # resolving twice changes nothing


@pytest.mark.backend_free
def test_config_json_round_trip_keeps_settings_and_environment_apart(tmp_path):
    config = RunConfig(data_dir=str(tmp_path), backbone="vgg16", weights=None, input_size=32, epochs=3).validate()
    stored = json.loads(json.dumps(config.to_json(class_weights=None)))
    assert set(stored) == {"run_format", "settings", "environment", "class_weights"}
    assert stored["environment"]["keras_backend"] == keras.backend.backend()
    assert stored["environment"]["keras_transfer_version"] == kt.__version__
    back, env = RunConfig.from_json(stored)
    assert back == config and env["run_format"] == 1 and env["keras_version"] == keras.__version__


@pytest.mark.backend_free
def test_a_flat_config_json_of_keras_transfer_0_1_0_reads_back(tmp_path):
    old = dict(data_dir=str(tmp_path), backbone="vgg16", weights=None, input_size=32, strategy="top_blocks", n=2,
               epochs=2, keras_backend="jax", keras_version="3.15.1", keras_transfer_version="0.1.0", run_format=1,
               class_weights=None)
    (tmp_path / "config.json").write_text(json.dumps(old))
    config, env = read_config(str(tmp_path))
    assert config == RunConfig(data_dir=str(tmp_path), backbone="vgg16", weights=None, input_size=32, epochs=2,
                               antialias=True,  # 0.1.0 resized with PIL, antialiased: so does its resume
                               recipe="two_phase", batch_size=32)  # and ran the two phases at batch 32
    assert env["keras_backend"] == "jax" and env["run_format"] == 1


@pytest.mark.backend_free
def test_adding_a_setting_is_one_field(tmp_path, monkeypatch):
    """A new field shows up in train_from_folder's signature, the CLI, validation and config.json by itself."""
    new = dataclasses.make_dataclass(
        "RunConfig", [("warmup_steps", int, dataclasses.field(default=0, metadata=dict(
            help="learning-rate warmup steps", check=None, choices=None, cli=None, type=None, cli_choices=None)))],
        bases=(RunConfig,), frozen=True)
    import keras_transfer.runs.config_args as config_args

    monkeypatch.setattr(config_args, "RunConfig", new)
    args = _train_parser().parse_args(["--warmup-steps", "7"])
    assert given_settings(args) == {"warmup_steps": 7}
    config = new.create(data_dir=str(tmp_path), weights=None, warmup_steps=7).validate()
    assert config.to_json()["settings"]["warmup_steps"] == 7


def test_a_keras_file_saved_by_keras_transfer_0_1_0_still_loads():
    """tests/fixtures/make_classifier_v0_1_0.py wrote this file before the package was reshaped."""
    model = keras.saving.load_model(os.path.join(FIXTURES, "classifier_v0_1_0.keras"))
    x = np.load(os.path.join(FIXTURES, "classifier_v0_1_0_inputs.npy"))
    expected = np.load(os.path.join(FIXTURES, "classifier_v0_1_0_outputs.npy"))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x, training=False)), expected, atol=1e-5)
    assert kt.get_class_names(model) == ["cat", "dog", "fox"]
    assert isinstance(model.get_layer("predictions"), kt.ClassifierHead)
    loaded, names = kt.load_model(os.path.join(FIXTURES, "classifier_v0_1_0.keras"))
    assert names == ["cat", "dog", "fox"] and loaded.optimizer is not None  # trained: optimizer state travels
