"""Builds the text classifier: token ids in, a KerasHub encoder, pooling, dropout, head.

The model is a plain functional `keras.Model` on the preprocessor's integer outputs (`token_ids`,
`padding_mask`, and `segment_ids` for BERT); the KerasHub preprocessor (tokenizer, truncation, packing) runs in
the `tf.data` pipeline (`data.texts.text_dataset`) and inside the SavedModel's raw-string endpoint
(`serving.export_text`). Why not raw strings into the Keras model: the tokenizer is TensorFlow-Text ops on
string tensors, which JAX cannot trace, so a string-input model trains under TensorFlow only; token ids in
train with `model.fit` on both backends (KerasHub's own `TextClassifier.fit` maps its preprocessor over the
data set the same way).
"""

import keras
import keras_hub

from keras_transfer.errors import KerasTransferError
from keras_transfer.models.classifier import BACKBONE_LAYER, HEAD_LAYER, ClassifierHead, resolve_num_classes
from keras_transfer.models.heads import TaskHead
from keras_transfer.models.pooling import SequencePooling
from keras_transfer.vocabulary import TEXT_WEIGHTS
from keras_transfer.models.text_registry import (FAMILIES, PRETRAINED_ATTRIBUTE, TEXT_PREFIX, TextBackboneSpec,
                                                 block_count, check_pooling, check_sequence_length, family_of,
                                                 resolve_text_spec)


def load_text_encoder(backbone, *, weights="pretrained", sequence_length=None, pooling=None):
    """Loads a KerasHub encoder and its preprocessor from the registry or a folder (offline when local).

    Args:
        backbone: a text registry name (`"all_minilm_l6_v2"`, see `list_text_backbones()`), a Hugging Face
            folder (config.json, model.safetensors, tokenizer files; KerasHub converts it) or a KerasHub
            preset folder.
        weights: `"pretrained"` (the encoder's weights) or `None` (the same architecture, randomly initialised).
        sequence_length: tokens per text (default: the registry's, 128); at most the encoder's maximum.
        pooling: `"cls"` or `"mean"` (default: what the weights were trained for).

    Returns:
        `(encoder, preprocessor, spec)`: a KerasHub `Backbone`, its text classifier preprocessor and the
        `TextBackboneSpec`.
    """
    if weights not in TEXT_WEIGHTS:
        raise KerasTransferError(f"Text encoder weights must be 'pretrained' or None (random initialisation, "
                                 f"same architecture). Received: weights={weights!r}")
    preprocessor = load_text_preprocessor(backbone, sequence_length)  # the length checked before the weights load
    spec, source = resolve_text_spec(backbone, pooling=pooling)
    encoder = getattr(keras_hub.models, FAMILIES[spec.family].backbone).from_preset(
        source, load_weights=weights == "pretrained")
    if not spec.num_layers:
        spec = TextBackboneSpec(spec.name, spec.family, spec.preset, spec.pooling,
                                block_count(encoder, spec.family), int(preprocessor.sequence_length))
    return encoder, preprocessor, spec


def load_text_preprocessor(backbone, sequence_length=None):
    """`load_text_encoder`'s preprocessor without the encoder (a run tokenises before it builds the model)."""
    spec, source = resolve_text_spec(backbone)
    sequence_length = spec.sequence_length if sequence_length is None else sequence_length
    check_sequence_length(sequence_length, spec.max_sequence_length, spec.name)
    return _load_preprocessor(FAMILIES[spec.family], source, sequence_length)


def _load_preprocessor(family, source, sequence_length):
    """The family's text classifier preprocessor, or KerasHub's generic one on its tokenizer (ELECTRA has no
    preprocessor class of its own: `[CLS] text [SEP]`, padded, as its tokenizer's special tokens say)."""
    if family.preprocessor:
        return getattr(keras_hub.models, family.preprocessor).from_preset(source, sequence_length=sequence_length)
    tokenizer = getattr(keras_hub.models, family.tokenizer).from_preset(source)
    return keras_hub.models.TextClassifierPreprocessor(tokenizer, sequence_length=sequence_length)


