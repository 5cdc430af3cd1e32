"""Drives a text training run (`modality="text"`) and writes its run folder: the files of an image run
(`config.json`, `class_names.json`, `splits.json`, `data_summary.json`, `recipe.json`, `best.keras`, the test
report) plus `preprocessor/`, the KerasHub preprocessor (tokenizer and sequence length) that the model's token
ids come from. Resume is not supported for text yet."""

import logging
import os

import keras

from keras_transfer import io
from keras_transfer.data.texts import load_texts, read_texts
from keras_transfer.errors import KerasTransferError
from keras_transfer.layout import BEST_MODEL, CLASS_NAMES, CONFIG, DATA_SUMMARY, RECIPE, SPLITS_FILE
from keras_transfer.models.text_classifier import build_text_classifier
from keras_transfer.runs.folder import check_run_folder, prepare_run_folder
from keras_transfer.serving.predict_text import evaluate_texts
from keras_transfer.runs.config import recipe_options
from keras_transfer.training.recipes import data_size
from keras_transfer.training.text_recipes import plan_text_recipe, run_text_recipe

log = logging.getLogger(__name__)
PREPROCESSOR_FOLDER = "preprocessor"


def run_text_training(config, out, *, overwrite=False, verbose="auto", resume=False):
    """Trains a text classifier from a validated `RunConfig` (`modality="text"`) into the run folder `out`.

    Returns:
        `(model, FineTuneResult)`.
    """
    if resume:
        raise KerasTransferError("Resuming a text run is not supported yet: start it again with --overwrite. "
                                 "Received: resume=True")
    check_run_folder(out, overwrite)
    keras.utils.set_random_seed(config.seed)
    found = read_texts(config.data_dir)
    pretrained = config.weights is not None
    model, preprocessor = build_text_classifier(config.backbone, class_names=found.class_names,
                                                weights="pretrained" if pretrained else None,
                                                sequence_length=config.sequence_length, dropout=config.dropout,
                                                seed=config.seed)
    data = load_texts(config.data_dir, preprocessor, batch_size=config.batch_size,
                      validation_split=config.validation_split, test_split=config.test_split, seed=config.seed)
    log.info("%s", data.summary)
    prepare_run_folder(out, overwrite)
    weights_by_class = data.class_weight if config.class_weight else None
    io.write_json(os.path.join(out, CONFIG), config.to_json(
        class_weights=weights_by_class and {str(k): v for k, v in weights_by_class.items()}))
    io.write_json(os.path.join(out, CLASS_NAMES), data.class_names)
    io.write_json(os.path.join(out, SPLITS_FILE), data.splits.as_dict())
    io.write_json(os.path.join(out, DATA_SUMMARY), data.summary)
    preprocessor.save_to_preset(os.path.join(out, PREPROCESSOR_FOLDER))
    options = recipe_options(config, label_smoothing=config.label_smoothing)
    num_texts = len(data.splits.labels("train"))
    name, _, why = plan_text_recipe(config.recipe, data_size(model, data.train, num_texts), options,
                                    pretrained=pretrained)
    io.write_json(os.path.join(out, RECIPE), dict(recipe=name, requested=config.recipe, plan=why))
    result = run_text_recipe(model, data.train, data.val, recipe=config.recipe, pretrained=pretrained,
                             options=options, num_texts=num_texts, checkpoint_path=os.path.join(out, BEST_MODEL),
                             verbose=verbose, class_weight=weights_by_class,
                             cache_features=config.cache_features, cache_dir=config.cache_dir)
    test_ids = data.splits.paths("test")
    if test_ids:
        report = evaluate_texts(model, preprocessor, data.found.of(test_ids), data.splits.labels("test"),
                                ids=test_ids, class_names=data.class_names, out=out)
        log.info("Test split (%d texts): accuracy %.4f", report.n, report.accuracy)
    return model, result
