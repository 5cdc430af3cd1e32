"""Export that serves exactly what was trained: a TensorFlow SavedModel, a `.keras` file or TFLite.

`export(model_or_run_dir, path, format=...)` writes one format, then checks it against the in-memory
model on a fixed batch of 8 images before it returns (largest absolute difference of the
probabilities, top-1 agreement); above the tolerance the export fails and nothing is left at `path`.
Everything is written under a temporary name beside `path` and renamed into place at the end.

Formats (and the tolerance each is checked against):
    "saved_model" (1e-4): Keras's `ExportArchive`, under TensorFlow or JAX (jax2tf); every endpoint calls
        the model with `training=False` (augmentation and dropout off). Endpoints, see `export_archive`:
        `serve` (= `serving_default`), `serve_uint8`, `serve_any_size` and `class_names`;
        `class_names.json` is written inside the folder as well.
    "keras" (1e-4): `model.save`, optimizer state included; `keras.models.load_model(path)` needs no
        `custom_objects` (keras_transfer's layers are registered) and can resume training.
    "tflite" (1e-3; 0.05 with `quantize="dynamic"`): `tf.lite.TFLiteConverter` on the `serve` signature,
        on either backend; the class names go beside it in `<name>.class_names.json`.

Loading the SavedModel (TensorFlow only; no Keras or keras_transfer needed):
>>> served = tf.saved_model.load("exported")
>>> probabilities = served.serve(tf.constant(images_float32))  # (batch, size, size, 3) raw RGB 0-255
>>> served.serve_uint8(tf.constant(images_uint8)); served.serve_any_size(tf.constant(any_size_float32))
>>> names = [n.decode() for n in served.class_names().numpy()]

TensorFlow Serving: signature `serving_default` (the same function as `serve`); input `images`, float32,
shape (-1, size, size, 3), raw RGB 0-255; output `output_0`, float32 (-1, classes) probabilities, e.g.
`POST /v1/models/NAME:predict {"instances": [...]}` or `{"signature_name": "serve_uint8", ...}`.
`saved_model_cli show --dir exported --all` lists the signatures.
"""

import dataclasses
import os

import keras
import numpy as np

from keras_transfer import io
from keras_transfer.errors import KerasTransferError, unknown_name
from keras_transfer.models.classifier import class_indices
from keras_transfer.models.heads import get_thresholds
from keras_transfer.models.saving import load_keras_file
from keras_transfer.serving.export_archive import CLASS_NAMES_ENDPOINT, SERVING_ENDPOINT, build_archive, served_outputs
from keras_transfer.serving.export_tflite import check_quantize, convert_to_tflite, run_tflite
from keras_transfer.serving.loading import load_model

FORMATS = ("saved_model", "keras", "tflite")
TOLERANCES = {"saved_model": 1e-4, "keras": 1e-4, "tflite": 1e-3, "tflite_dynamic": 0.05}
CLASS_NAMES_FILE = "class_names.json"  # inside a SavedModel folder
CHECK_IMAGES = 8
SUFFIXES = {"keras": ".keras", "tflite": ".tflite"}


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """What `export` wrote and how closely it matches the in-memory model on the check batch."""

    path: str
    format: str
    max_abs_difference: float
    top1_agreement: float
    tolerance: float
    quantize: str = None
    class_names_path: str = None

    def summary(self):
        kind = self.format + (f" ({self.quantize} quantisation)" if self.quantize else "")
        return (f"exported {kind} to {self.path}; largest difference to the Keras model on {CHECK_IMAGES} images: "
                f"{self.max_abs_difference:.1e} (tolerance {self.tolerance:.0e}); "
                f"top-1 agreement {self.top1_agreement:.0%}")


