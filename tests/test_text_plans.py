"""What a text run plans and trains (issue 24): its plan counts texts, the encoder's unused pooler stays frozen
(no "Gradients do not exist" warning), and a model built without pretrained weights is never linear-probed by
default."""

import warnings

import keras
import numpy as np
import pytest

from conftest import tiny_bert_folder
from keras_transfer.data.texts import text_dataset
from keras_transfer.models.freezing import freeze
from keras_transfer.models.text_classifier import build_text_classifier
from keras_transfer.training.recipes import DataSize, RecipeOptions
from keras_transfer.training.recipes import plan_text_recipe, resolve_pretrained, run_recipe
from test_text import tiny_bert

TEXTS = ["good film", "bad plot", "very good", "not bad film", "bad", "good plot"]
LABELS = [1, 0, 1, 2, 0, 2]


@pytest.mark.backend_free
def test_a_text_plan_counts_texts():
    for texts, recipe in ((48, "lp_ft"), (600, "lp_ft")):
        name, _, why = plan_text_recipe("auto", DataSize(images=texts, classes=6, batch=None))
        assert name == recipe and f"{texts} training texts ({texts / 6:.1f} a class" in why[0], why[0]
        assert not any("images" in line for line in why), why
    # texts keep the head alone under 20 a class (images fine-tune from 3: measured on images only)
    _, phases, why = plan_text_recipe("auto", DataSize(images=114, classes=6, batch=None))
    assert [p for p, _ in phases] == ["head"] and "19.0 a class, under 20" in why[0], why[0]
    _, phases, _ = plan_text_recipe("auto", DataSize(images=120, classes=6, batch=None))
    assert [p for p, _ in phases] == ["head", "fine_tune"]


def test_the_encoders_unused_pooler_stays_frozen_and_fit_does_not_warn():
    encoder, preprocessor = tiny_bert()
    model, preprocessor = build_text_classifier(encoder, 3, preprocessor=preprocessor, seed=0)
    freeze(model, "full")
    assert not encoder.get_layer("pooled_dense").trainable
    assert not any(w.path.startswith("pooled_dense") for w in model.trainable_weights)
    assert any(w.path.startswith("transformer_layer_0") for w in model.trainable_weights)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(text_dataset(TEXTS, LABELS, preprocessor, batch_size=3), epochs=1, verbose=0)
    assert not [w for w in caught if "Gradients do not exist" in str(w.message)]


def test_a_model_built_without_pretrained_weights_trains_from_scratch_and_says_so(tmp_path):
    """A registry name or a preset folder loads through the same `load_text_encoder`: the tiny random BERT folder
    with `weights=None` (MiniLM's random initialisation is checked in test_text)."""
    folder = tiny_bert_folder(str(tmp_path / "tiny_bert"), TEXTS)
    model, preprocessor = build_text_classifier(folder, 3, weights=None, sequence_length=8, seed=0)
    data = text_dataset(TEXTS, LABELS, preprocessor, batch_size=3)
    options = RecipeOptions(fine_tune_epochs=1)
    result = run_recipe(model, data, data, options=options, verbose=0)  # default arguments
    assert result.recipe == "scratch" and result.phases == ["scratch"]
    assert any("built without pretrained weights (weights=None)" in line for line in result.plan), result.plan
    assert resolve_pretrained(model, True) == (True, None)  # said outright (a resumed run's rebuilt model): as said
