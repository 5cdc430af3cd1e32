"""The text modality part of a run (see `runs.modalities`): a text table or folder of `.txt` files, a KerasHub
encoder with its preprocessor (tokenizer and sequence length), saved in the run folder as `preprocessor/`, and
the text recipes (`training.recipes.plan_text_recipe`, chosen by the model). Needs KerasHub, the `text` extra."""

import os

import keras
import numpy as np

from keras_transfer.data.fingerprint import text_fingerprint
from keras_transfer.data.texts import load_task_texts, load_texts
from keras_transfer.layout import PREPROCESSOR
from keras_transfer.models.text_classifier import build_text_classifier, load_text_preprocessor
from keras_transfer.runs.modalities import RunData
from keras_transfer.serving.predict import model_outputs
from keras_transfer.serving.predict_text import predict_texts


class TextModality:
    """Texts: see the module docstring. `preprocessor` is set by `load`."""

    preprocessor = None

    def load(self, config, devices):
        """`(RunData, 1)`: the texts, tokenised by the encoder's preprocessor (an unset batch size: 16, at most a
        quarter of the training texts)."""
        keras.utils.set_random_seed(config.seed)
        self.preprocessor = load_text_preprocessor(config.backbone, config.sequence_length)
        if config.task != "classification":  # a table of texts with targets or labels: no data summary
            source, texts = load_task_texts(config.data_dir, config.task, self.preprocessor,
                                            batch_size=config.batch_size, validation_split=config.validation_split,
                                            test_split=config.test_split, seed=config.seed,
                                            separator=config.label_separator)
            return RunData(source.train, source.val, source.test, source.names, source.as_dict(),
                           text_fingerprint(texts), source.targets("train"), None, source), 1
        source = load_texts(config.data_dir, self.preprocessor, batch_size=config.batch_size,
                            validation_split=config.validation_split, test_split=config.test_split, seed=config.seed)
        return RunData(source.train, source.val, source.test, source.class_names, source.splits.as_dict(),
                       text_fingerprint(source.found.texts), np.asarray(source.splits.labels("train")),
                       source.summary, source), 1

    def build(self, config, data, head, resume):
        """The encoder with the task's head (`head`: its `TaskHead` keywords). Resumed, the weights come from
        last.keras: the encoder is built without loading its pretrained ones."""
        pretrained = config.weights is not None and not resume
        model, _ = build_text_classifier(config.backbone, class_names=data.names, weights="pretrained" if pretrained
                                         else None, sequence_length=config.sequence_length, dropout=config.dropout,
                                         seed=config.seed, task=config.task, **head)
        return model

    def write_files(self, out, data):
        self.preprocessor.save_to_preset(os.path.join(out, PREPROCESSOR))

    def outputs(self, model, data, split, config):
        """`(outputs, targets, ids)` of `model` on the split `split`: a classifier's texts by their ids (the report
        names the most confidently wrong ones), a task's tokenised split."""
        if config.task != "classification":
            return model_outputs(model, getattr(data, split))
        ids = data.source.splits.paths(split)
        return predict_texts(model, self.preprocessor, data.source.found.of(ids)), data.source.splits.labels(split), ids

    def finish(self, out, data):
        """Text runs record nothing after the report."""
