"""A text run folder after training: its model with its preprocessor, evaluated on a split or a labelled table,
predicting strings, `.txt` files and tables, and exported with the tokenizer inside. What `keras-transfer
evaluate`, `predict` and `export` run for a run folder whose `config.json` says `modality: "text"`
(`runs.folder.run_modality`); the work itself is `predict_text` and `export_text`'s.
"""

import dataclasses
import os

import keras
import keras_hub
import numpy as np
import tensorflow as tf

from keras_transfer import io
from keras_transfer.data.fingerprint import text_fingerprint
from keras_transfer.data.texts import read_task_texts, read_texts, read_unlabelled_texts
from keras_transfer.errors import KerasTransferError, unknown_name
from keras_transfer.layout import CONFIG, DATA_FINGERPRINT, PREPROCESSOR
from keras_transfer.serving.evaluation import relabel, split_examples
from keras_transfer.serving.export import (TOLERANCES, check_atol, check_serialisable, check_target, check_target_folder,
                                           write_keras_export)
from keras_transfer.serving.export_text import CHECK_TEXTS, export_text_saved_model
from keras_transfer.serving.loading import default_class_names, load_model
from keras_transfer.models.heads import task_of
from keras_transfer.serving.predict import check_counts, describer
from keras_transfer.serving.predict_text import predict_texts
from keras_transfer.serving.task_report import align_labels

TEXT_FORMATS = ("saved_model", "keras")
PREPROCESSOR_CONFIG = "preprocessor.json"  # what KerasHub's `save_to_preset` names it


def load_text_run(run_dir):
    """`(model, preprocessor, class_names)` of a text run folder: its `best.keras` and `preprocessor/`.

    Example:
    >>> model, preprocessor, names = load_text_run("runs/text")  # doctest: +SKIP
    """
    model, names = load_model(run_dir)
    folder = os.path.join(os.fspath(run_dir), PREPROCESSOR)
    if not os.path.isdir(folder):
        raise KerasTransferError(f"The text run {run_dir} has no {PREPROCESSOR}/ folder (its tokenizer, written by "
                                 f"`keras-transfer train --modality text`). Received: run_dir={os.fspath(run_dir)!r}")
    names = default_class_names(model, names)
    return model, load_preprocessor(folder), names


def load_preprocessor(folder):
    """The KerasHub preprocessor a run saved with `save_to_preset` (its `preprocessor.json` and tokenizer assets).

    `Preprocessor.from_preset` wants the encoder's `config.json` beside them, which a run does not save (the
    encoder is inside `best.keras`); this is the loading step it runs once it has found the class.
    """
    config = io.read_json(os.path.join(folder, PREPROCESSOR_CONFIG))
    preprocessor = keras.saving.deserialize_keras_object(config)
    if not isinstance(preprocessor, keras_hub.models.TextClassifierPreprocessor):
        raise KerasTransferError(f"{folder} holds a {type(preprocessor).__name__}, not a text classifier "
                                 f"preprocessor. Received: folder={folder!r}")
    preprocessor.load_preset_assets(folder)
    return preprocessor


def evaluation_texts(model, run_dir, class_names, *, data_dir=None, split=None):
    """`(ids, texts, targets, description)` to evaluate a text run's `model` on: the labelled texts of `data_dir` (a
    table, or class folders for a classifier), else the split `split` of the run's `splits.json` (default: test if
    it holds texts, else val), read again from the run's own data (`api.evaluate_run` refuses both). Class labels
    follow `class_names`; a multi-label model's columns, its own labels."""
    task, settings = task_of(model), io.read_json(os.path.join(run_dir, CONFIG))["settings"]
    source = data_dir if data_dir is not None else settings["data_dir"]
    if task == "classification":
        found = read_texts(source)
        texts = found.texts
        if data_dir is not None:
            return found.paths, found.of(found.paths), relabel(found.labels, found.class_names, class_names,
                                                              data_dir), data_dir
    else:
        found, texts = read_task_texts(source, task, separator=settings.get("label_separator", "|"))
        if data_dir is not None:
            found = align_labels(model, found, data_dir)
            return found.paths, [texts[i] for i in found.paths], found.targets, data_dir
    ids, targets, description = split_examples(run_dir, split, class_names if task == "classification" else None)
    return ids, unchanged_texts(run_dir, ids, texts, source, description), targets, description


