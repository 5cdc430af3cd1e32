"""The public API: one function per thing a user does, for images and texts, classification and the other tasks.

Each function dispatches where the package has one implementation per modality or task (image, text;
classification, regression, multilabel); the implementations stay importable from their modules.

Example:
>>> model, result = train("photos", "runs/a", backbone="mobilenetv2", weights=None, input_size=32)  # doctest: +SKIP
>>> predict("runs/a", ["cat.jpg"])  # doctest: +SKIP
"""

import os

from keras_transfer.data.sources import load_image_folder
from keras_transfer.data.task_sources import load_task_data
from keras_transfer.errors import KerasTransferError, text_extra_needed, unknown_name
from keras_transfer.io import check_writable
from keras_transfer.layout import SPLITS_FILE
from keras_transfer.models import heads
from keras_transfer.models.registry import list_backbones as list_image_backbones
from keras_transfer.models.text_registry import TEXT_BACKBONES, list_text_backbones
from keras_transfer.runs.config import RunConfig
from keras_transfer.runs.folder import resize_rule, run_modality
from keras_transfer.runs.resume import resume_run
from keras_transfer.runs.select import select_backbones
from keras_transfer.runs.train import train_from_folder
from keras_transfer.serving import evaluation, export as image_export, loading, predict as image_predict
from keras_transfer.training.recipes import run_recipe
from keras_transfer.version import __version__
from keras_transfer.vocabulary import MODALITIES, TASKS

__all__ = ["train", "resume", "load_data", "build_model", "fit", "load_model", "predict", "evaluate", "export",
           "list_backbones", "select_backbones", "RunConfig", "KerasTransferError", "__version__"]


def _text(module):
    """`serving.text_run` or `models.text_classifier` (they need KerasHub, the `text` extra), or a one-line error
    naming the install command."""
    with text_extra_needed():
        if module == "text_run":
            import keras_transfer.serving.text_run as found  # optional: keras-hub, the `text` extra
        else:
            import keras_transfer.models.text_classifier as found  # optional: keras-hub, the `text` extra
    return found


def _check_modality(modality):
    if modality not in MODALITIES:
        raise unknown_name("modality", modality, MODALITIES)


def _is_run_of(source, modality):
    return isinstance(source, (str, os.PathLike)) and run_modality(source) == modality


def train(data_dir, out, **settings):
    """Trains a model on a data folder or table and writes the run folder `out` (any modality and task).

    `settings` are `RunConfig`'s fields plus `overwrite`, `verbose` and `resume` (see `runs.train.train_from_folder`).

    Returns:
        `(model, FineTuneResult)`.

    Example:
    >>> model, result = train("photos", "runs/a", backbone="mobilenetv2", weights=None, input_size=32)  # doctest: +SKIP
    """
    return train_from_folder(data_dir, out, **settings)


def resume(out, **overrides):
    """Continues the interrupted run in `out` with its stored settings (`runs.resume.resume_run`).

    Example:
    >>> model, result = resume("runs/a")  # doctest: +SKIP
    """
    return resume_run(out, **overrides)


def load_data(source, *, task="classification", modality="image", preprocessor=None, **options):
    """Loads, splits and batches labelled data: images (any task) or texts.

    Args:
        source: a folder of class subfolders or a manifest (images); a table or folder of texts.
        task: `"classification"`, `"regression"` or `"multilabel"` (the latter two read a manifest).
        modality: `"image"` or `"text"`.
        preprocessor: texts only: the KerasHub preprocessor that `build_model` returns.
        **options: images: `image_size` (required), `batch_size`, `validation_split`, ... as in
            `data.sources.load_image_folder` / `data.task_sources.load_task_data`; texts: as in `data.texts.load_texts`
            (a regression or multi-label table: `data.texts.load_task_texts`).

    Returns:
        `ImageFolderData`, `TaskData` or `TextData`: `.train`, `.val`, `.test` pipelines and a summary.

    Example:
    >>> data = load_data("photos", image_size=32)  # doctest: +SKIP
    """
    _check_modality(modality)
    if task not in TASKS:
        raise unknown_name("task", task, TASKS)
    if modality == "text":
        if preprocessor is None:
            raise KerasTransferError("Text data is loaded with the preprocessor that build_model(..., "
                                     "modality='text') returns. Received: preprocessor=None")
        from keras_transfer.data.texts import load_task_texts, load_texts  # lazy: tf.data, which JAX need not load
        if task != "classification":
            return load_task_texts(source, task, preprocessor, **options)[0]
        return load_texts(source, preprocessor, **options)
    if task == "classification":
        return load_image_folder(source, **options)
    return load_task_data(source, task, **options)


