"""Text classification on KerasHub encoders: the real all-MiniLM-L6-v2 weights match an independent reference,
the classifier on a tiny random BERT (freezing by blocks, fit, `.keras` round trip; its raw-string SavedModel is
served in test_task_export's fresh TensorFlow process), and the one-line errors for bad folders and sequence
lengths."""

import json
import os
import shutil

import keras
import keras_hub
import numpy as np
import pytest
from conftest import as_numpy

from keras_transfer.errors import KerasTransferError
from keras_transfer.models.freezing import freeze
from keras_transfer.models.text_classifier import build_text_classifier, load_text_encoder
from keras_transfer.models.text_registry import get_text_backbone_spec
from keras_transfer.serving.evaluation import report_and_write
from keras_transfer.serving.predict_text import predict_texts
from keras_transfer.data.texts import text_dataset

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "minilm_reference.json")
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "film", "plot", "very", "not"]
MINILM = get_text_backbone_spec("all_minilm_l6_v2")


def tiny_bert(sequence_length=8, num_layers=2):
    """A randomly initialised 2-layer, 32-wide BERT and its preprocessor on an 11-word vocabulary."""
    encoder = keras_hub.models.BertBackbone(vocabulary_size=len(VOCAB), num_layers=num_layers, num_heads=2,
                                            hidden_dim=32, intermediate_dim=64, max_sequence_length=16)
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=VOCAB)
    return encoder, keras_hub.models.BertTextClassifierPreprocessor(tokenizer, sequence_length=sequence_length)


def test_minilm_sentence_embeddings_match_the_independent_reference():
    """The encoder loaded from the Hugging Face folder, mean-pooled and L2-normalised, gives the embeddings that a
    float64 numpy BERT reading model.safetensors gave (tests/fixtures/make_minilm_reference.py), within 1e-3."""
    with open(FIXTURE) as f:
        reference = json.load(f)
    model, preprocessor = build_text_classifier("all_minilm_l6_v2", 2, sequence_length=32, dropout=0)
    inputs = preprocessor(reference["sentences"])
    for ids, expected in zip(as_numpy(inputs["token_ids"]), reference["token_ids"]):
        assert ids[:len(expected)].tolist() == expected and not ids[len(expected):].any()
    pooled = keras.Model(model.inputs, model.get_layer("pooling").output)
    embeddings = as_numpy(pooled(inputs)).astype("float64")
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    cosines = embeddings @ embeddings.T
    for pair, value in reference["cosine"].items():
        i, j = map(int, pair.split("_"))
        assert abs(cosines[i, j] - value) < 1e-3, (pair, cosines[i, j], value)
    np.testing.assert_allclose(embeddings[:, :8], np.asarray(reference["first_coordinates"]), atol=1e-3)
    assert reference["cosine"]["0_1"] > 0.5 > reference["cosine"]["0_2"]  # the two guitar sentences are close


def test_random_initialisation_is_the_same_architecture_with_other_weights():
    pretrained, _, spec = load_text_encoder("all_minilm_l6_v2", sequence_length=16)
    scratch, _, _ = load_text_encoder("all_minilm_l6_v2", weights=None, sequence_length=16)
    assert spec.num_layers == 6 and pretrained.count_params() == scratch.count_params() == 22_713_216
    a, b = (as_numpy(m.get_layer("token_embedding").embeddings) for m in (pretrained, scratch))
    assert np.abs(a - b).mean() > 1e-2


@pytest.mark.parametrize("strategy, kwargs, blocks", [
    ("head_only", {}, ()),
    ("top_blocks", {"n": 1}, ("layer_2",)),
    ("from_layer", {"layer": "transformer_layer_0"}, ("layer_1", "layer_2")),
    ("full", {}, ("embeddings", "layer_1", "layer_2")),
])
def test_freeze_strategies_work_on_the_encoder_blocks(strategy, kwargs, blocks):
    encoder, preprocessor = tiny_bert()
    model, _ = build_text_classifier(encoder, 3, preprocessor=preprocessor)
    report = freeze(model, strategy, **kwargs)
    assert report.trainable_blocks == blocks
    expected = {id(w) for w in model.get_layer("predictions").weights}
    for name in blocks:
        layer = "embeddings_dropout" if name == "embeddings" else f"transformer_layer_{int(name[6:]) - 1}"
        assert encoder.get_layer(layer).trainable
    assert expected <= {id(w) for w in model.trainable_weights}


