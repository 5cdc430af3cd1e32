"""Feature caching of a frozen text encoder: the head phase trains on the pooled encoder outputs computed once,
trains the same head as the uncached phase, and leaves the full text model (token ids in) predicting like the
head on the cached features; a text run with `cache_features` trains its head on the cached features."""

import json
import os

import keras
import keras_hub
import numpy as np
from conftest import as_numpy

from keras_transfer.data.texts import text_dataset
from keras_transfer.models.classifier import feature_extractor, get_backbone, head_model
from keras_transfer.models.text_classifier import build_text_classifier
from keras_transfer.runs.config import RunConfig
from keras_transfer.runs.train import train_from_folder
from keras_transfer.training.caching import extract_features
from keras_transfer.training.recipes import DataSize, RecipeOptions
from keras_transfer.training.recipes import plan_text_recipe, run_recipe

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "film", "plot", "very", "not"]
TEXTS = ["good film", "bad plot", "very good plot", "not good", "bad film", "very bad", "not bad film", "good"]
LABELS = np.array([0, 1, 0, 1, 1, 1, 0, 0])
OPTIONS = RecipeOptions(strategy="head_only", head_epochs=3, head_learning_rate=1e-2)


def tiny_text_model():
    """A 2-layer, 16-wide random BERT without dropout (the uncached phase then sees the cached features)."""
    keras.utils.set_random_seed(0)
    encoder = keras_hub.models.BertBackbone(vocabulary_size=len(VOCAB), num_layers=2, num_heads=2, hidden_dim=16,
                                            intermediate_dim=32, max_sequence_length=16, dropout=0.0)
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(keras_hub.models.BertTokenizer(vocabulary=VOCAB),
                                                                   sequence_length=8)
    return build_text_classifier(encoder, 2, preprocessor=preprocessor, dropout=0.0, seed=0)


def train(cache_features):
    """The two-phase recipe's gradient head phase (`strategy="head_only"`), one batch of all texts a step."""
    model, preprocessor = tiny_text_model()
    data = text_dataset(TEXTS, LABELS, preprocessor, batch_size=len(TEXTS))
    encoder_before = [as_numpy(w).copy() for w in get_backbone(model).weights]
    result = run_recipe(model, data, data, recipe="two_phase", options=OPTIONS, num_examples=len(TEXTS),
                        cache_features=cache_features, verbose=0)
    assert all(np.array_equal(a, as_numpy(b)) for a, b in zip(encoder_before, get_backbone(model).weights))
    return model, preprocessor, data, result


def test_the_cached_head_phase_trains_the_uncached_head_and_the_full_model_predicts_like_it():
    name, phases, _ = plan_text_recipe("two_phase", DataSize(images=len(TEXTS), classes=2, batch=len(TEXTS)), OPTIONS)
    assert [(p, preset.strategy, preset.solver) for p, preset in phases] == [("head", "head_only", "gradient")]
    cached, preprocessor, data, result = train(cache_features=True)
    uncached, *_ = train(cache_features=False)
    assert len(result.histories[0].epoch) == 3 and "val_loss" in result.histories[0].history
    kernel = as_numpy(cached.get_layer("predictions").kernel)
    assert np.abs(kernel).max() > 1e-3  # the head moved from its zero start
    np.testing.assert_allclose(kernel, as_numpy(uncached.get_layer("predictions").kernel), atol=1e-5)
    x = preprocessor(TEXTS)
    features = extract_features(cached, data)  # the features path: pooled encoder outputs, then the head alone
    np.testing.assert_allclose(features.features, as_numpy(feature_extractor(cached)(x)), atol=1e-5)
    np.testing.assert_allclose(as_numpy(cached(x)), as_numpy(head_model(cached)(features.features)), atol=1e-5)
    assert features.labels.tolist() == LABELS.tolist()


def test_a_text_run_with_cache_features_trains_its_head_on_features_streamed_to_cache_dir(tmp_path):
    """`train_from_folder(..., modality="text", cache_features=True)` on a tiny BERT preset folder: the run's
    head phase reads its features from `cache_dir` and the run writes the full model."""
    model, preprocessor = tiny_text_model()
    folder = str(tmp_path / "tiny_bert")
    get_backbone(model).save_to_preset(folder)
    preprocessor.tokenizer.save_to_preset(folder)
    table = tmp_path / "texts.csv"
    rows = [(t, y) for t, y in zip(TEXTS, LABELS)] + [(t + " again", y) for t, y in zip(TEXTS, LABELS)]
    table.write_text("text,label\n" + "".join(f"{t},{'pos' if y == 0 else 'neg'}\n" for t, y in rows))
    config = RunConfig.create(data_dir=str(table), modality="text", cache_features=True, cache_dir="cache",
                              strategy="head_only", recipe="two_phase", epochs=2, backbone=folder).validate()
    assert config.cache_dir == os.path.abspath("cache")  # resolved like an image run's
    out, cache = str(tmp_path / "run"), str(tmp_path / "cache")
    train_from_folder(str(table), out, modality="text", backbone=folder, sequence_length=8, recipe="two_phase",
                      strategy="head_only", epochs=2, cache_features=True, cache_dir=cache, validation_split=0.25,
                      seed=0, verbose=0)
    assert json.load(open(os.path.join(cache, "train.json")))["rows"] == 12  # 16 texts, 4 for validation
    assert json.load(open(os.path.join(out, "config.json")))["settings"]["cache_features"] is True
    assert os.path.isfile(os.path.join(out, "best.keras"))