def export(model_or_run_dir, path, *, format="saved_model", quantize=None, uint8=True, resize=True, atol=None):
    """Writes a model (or a run folder's `best.keras`) in one format and checks it before returning.

    Args:
        model_or_run_dir: a Keras model, a run folder written by `train_from_folder` (its `best.keras`)
            or a `.keras` file.
        path: where to write; must not exist. `format="keras"` needs a `.keras` name, `"tflite"` a `.tflite` one.
        format: `"saved_model"`, `"keras"` or `"tflite"`.
        quantize: `"dynamic"` for dynamic-range quantisation (TFLite only), or `None`.
        uint8: add the `serve_uint8` endpoint (SavedModel).
        resize: add the `serve_any_size` endpoint (SavedModel).
        atol: the largest difference accepted (default: `TOLERANCES` for the format).

    Returns:
        An `ExportResult` (path, largest difference, top-1 agreement, tolerance).

    Example:
    >>> model = build_classifier("mobilenetv2", 3, weights=None, input_size=32)
    >>> export(model, "/tmp/exported").max_abs_difference < 1e-4
    True
    """
    check_atol(atol)  # before the export: a bad tolerance is refused without minutes of work first
    if format not in FORMATS:
        raise unknown_name("format", format, FORMATS)
    if format == "tflite":
        check_quantize(quantize)
    elif quantize is not None:
        raise KerasTransferError(f"quantize applies to format='tflite' only. Received: quantize={quantize!r}")
    path = check_target(path, format)
    model, class_names = load_model(model_or_run_dir)
    check_target_folder(path)
    tolerance = atol if atol is not None else TOLERANCES["tflite_dynamic" if quantize else format]
    if format == "keras":
        check_serialisable(model)
    images = check_images(model)
    expected = keras.ops.convert_to_numpy(model(images, training=False))
    if format == "saved_model":
        difference, got, names_path = _write_saved_model(model, path, class_names, images, expected, tolerance,
                                                         uint8=uint8, resize=resize)
    elif format == "keras":
        difference, got, names_path = write_keras_export(model, path, images, expected, tolerance)
    else:
        difference, got, names_path = _write_tflite(model, path, class_names, images, expected, tolerance, quantize)
    agreement = float(np.mean(class_indices(got) == class_indices(expected)))
    return ExportResult(path, format, difference, agreement, tolerance, quantize, names_path)


def check_atol(atol):
    """Raises a one-line error unless `atol` is None (the format's tolerance) or a finite number > 0."""
    if atol is None:
        return
    if isinstance(atol, bool) or not isinstance(atol, (int, float)) or not 0 < atol < float("inf"):
        raise KerasTransferError(f"atol is the largest difference accepted between the export and the model: a "
                                 f"finite number > 0 (e.g. 1e-4), or unset for the format's default. "
                                 f"Received: atol={atol!r}")


def export_saved_model(model, path, *, check=True, atol=1e-4, uint8=True, resize=True):
    """Writes `model` as an inference-mode SavedModel at `path` (see `export`); returns the largest difference.

    Args:
        model: a model made by `build_classifier` (or any single-input image model).
        path: the SavedModel folder to create; it must not exist.
        check: compare the export with the in-memory model (it is always compared; `False` returns `None`).
        atol: the largest difference accepted.
        uint8: add the `serve_uint8` endpoint.
        resize: add the `serve_any_size` endpoint.

    Returns:
        The largest absolute difference to the in-memory model (or `None` when `check=False`).

    Example:
    >>> model = build_classifier("mobilenetv2", 3, weights=None, input_size=32)
    >>> export_saved_model(model, "/tmp/exported") < 1e-4
    True
    """
    result = export(model, path, format="saved_model", atol=atol, uint8=uint8, resize=resize)
    return result.max_abs_difference if check else None


def check_serialisable(model):
    """Raises (before anything is written) if `model` holds a custom layer that `load_model` could not rebuild."""
    for layer in model._flatten_layers(include_self=False, recursive=True):
        cls = type(layer)
        if cls.__module__.split(".")[0] == "keras":
            continue
        if keras.saving.get_registered_object(keras.saving.get_registered_name(cls)) is not cls:
            raise KerasTransferError(
                f"Layer '{layer.name}' is an instance of {cls.__module__}.{cls.__qualname__}, which is not registered "
                f"as serialisable: keras.models.load_model could not rebuild the .keras file. Decorate the class "
                f"with @keras.saving.register_keras_serializable() (and give it get_config), or export "
                f"format='saved_model' or 'tflite', which do not need it. Received: layer={layer.name!r}"
            )