def test_fit_and_keras_round_trip_on_token_ids(tmp_path):
    encoder, preprocessor = tiny_bert()
    model, preprocessor = build_text_classifier(encoder, 3, preprocessor=preprocessor,
                                                pooling="mean", class_names=["neg", "pos", "mix"], seed=0)
    texts = ["good film", "bad plot", "very good", "not bad film", "bad", "good plot"]
    data = text_dataset(texts, [1, 0, 1, 2, 0, 2], preprocessor, batch_size=3, shuffle=True, seed=0)
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    before = as_numpy(model.get_layer("predictions").kernel).copy()
    history = model.fit(data, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert np.abs(as_numpy(model.get_layer("predictions").kernel) - before).max() > 0
    path = tmp_path / "text.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = preprocessor(texts)
    np.testing.assert_allclose(as_numpy(loaded(x)), as_numpy(model(x)), atol=1e-6)
    assert loaded.get_layer("predictions").class_names == ["neg", "pos", "mix"]
    outputs = predict_texts(loaded, preprocessor, texts, batch_size=4)
    np.testing.assert_allclose(outputs, as_numpy(model(x)), atol=1e-6)
    report, _ = report_and_write(loaded, outputs, [1, 0, 1, 2, 0, 2], ids=[f"t{i}" for i in range(6)],
                                 out=str(tmp_path / "report"))
    assert report.n == 6 and (tmp_path / "report" / "report.json").is_file()
    assert report.class_names == ["neg", "pos", "mix"] and all(w["path"].startswith("t") for w in report.worst)
    assert report.accuracy == np.mean(as_numpy(model(x)).argmax(-1) == np.array([1, 0, 1, 2, 0, 2]))
    with pytest.raises(KerasTransferError, match="non-empty list of strings"):
        predict_texts(loaded, preprocessor, "good film")


def test_a_keras_hub_preset_folder_loads_with_its_weights_and_freezes_by_blocks(tmp_path):
    encoder, preprocessor = tiny_bert()
    encoder.save_to_preset(str(tmp_path / "preset"))
    preprocessor.save_to_preset(str(tmp_path / "preset"))
    model, loaded_preprocessor = build_text_classifier(str(tmp_path / "preset"), 2, sequence_length=8)
    expected = as_numpy(encoder.get_layer("token_embedding").embeddings)
    got = as_numpy(model.get_layer("backbone").get_layer("token_embedding").embeddings)
    np.testing.assert_array_equal(got, expected)
    assert as_numpy(loaded_preprocessor(["good film"])["token_ids"]).tolist() == \
        as_numpy(preprocessor(["good film"])["token_ids"]).tolist()
    assert freeze(model, "top_blocks", n=1).trainable_blocks == ("layer_2",)


def _copy_minilm(tmp_path, drop=(), config=None):
    folder = tmp_path / "minilm"
    shutil.copytree(MINILM.local(), folder)
    for name in drop:
        os.remove(folder / name)
    if config:
        data = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**data, **config}))
    return str(folder)


@pytest.mark.backend_free
def test_a_folder_without_tokenizer_files_is_named_in_one_line(tmp_path):
    folder = _copy_minilm(tmp_path, drop=("vocab.txt",))
    with pytest.raises(KerasTransferError, match=r"missing its tokenizer files: vocab.txt \(needed: "
                                                 r"tokenizer_config.json, vocab.txt\)") as info:
        load_text_encoder(folder)
    assert "\n" not in str(info.value)


@pytest.mark.backend_free
def test_weights_of_another_architecture_are_refused_in_one_line(tmp_path):
    folder = _copy_minilm(tmp_path, config={"model_type": "gpt2"})
    with pytest.raises(KerasTransferError, match=r"weights of another architecture \('gpt2'\).*bert, distilbert, "
                                                 r"roberta") as info:
        load_text_encoder(folder)
    assert "\n" not in str(info.value)


@pytest.mark.backend_free
@pytest.mark.parametrize("length", [513, 1, 32.0])
def test_a_sequence_length_outside_the_encoder_is_refused_before_loading(length):
    with pytest.raises(KerasTransferError, match=r"from 2 to 512.*'all_minilm_l6_v2'.*Received: sequence_length="):
        load_text_encoder("all_minilm_l6_v2", sequence_length=length)


@pytest.mark.backend_free
def test_unknown_text_backbone_and_bad_weights_are_one_line_errors():
    with pytest.raises(KerasTransferError, match=r"Did you mean 'all_minilm_l6_v2'"):
        load_text_encoder("all_minilm_l6")
    with pytest.raises(KerasTransferError, match=r"'pretrained' or None.*Received: weights='imagenet'"):
        load_text_encoder("all_minilm_l6_v2", weights="imagenet")