def build_model(backbone, task="classification", *, outputs=None, modality="auto", **options):
    """Builds an uncompiled model on a pretrained backbone: an image model for any task, or a text classifier.

    Args:
        backbone: an image registry name (`list_backbones("image")`), a text registry name, or a local folder
            of a text encoder (with `modality="text"`).
        task: `"classification"`, `"regression"` or `"multilabel"`.
        outputs: classes, regression targets or labels (default: `len(class_names)`).
        modality: `"image"`, `"text"`, or `"auto"`: text for a text registry name, else image.
        **options: as in `models.heads.build_model` (images) or `models.text_classifier.build_text_classifier`
            (texts, any task).

    Returns:
        The `keras.Model`; for text, `(model, preprocessor)`.

    Example:
    >>> model = build_model("mobilenetv2", outputs=3, weights=None, input_size=32)
    >>> model.output_shape
    (None, 3)
    """
    if modality == "auto":
        known = isinstance(backbone, str) and backbone.lower().replace("-", "_") in TEXT_BACKBONES
        modality = "text" if known else "image"
    _check_modality(modality)
    if modality == "text":
        return _text("text_classifier").build_text_classifier(backbone, outputs, task=task, **options)
    return heads.build_model(backbone, task, outputs=outputs, **options)


def fit(model, train, val=None, *, recipe="auto", **options):
    """Trains a built model with a named recipe (`"auto"`, `"two_phase"`, `"lp_ft"`, `"gradual"`, `"scratch"`).

    Args:
        model: what `build_model` returned (a text model without its preprocessor).
        train: the batched training `tf.data.Dataset` (`load_data(...).train`).
        val: the batched validation `tf.data.Dataset` (`load_data(...).val`), or None.
        recipe: the recipe's name.
        **options: as in `training.recipes.run_recipe` (images and texts).

    Returns:
        A `FineTuneResult`: the phases' histories, the recipe chosen and why.

    Example:
    >>> result = fit(model, data.train, data.val, recipe="lp_ft")  # doctest: +SKIP
    """
    return run_recipe(model, train, val, recipe=recipe, **options)


def load_model(source):
    """`(model, class_names)` from a Keras model, a run folder or a `.keras` file; a text run folder gives
    `(model, preprocessor, class_names)`.

    Example:
    >>> model, names = load_model("runs/a")  # doctest: +SKIP
    """
    if _is_run_of(source, "text"):
        return _text("text_run").load_text_run(source)
    return loading.load_model(source)


def predict(model_or_run_dir, inputs, **options):
    """Predicts image files (any task's model) or, with a text run folder, texts.

    `options` as in `serving.predict.predict` or `serving.text_run.predict_text_run`; a run folder's resize rule
    is its own.

    Returns:
        One dict per input: `path` and `top` (`(class, probability)` pairs), or a task model's values or labels.

    Example:
    >>> predict("runs/a", ["cat.jpg"], top_k=1)  # doctest: +SKIP
    """
    if _is_run_of(model_or_run_dir, "text"):
        return _text("text_run").predict_text_run(model_or_run_dir, inputs, **options)
    if isinstance(model_or_run_dir, (str, os.PathLike)):
        options.setdefault("antialias", resize_rule(model_or_run_dir))
    return image_predict.predict(model_or_run_dir, inputs, **options)