def check_images(model, n=CHECK_IMAGES):
    """The fixed check batch: `n` images of whole-number pixels 0-255 at the model's input size (float32)."""
    shape = (n,) + tuple(model.input_shape[1:])
    return np.random.default_rng(0).integers(0, 256, shape).astype("float32")


def check_target(path, format):
    path = os.path.abspath(os.fspath(path))
    suffix = SUFFIXES.get(format)
    if suffix and not path.endswith(suffix):
        raise KerasTransferError(f"format={format!r} needs a path ending in {suffix}. Received: path={path!r}")
    if os.path.lexists(path):
        raise KerasTransferError(f"Export path {path} already exists; choose a new one (nothing was changed). "
                                 f"Received: path={path!r}")
    # A TFLite export writes its class names beside the model, then the model: a names file without its model
    # is what a killed export left, and is replaced.
    return path


def check_target_folder(path):
    """Refuses (before any work) a target folder that cannot be written; removes what killed exports left there."""
    parent = os.path.dirname(path)
    io.check_writable(parent, "an export", received=f"path={path!r}")
    io.remove_temp_files(parent)


def thresholds_beside(path):
    """Where a multi-label TFLite model's per-label thresholds are written: `<name>.thresholds.json`."""
    return os.path.splitext(path)[0] + ".thresholds.json"


def _names_beside(path):
    return os.path.splitext(path)[0] + ".class_names.json"


def _compare(format, path, outputs, expected, tolerance):
    """The largest difference of `outputs` (one array or several) to `expected`; raises above `tolerance`."""
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    difference = max(float(np.max(np.abs(np.asarray(got) - expected))) for got in outputs)
    if not difference <= tolerance:
        raise KerasTransferError(
            f"The exported {format} differs from the in-memory model by {difference:.2e} (> {tolerance:.0e}) on "
            f"a fixed batch of {len(expected)} images; nothing was written to {path}. Received: atol={tolerance!r}"
        )
    return difference


def _write_saved_model(model, path, class_names, images, expected, tolerance, *, uint8, resize):
    with io.atomic_folder(path) as tmp:
        build_archive(model, class_names=class_names, uint8=uint8, resize=resize).write_out(tmp, verbose=False)
        if class_names:
            io.write_json(os.path.join(tmp, CLASS_NAMES_FILE), list(class_names))
        outputs, served_names = served_outputs(tmp, images)
        difference = _compare("SavedModel", path, list(outputs.values()), expected, tolerance)
        if class_names and served_names != list(class_names):
            raise KerasTransferError(f"The exported {CLASS_NAMES_ENDPOINT} endpoint does not serve {class_names}; "
                                     f"nothing was written to {path}. Received: class_names={class_names!r}")
    return difference, outputs[SERVING_ENDPOINT], os.path.join(path, CLASS_NAMES_FILE) if class_names else None


def write_keras_export(model, path, images, expected, tolerance):
    with io.atomic_path(path, ".keras") as tmp:
        model.save(tmp)
        try:
            reloaded = load_keras_file(tmp)
        except KerasTransferError as error:
            raise KerasTransferError(f"The .keras file does not load back ({str(error).split(' Received:')[0]}); "
                                     f"nothing was written to {path}. Received: path={path!r}") from None
        got = keras.ops.convert_to_numpy(reloaded(images, training=False))
        difference = _compare(".keras file", path, got, expected, tolerance)
    return difference, got, None


def _write_tflite(model, path, class_names, images, expected, tolerance, quantize):
    names_path = _names_beside(path) if class_names else None
    try:
        with io.atomic_path(path, ".tflite") as tmp:
            with open(tmp, "wb") as f:
                f.write(convert_to_tflite(model, quantize=quantize))
            got = run_tflite(tmp, images)
            difference = _compare("TFLite model", path, got, expected, tolerance)
            if names_path:
                io.write_json(names_path, list(class_names))  # before the model: a model never lacks its names
            if get_thresholds(model) is not None:  # a multi-label model's thresholds, beside it as its names
                io.write_json(thresholds_beside(path), get_thresholds(model))
    except BaseException:
        if names_path and os.path.exists(names_path):  # ours, or a killed export's leftover without its model
            os.remove(names_path)
        raise
    return difference, got, names_path
