"""The DeBERTaV3, ALBERT, ELECTRA and XLM-RoBERTa registry entries, offline: each loads through its registry
entry from a tiny randomly initialised KerasHub backbone and tokenizer saved as a local KerasHub preset folder
(the SentencePiece vocabularies trained here on a few words), then builds a classifier whose blocks the freeze
strategies act on, runs a forward pass, one fit step and a `.keras` round trip."""

import dataclasses
import io
import json
import os

import keras
import keras_hub
import numpy as np
import pytest
import sentencepiece
from conftest import as_numpy

from keras_transfer.errors import KerasTransferError
from keras_transfer.models import text_registry
from keras_transfer.models.freezing import freeze
from keras_transfer.models.text_classifier import build_text_classifier
from keras_transfer.models.text_registry import FAMILIES, TEXT_BACKBONES, folder_spec

TEXTS = ["good film", "bad plot", "very good plot", "not a good film", "a bad film", "very bad", "not bad", "good"]
WORDS = ["good", "bad", "film", "plot", "very", "not", "a"]
SIZE = dict(num_heads=2, hidden_dim=16, intermediate_dim=32, max_sequence_length=16)


def spm_proto(**pieces):
    """A word-level SentencePiece model of the few words above, with the family's special pieces."""
    out = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(sentence_iterator=iter(TEXTS * 4), model_writer=out, vocab_size=16,
                                             hard_vocab_limit=False, model_type="WORD", minloglevel=3, **pieces)
    return out.getvalue()


def deberta_v3():
    tokenizer = keras_hub.models.DebertaV3Tokenizer(spm_proto(
        pad_id=0, bos_id=1, eos_id=2, unk_id=3, pad_piece="[PAD]", bos_piece="[CLS]", eos_piece="[SEP]",
        unk_piece="[UNK]", user_defined_symbols="[MASK]"))
    size = tokenizer.vocabulary_size()
    return keras_hub.models.DebertaV3Backbone(vocabulary_size=size, num_layers=2, bucket_size=4, **SIZE), tokenizer


def albert():
    """Four layers in two groups: two blocks, each group's weights shared by two consecutive layers."""
    tokenizer = keras_hub.models.AlbertTokenizer(spm_proto(
        pad_id=0, bos_id=1, eos_id=2, unk_id=3, pad_piece="<pad>", bos_piece="[CLS]", eos_piece="[SEP]",
        unk_piece="<unk>", user_defined_symbols="[MASK]"))
    encoder = keras_hub.models.AlbertBackbone(vocabulary_size=tokenizer.vocabulary_size(), embedding_dim=8,
                                              num_layers=4, num_groups=2, num_inner_repetitions=1, **SIZE)
    return encoder, tokenizer


def electra():
    tokenizer = keras_hub.models.ElectraTokenizer(vocabulary=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS)
    encoder = keras_hub.models.ElectraBackbone(vocab_size=tokenizer.vocabulary_size(), embedding_dim=8,
                                               num_layers=2, **SIZE)
    return encoder, tokenizer


def xlm_roberta():
    tokenizer = keras_hub.models.XLMRobertaTokenizer(spm_proto())
    return keras_hub.models.XLMRobertaBackbone(vocabulary_size=tokenizer.vocabulary_size(), num_layers=2,
                                               **SIZE), tokenizer


# registry entry, tiny encoder, the first layer of block layer_1 (for from_layer), the [CLS]/<s> token id
CASES = {
    "deberta_v3_extra_small_en": (deberta_v3, "disentangled_attention_encoder_layer_0", 1),
    "albert_base_en_uncased": (albert, "group_0_inner_layer_0", 1),
    "electra_small_discriminator_uncased_en": (electra, "transformer_layer_0", 2),
    "xlm_roberta_base_multi": (xlm_roberta, "transformer_layer_0", 0),
}


@pytest.fixture
def tiny_entry(request, tmp_path, monkeypatch):
    """The registry entry `request.param`, its weights read from a tiny random preset folder (offline)."""
    make, first_layer, start_id = CASES[request.param]
    encoder, tokenizer = make()
    folder = str(tmp_path / "preset")
    encoder.save_to_preset(folder)
    tokenizer.save_to_preset(folder)
    spec = dataclasses.replace(TEXT_BACKBONES[request.param], local=lambda: folder)
    monkeypatch.setitem(text_registry.TEXT_BACKBONES, request.param, spec)
    return request.param, folder, first_layer, start_id


@pytest.mark.parametrize("tiny_entry", list(CASES), indirect=True)
def test_new_encoder_entries_build_freeze_fit_and_round_trip(tiny_entry, tmp_path):
    name, folder, first_layer, start_id = tiny_entry
    spec = folder_spec(folder)
    assert spec.family == TEXT_BACKBONES[name].family and spec.num_layers == 2
    model, preprocessor = build_text_classifier(name, 3, sequence_length=8, seed=0)
    x = {key: as_numpy(value) for key, value in preprocessor(TEXTS).items()}
    assert x["token_ids"][:, 0].tolist() == [start_id] * len(TEXTS)  # the family's own start token
    assert x["padding_mask"].sum(axis=1).tolist() == [len(t.split()) + 2 for t in TEXTS]
    encoder = model.get_layer("backbone")
    for strategy, kwargs, blocks in [("head_only", {}, ()), ("top_blocks", {"n": 1}, ("layer_2",)),
                                     ("from_layer", {"layer": first_layer}, ("layer_1", "layer_2")),
                                     ("full", {}, ("embeddings", "layer_1", "layer_2"))]:
        report = freeze(model, strategy, **kwargs, recompile=False)
        assert report.trainable_blocks == blocks, (strategy, report)
        assert encoder.get_layer("embeddings_layer_norm").trainable == ("embeddings" in blocks)
        assert encoder.get_layer(first_layer).trainable == ("layer_1" in blocks)
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    before = as_numpy(encoder.get_layer(first_layer).trainable_weights[0]).copy()
    history = model.fit(x, np.arange(len(TEXTS)) % 3, batch_size=len(TEXTS), epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert not np.allclose(before, as_numpy(encoder.get_layer(first_layer).trainable_weights[0]))
    path = str(tmp_path / "model.keras")
    model.save(path)
    np.testing.assert_allclose(as_numpy(keras.saving.load_model(path)(x)), as_numpy(model(x)), atol=1e-5)


@pytest.mark.backend_free
@pytest.mark.parametrize("name", list(CASES))
def test_new_entries_name_kerashub_presets_of_their_family(name):
    spec = TEXT_BACKBONES[name]
    family = FAMILIES[spec.family]
    assert spec.preset in getattr(keras_hub.models, family.backbone).presets
    assert spec.source() == spec.preset  # no local folder: downloaded by KerasHub on first use
    assert [block for block, _ in spec.blocks] == ["embeddings"] + [f"layer_{i + 1}" for i in range(spec.num_layers)]


@pytest.mark.backend_free
def test_a_hugging_face_deberta_folder_is_refused_in_one_line(tmp_path):
    """KerasHub 0.32 converts no Hugging Face DeBERTa folder: the error names the architectures it converts."""
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "deberta-v2", "num_hidden_layers": 2}))
    with pytest.raises(KerasTransferError, match=r"another architecture \('deberta-v2'\).*albert.*xlm-roberta") as info:
        folder_spec(str(tmp_path))
    assert "\n" not in str(info.value) and os.fspath(tmp_path) in str(info.value)