def evaluate(model_or_run_dir, data=None, *, out=None, **options):
    """Evaluates a model on labelled data, or a run folder on its test (else validation) split.

    Args:
        model_or_run_dir: a Keras model, a run folder or a `.keras` file.
        data: `(images, labels or targets)`, a data folder or manifest; `None`: the run folder's own split.
        out: a folder to write the report to.
        **options: as in `serving.evaluation.evaluate` (`top_k`, `worst`, `batch_size`), `split` for a run folder.

    Returns:
        An `EvaluationReport` (classification) or a `TaskReport` (regression, multilabel).

    Example:
    >>> report = evaluate("runs/a")  # doctest: +SKIP
    """
    run_dir = model_or_run_dir if isinstance(model_or_run_dir, (str, os.PathLike)) else None
    if data is not None and not isinstance(data, (str, os.PathLike)) or run_dir is None:
        options.pop("split", None)
        model, names = loading.load_model(model_or_run_dir)
        return evaluation.evaluate(model, data, out=out, **{"class_names": names, **options})
    return evaluate_run(run_dir, data, out=out, **options)[0]


def evaluate_run(run_dir, data_dir=None, *, split=None, out=None, class_names=None, top_k=5, worst=10,
                 batch_size=32):
    """Evaluates a run folder's `best.keras`, whatever its modality and task: what `evaluate` and `keras-transfer
    evaluate` run for a run folder. The model's outputs come from its modality (pixels, strings), the report from
    its task (`evaluation.report_of`).

    Args:
        run_dir: the run folder.
        data_dir: a data folder, table or manifest to evaluate on; `None`: the run's `split`.
        split: `"test"` or `"val"` of the run's `splits.json` (default: test if it holds examples, else val).
        out: a folder to write the report to.
        class_names: an image classifier's names in label order (default: the model's own).
        top_k: the k of a classifier's top-k accuracy.
        worst: how many of a classifier's most confidently wrong examples to list.
        batch_size: examples per batch.

    Returns:
        `(report, description of the data, paths written)`: an `EvaluationReport` or a `TaskReport`.

    Example:
    >>> report, source, written = evaluate_run("runs/a", out="runs/a")  # doctest: +SKIP
    """
    image_predict.check_counts(top_k=top_k, worst=worst, batch_size=batch_size)
    if data_dir is not None and split is not None:
        raise KerasTransferError(f"split picks a split of the run's {SPLITS_FILE}; with a data folder or table every "
                                 f"example there is evaluated. Received: split={split!r}, data_dir={data_dir!r}")
    if out is not None:
        check_writable(out, "the report")  # before the work, not after it
    if run_modality(run_dir) == "text":
        if class_names is not None:
            raise KerasTransferError("A text run's class names are its model's own. Received: class_names="
                                     f"{class_names!r}")
        text_run = _text("text_run")
        model, preprocessor, names = text_run.load_text_run(run_dir)
        ids, texts, targets, source = text_run.evaluation_texts(model, run_dir, names, data_dir=data_dir, split=split)
        outputs = text_run.predict_texts(model, preprocessor, texts, batch_size=batch_size)
    else:
        model, names = loading.load_model(run_dir)
        names = loading.default_class_names(model, class_names or names)
        paths, targets, source = evaluation.evaluation_images(model, run_dir, names, data_dir=data_dir, split=split)
        outputs, targets, ids = image_predict.model_outputs(model, (paths, targets), batch_size=batch_size,
                                                            antialias=resize_rule(run_dir))
    report, written = evaluation.report_and_write(model, outputs, targets, names, top_k=top_k, worst=worst, ids=ids,
                                                  out=out)
    return report, source, written


def export(model_or_run_dir, path, **options):
    """Exports a model or a run's `best.keras` (SavedModel, `.keras` or TFLite; a text run: raw strings in),
    checked against the Keras model first.

    Returns:
        An `ExportResult` (a text run: a `TextExportResult`).

    Example:
    >>> export("runs/a", "exported/a", format="saved_model")  # doctest: +SKIP
    """
    if _is_run_of(model_or_run_dir, "text"):
        return _text("text_run").export_text_run(model_or_run_dir, path, **options)
    return image_export.export(model_or_run_dir, path, **options)


def list_backbones(modality="image"):
    """The registry entries: image `BackboneSpec`s, text `TextBackboneSpec`s, or both (`modality=None`).

    Example:
    >>> "mobilenetv2" in [spec.name for spec in list_backbones("image")]
    True
    """
    if modality is not None:
        _check_modality(modality)
    return ((list_image_backbones() if modality in (None, "image") else [])
            + (list_text_backbones() if modality in (None, "text") else []))
