"""Drives a text training run (`modality="text"`) and writes its run folder: the files of an image run
(`config.json`, `class_names.json`, `splits.json`, `data_summary.json`, `data_fingerprint.json`, `recipe.json`,
`best.keras`, `last.keras` + `state.json` and `history.csv` / `.json` after every epoch, `history.png`, the test
report with its confusion matrix) plus `preprocessor/`, the KerasHub preprocessor (tokenizer and sequence length)
that the model's token ids come from.

An interrupted text run resumes (`resume=True`, `keras-transfer train --resume`) through the image runs'
machinery: the settings must equal the run's (`check_resume`), the texts must split as they did and hold the same
content (`check_same_data` on each text's hash), and `TrainingState` puts the weights, optimizer and counters of
the last finished epoch back."""

import logging
import os

import keras

from keras_transfer import io
from keras_transfer.data.fingerprint import text_fingerprint
from keras_transfer.data.texts import load_texts, read_texts
from keras_transfer.errors import KerasTransferError
from keras_transfer.history import history_columns
from keras_transfer.layout import (BEST_MODEL, CLASS_NAMES, CONFIG, DATA_FINGERPRINT, DATA_SUMMARY, HISTORY_JSON,
                                   PREPROCESSOR, RECIPE, SPLITS_FILE)
from keras_transfer.models.text_classifier import build_text_classifier
from keras_transfer.runs.folder import (check_resume, check_run_folder, check_same_data, prepare_run_folder,
                                        write_history_plot)
from keras_transfer.serving.loading import load_model
from keras_transfer.serving.predict_text import evaluate_texts
from keras_transfer.runs.config import recipe_options
from keras_transfer.training.recipes import data_size
from keras_transfer.training.state import TrainingState
from keras_transfer.training.text_recipes import plan_text_recipe, run_text_recipe

log = logging.getLogger(__name__)


def run_text_training(config, out, *, overwrite=False, verbose="auto", resume=False):
    """Trains a text classifier from a validated `RunConfig` (`modality="text"`) into the run folder `out`;
    `resume=True` continues the interrupted run there (see the module docstring).

    Returns:
        `(model, FineTuneResult)`.
    """
    if resume:
        check_resume(out, config)
    else:
        check_run_folder(out, overwrite)
    keras.utils.set_random_seed(config.seed)
    found = read_texts(config.data_dir)
    pretrained = config.weights is not None
    # Resumed, the weights come from last.keras: the encoder is built without loading its pretrained ones.
    model, preprocessor = build_text_classifier(config.backbone, class_names=found.class_names,
                                                weights="pretrained" if pretrained and not resume else None,
                                                sequence_length=config.sequence_length, dropout=config.dropout,
                                                seed=config.seed)
    data = load_texts(config.data_dir, preprocessor, batch_size=config.batch_size,
                      validation_split=config.validation_split, test_split=config.test_split, seed=config.seed)
    log.info("%s", data.summary)
    prints = text_fingerprint(data.found.texts)
    if resume:
        check_same_data(out, data.splits.as_dict(), data.class_names, prints)
    state = TrainingState(out, resume=resume)  # resumed: reads last.keras
    if state.finished:
        raise KerasTransferError(f"The run in {out} already finished all its epochs; nothing to resume. "
                                 f"Received: resume=True")
    weights_by_class = data.class_weight if config.class_weight else None
    if not resume:
        prepare_run_folder(out, overwrite)  # only once every input checked out: a rejected run leaves nothing
        _write_run_files(out, config, data, preprocessor, prints, weights_by_class)
    result = _run_recipe(config, model, data, out, state, weights_by_class, verbose)
    io.write_json(os.path.join(out, HISTORY_JSON), history_columns(state.rows))  # resumed epochs included
    write_history_plot(out)
    if data.splits.paths("test"):
        _evaluate_test_split(out, data, preprocessor, fallback=model)
    return model, result


def _write_run_files(out, config, data, preprocessor, prints, weights_by_class):
    io.write_json(os.path.join(out, CONFIG), config.to_json(
        class_weights=weights_by_class and {str(k): v for k, v in weights_by_class.items()}))
    io.write_json(os.path.join(out, CLASS_NAMES), data.class_names)
    io.write_json(os.path.join(out, SPLITS_FILE), data.splits.as_dict())
    io.write_json(os.path.join(out, DATA_SUMMARY), data.summary)
    io.write_json(os.path.join(out, DATA_FINGERPRINT), prints)
    preprocessor.save_to_preset(os.path.join(out, PREPROCESSOR))


def _run_recipe(config, model, data, out, state, weights_by_class, verbose):
    """The config's text recipe, planned from the training split's size; what it chose and why goes to
    `recipe.json`; `state` writes `last.keras`, `state.json` and the history after every epoch."""
    options = recipe_options(config, label_smoothing=config.label_smoothing)
    num_texts = len(data.splits.labels("train"))
    pretrained = config.weights is not None
    name, _, why = plan_text_recipe(config.recipe, data_size(model, data.train, num_texts), options,
                                    pretrained=pretrained)
    io.write_json(os.path.join(out, RECIPE), dict(recipe=name, requested=config.recipe, plan=why))
    return run_text_recipe(model, data.train, data.val, recipe=config.recipe, pretrained=pretrained,
                           options=options, num_texts=num_texts, checkpoint_path=os.path.join(out, BEST_MODEL),
                           verbose=verbose, class_weight=weights_by_class, state=state,
                           cache_features=config.cache_features, cache_dir=config.cache_dir)


def _evaluate_test_split(out, data, preprocessor, *, fallback):
    """`best.keras` (else `fallback`) on the held-out texts: `report.json`, `report.txt`, `confusion_matrix.png`."""
    best = load_model(out)[0] if os.path.isfile(os.path.join(out, BEST_MODEL)) else fallback
    test_ids = data.splits.paths("test")
    report = evaluate_texts(best, preprocessor, data.found.of(test_ids), data.splits.labels("test"), ids=test_ids,
                            class_names=data.class_names, out=out)
    log.info("Test split (%d texts): accuracy %.4f", report.n, report.accuracy)
    return report