def unchanged_texts(run_dir, ids, texts, source, description):
    """The texts of `ids` read again from the run's data `source` (`{id: text}`), checked against its
    `data_fingerprint.json`: one missing or changed is an error."""
    wanted = set(ids)
    current = text_fingerprint({i: text for i, text in texts.items() if i in wanted})
    prints_file = os.path.join(run_dir, DATA_FINGERPRINT)
    stored = io.read_json(prints_file) if os.path.isfile(prints_file) else current  # an older run: ids only
    changed = [i for i in ids if i not in current or stored.get(i) != current[i]]
    if changed:
        raise KerasTransferError(f"{len(changed)} text(s) of {description} are missing from {source} or changed since "
                                 f"the run (first: {changed[0]}): pass the texts to evaluate on (DATA_DIR). "
                                 f"Received: run_dir={run_dir!r}")
    return [texts[i] for i in ids]


def predict_text_run(run_dir, inputs, *, top_k=5, batch_size=32, strict=False, text_column="text"):
    """Predicts the top classes of texts with a text run's `best.keras`.

    Args:
        run_dir: the text run folder.
        inputs: strings (each the text itself), `.txt` files, folders of them, `.csv`/`.tsv`/`.jsonl` tables
            (their `text_column`); see `data.texts.read_unlabelled_texts`.
        top_k: classes listed per text (at most the number of classes).
        batch_size: texts per batch.
        strict: stop at an empty or undecodable text instead of skipping it.

    Returns:
        A list: first `{"path": id, "top": [], "skipped": reason}` for each text left out, then, in input
        order, `{"path": id, "top": [(class, probability), ...]}` (the id: the file, `file:row` or the string);
        a regression or multi-label run: `{"path": id, "values": ...}` or `{"path": id, "labels": ...,
        "probabilities": ...}` (`predict.describer`).
    """
    check_counts(top_k=top_k, batch_size=batch_size)  # as image predict does, before any text is read
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    ids, texts, skipped = read_unlabelled_texts(inputs, text_column=text_column)
    if strict and skipped:
        raise KerasTransferError(f"{skipped[0][0]}: {skipped[0][1]} (strict: no text is skipped). "
                                 f"Received: strict=True")
    results = [{"path": text_id, "top": [], "skipped": reason} for text_id, reason in skipped]
    if not texts:
        return results
    model, preprocessor, names = load_text_run(run_dir)
    describe = describer(model, names, top_k)
    outputs = predict_texts(model, preprocessor, texts, batch_size=batch_size)
    return results + [{"path": text_id, **describe(row)} for text_id, row in zip(ids, outputs)]


@dataclasses.dataclass(frozen=True)
class TextExportResult:
    """What `export_text_run` wrote and how closely it matches the in-memory model on the check texts."""

    path: str
    format: str
    max_abs_difference: float
    tolerance: float
    texts: int = len(CHECK_TEXTS)

    def summary(self):
        inputs = "raw strings" if self.format == "saved_model" else "token ids"
        return (f"exported text {self.format} to {self.path}; largest difference to the Keras model on {self.texts} "
                f"texts ({inputs}): {self.max_abs_difference:.1e} (tolerance {self.tolerance:.0e})")


def export_text_run(run_dir, path, *, format="saved_model", quantize=None, atol=None):
    """Writes a text run's `best.keras` as a raw-string SavedModel (the tokenizer inside, `export_text`) or a
    `.keras` file (token ids in), each checked against the in-memory model before it is renamed into place.

    Example:
    >>> export_text_run("runs/text", "exported/text").max_abs_difference < 1e-4  # doctest: +SKIP
    True
    """
    check_atol(atol)  # before loading the run: a bad tolerance costs nothing
    if format == "tflite":
        raise KerasTransferError("A text run exports format 'saved_model' (raw strings in) or 'keras': its tokenizer "
                                 "is TensorFlow-Text ops, which TFLite does not run. Received: format='tflite'")
    if format not in TEXT_FORMATS:
        raise unknown_name("format", format, TEXT_FORMATS)
    if quantize is not None:
        raise KerasTransferError(f"quantize applies to format='tflite' only. Received: quantize={quantize!r}")
    path = check_target(path, format)
    model, preprocessor, _ = load_text_run(run_dir)
    check_target_folder(path)
    tolerance = atol if atol is not None else TOLERANCES[format]
    if format == "saved_model":
        return TextExportResult(path, format, export_text_saved_model(model, preprocessor, path, atol=tolerance),
                                tolerance)
    check_serialisable(model)
    inputs = keras.tree.map_structure(np.asarray, preprocessor(tf.constant(list(CHECK_TEXTS))))
    expected = np.asarray(keras.ops.convert_to_numpy(model(inputs, training=False)))
    difference, _, _ = write_keras_export(model, path, inputs, expected, tolerance)
    return TextExportResult(path, format, difference, tolerance)
