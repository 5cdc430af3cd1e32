"""The modality parts of a run: how a kind of input is read, split and batched, which network is built on it,
which files it adds, and what a model outputs on a split (the report's input; the recipe is
the model's own, `training.recipes.planner`). `runs.train.run_training` composes one with a task part
(`runs.tasks`), as KerasHub composes a task from a backbone and a preprocessor.

- `ImageModality`: image folders and manifests (`data.sources`, `data.task_sources`), `models.heads.build_model`,
  data-parallel devices;
- `TextModality` (`runs.text_modality`, needs KerasHub): text tables and folders, KerasHub encoders, the
  preprocessor saved in the run folder.
"""

import dataclasses
import logging
import os

import keras
import numpy as np

from keras_transfer import io
from keras_transfer.data.fingerprint import fingerprint
from keras_transfer.data.pipeline import make_dataset
from keras_transfer.data.sources import load_image_folder
from keras_transfer.data.splits import SPLITS
from keras_transfer.data.task_sources import load_task_data
from keras_transfer.errors import KerasTransferError
from keras_transfer.layout import DATA_SUMMARY
from keras_transfer.models.classifier import input_size
from keras_transfer.models.freezing import check_strategy
from keras_transfer.models.heads import build_model
from keras_transfer.serving.predict import model_outputs
from keras_transfer.training.budget import DEFAULT_BATCH, batch_for

log = logging.getLogger(__name__)


@dataclasses.dataclass
class RunData:
    """What the driver and the task parts read of a run's data, whichever modality loaded it.

    Args:
        train: the batched training `tf.data.Dataset`.
        val: the validation one, or None.
        test: the test one, or None.
        names: the class, target or label names.
        splits: the `splits.json` form of the split.
        prints: the `data_fingerprint.json` form of the inputs' contents.
        train_targets: the training split's labels (classification) or target rows.
        summary: what is logged and written to `data_summary.json` (None: nothing).
        source: the loader's own holder (`ImageFolderData`, `TaskData`, `TextData`).
    """

    train: object
    val: object
    test: object
    names: list
    splits: dict
    prints: dict
    train_targets: np.ndarray
    summary: object
    source: object

    @property
    def train_count(self):
        return len(self.train_targets)

    def summary_json(self):
        return self.summary.as_dict() if hasattr(self.summary, "as_dict") else self.summary


class ImageModality:
    """Images: a folder of class subfolders, a layout or a manifest (any task); see the module docstring."""

    def load(self, config, devices):
        """`(RunData, learning-rate factor)`: an unset batch size is 32, at most a quarter of the training images
        (`budget.batch_for`), per device; a given one is the global batch (`DataParallel.batch_and_scale`)."""
        first, _ = devices.batch_and_scale(config.batch_size, DEFAULT_BATCH)  # a batch that does not divide: now
        source = self._read(config, first)
        images = len(self._train_targets(source))
        if images < devices.devices:  # before the run folder: each device needs an image of every batch
            raise KerasTransferError(f"devices={config.devices} splits each batch over {devices.devices} devices, but "
                                     f"only {images} training image(s) were found: pass devices <= {images} (or leave "
                                     f"it unset for one device). Received: devices={config.devices!r}")
        batch, scale = devices.batch_and_scale(config.batch_size, batch_for(images))
        source = source if batch == first else self._read(config, batch)  # tiny data: scanned again
        if config.task == "classification":
            source = devices.even_batches(source, batch)
            paths, names, splits, summary = source.splits.paths, source.class_names, source.splits.as_dict(), \
                source.summary
        else:
            paths, names, splits, summary = source.paths, source.names, source.as_dict(), None
        return RunData(source.train, source.val, source.test, names, splits,
                       fingerprint(path for split in SPLITS for path in paths(split)),
                       self._train_targets(source), summary, source), scale

    @staticmethod
    def _read(config, batch_size):
        keras.utils.set_random_seed(config.seed)  # before the datasets exist: tf.data's shuffle seeds mix in it
        common = dict(image_size=config.input_size, batch_size=batch_size, validation_split=config.validation_split,
                      test_split=config.test_split, seed=config.seed, antialias=config.antialias)
        if config.task == "classification":
            return load_image_folder(config.data_dir, strict=config.strict, **common)
        return load_task_data(config.data_dir, config.task, separator=config.label_separator, **common)

    @staticmethod
    def _train_targets(source):
        return np.asarray(source.splits.labels("train") if hasattr(source, "splits") else source.targets("train"))

    def build(self, config, data, head, resume):
        """The backbone with the task's head (`head`: `models.heads.build_model`'s keywords). Resumed, the weights
        come from last.keras; L2-SP needs the pretrained ones as its reference: loaded."""
        model = build_model(config.backbone, config.task, class_names=data.names, input_size=config.input_size,
                            weights=None if resume and not config.l2sp else config.weights,
                            augmentation=config.augmentation, dropout=config.dropout, seed=config.seed,
                            precision=config.precision, **head)
        if config.strategy in ("top_blocks", "from_layer"):  # an unknown --layer or too many --blocks: now
            check_strategy(model, config.strategy, n=config.n, layer=config.layer)
        return model

    def write_files(self, out, data):
        """Image runs add no files of their own."""

    def outputs(self, model, data, split, config):
        """`model_outputs` of `model` on the split `split`: a classifier's images read again with their paths (the
        report names the most confidently wrong ones), leaving out those that failed to decode in training."""
        source = data.source
        if not hasattr(source, "splits"):  # a regression or multi-label manifest
            return model_outputs(model, getattr(data, split))
        dataset = make_dataset(source.splits.paths(split), source.splits.labels(split), image_size=input_size(model),
                               batch_size=config.batch_size or DEFAULT_BATCH, antialias=config.antialias,
                               skipped=source.skipped[split], include_paths=True, fill_skipped=False)
        return model_outputs(model, dataset)

    def finish(self, out, data):
        """Adds the files that failed to decode during training to `data_summary.json` (and the log)."""
        if not hasattr(data.source, "skipped_while_training"):
            return
        skipped = data.source.skipped_while_training()
        summary = io.read_json(os.path.join(out, DATA_SUMMARY))
        by_path = {item["path"]: item for item in skipped + summary.get("skipped_while_training", [])}  # a resumed
        summary["skipped_while_training"] = [by_path[path] for path in sorted(by_path)]  # run keeps what it named
        io.write_json(os.path.join(out, DATA_SUMMARY), summary)
        if skipped:
            log.info("Skipped while training: %d file(s) that failed to decode (listed in %s).", len(skipped),
                     os.path.join(out, DATA_SUMMARY))