def build_text_classifier(backbone, num_classes=None, *, weights="pretrained", sequence_length=None, pooling=None,
                          dropout=0.1, class_names=None, preprocessor=None, seed=None, name=None,
                          task="classification", **head):
    """Builds a text classifier on a KerasHub encoder as a plain functional `keras.Model`.

    Args:
        backbone: a text registry name, a Hugging Face or KerasHub preset folder, or a KerasHub `Backbone`
            instance (then pass its `preprocessor`).
        num_classes: number of classes (>= 2); two classes get one sigmoid unit. Defaults to `len(class_names)`.
        weights: `"pretrained"` or `None` (the same architecture, randomly initialised).
        sequence_length: tokens per text (the model's input length).
        pooling: `"cls"` or `"mean"` over the padding mask (default: the encoder's own).
        dropout: dropout rate before the head.
        class_names: optional class names, stored in the head (and so in saved models).
        preprocessor: the KerasHub preprocessor, required with a `Backbone` instance.
        seed: dropout seed. The head starts at zero, as in `build_classifier`.
        name: the model name.
        task: `"classification"`, or `"regression"` / `"multilabel"`: a `heads.TaskHead` of `num_classes`
            outputs (targets or labels) instead of the classifier's head.
        **head: the `TaskHead`'s keywords (`loss`, `target_mean`, `target_scale`, `thresholds`, `label_weights`).

    Returns:
        `(model, preprocessor)`: the model takes the preprocessor's outputs (a dict of int32 `(batch,
        sequence_length)` tensors) and returns probabilities; the preprocessor maps strings to that dict.

    Example:
    >>> encoder = keras_hub.models.BertBackbone(vocabulary_size=30, num_layers=2, num_heads=2, hidden_dim=32,
    ...                                         intermediate_dim=64, max_sequence_length=16)
    >>> tokenizer = keras_hub.models.BertTokenizer(vocabulary=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a"])
    >>> pre = keras_hub.models.BertTextClassifierPreprocessor(tokenizer, sequence_length=8)
    >>> model, pre = build_text_classifier(encoder, 3, preprocessor=pre, sequence_length=8)
    >>> model(pre(["a a"])).shape
    (1, 3)
    """
    if task == "classification":
        num_classes = resolve_num_classes(num_classes, class_names)
    elif num_classes is None:
        num_classes = len(class_names or ())
    if not 0 <= float(dropout) < 1:
        raise KerasTransferError(f"dropout must be in [0, 1). Received: dropout={dropout!r}")
    encoder, preprocessor, spec = _resolve_encoder(backbone, weights, sequence_length, pooling, preprocessor)
    sequence_length = int(preprocessor.sequence_length)
    encoder.name = BACKBONE_LAYER
    inputs = {key: keras.Input((sequence_length,), dtype="int32", name=key) for key in encoder.input}
    outputs = encoder(inputs)  # BERT-like encoders return a dict; RoBERTa, XLM-R, DeBERTaV3 the sequence itself
    sequence = outputs["sequence_output"] if isinstance(outputs, dict) else outputs
    x = SequencePooling(spec.pooling, name="pooling")(sequence, inputs["padding_mask"])
    if dropout:
        x = keras.layers.Dropout(dropout, seed=seed, name="dropout")(x)
    common = dict(class_names=class_names, backbone_name=TEXT_PREFIX + spec.name, name=HEAD_LAYER,
                  kernel_initializer="zeros")
    if task == "classification":
        units, activation = (1, "sigmoid") if num_classes == 2 else (num_classes, "softmax")
        outputs = ClassifierHead(units, activation=activation, **common)(x)
    else:
        outputs = TaskHead(num_classes, task=task, **head, **common)(x)
    kind = "classifier" if task == "classification" else task
    model = keras.Model(inputs, outputs, name=name or f"{spec.name}_text_{kind}")
    if not isinstance(backbone, keras_hub.models.Backbone):  # an instance's weights are the caller's to know
        setattr(model, PRETRAINED_ATTRIBUTE, weights == "pretrained")
    return model, preprocessor


def _resolve_encoder(backbone, weights, sequence_length, pooling, preprocessor):
    """`(encoder, preprocessor, spec)` from a name, a folder, or a `Backbone` instance with its preprocessor."""
    if isinstance(backbone, keras_hub.models.Backbone):
        if preprocessor is None:
            raise KerasTransferError("A KerasHub Backbone instance needs its preprocessor: pass preprocessor=... "
                                     "(e.g. keras_hub.models.BertTextClassifierPreprocessor). Received: preprocessor=None")
        family = family_of(backbone)
        if family is None:
            raise KerasTransferError(f"Text encoders are {', '.join(f.backbone for f in FAMILIES.values())}. "
                                     f"Received: backbone={type(backbone).__name__}")
        length = int(preprocessor.sequence_length)
        check_sequence_length(length, int(backbone.max_sequence_length), backbone.name)
        pooling = pooling or "cls"
        check_pooling(pooling)
        spec = TextBackboneSpec(f"custom_{family}", family, "", pooling, block_count(backbone, family), length)
        return backbone, preprocessor, spec
    encoder, preprocessor, spec = load_text_encoder(backbone, weights=weights, sequence_length=sequence_length,
                                                    pooling=pooling)
    return encoder, preprocessor, spec
