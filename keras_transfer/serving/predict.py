"""Predicts the classes of image files with a trained model, a `.keras` file or a run folder.

Files of any size and format `images.read_image` takes are read the way training read them (EXIF,
grayscale, palette, 16-bit handled) and resized to the model's input size; the model preprocesses them
itself. `tta=True` averages the probabilities of each image and its horizontal mirror.
"""

import os

import keras
import numpy as np

from keras_transfer.data.images import IMAGE_EXTENSIONS, ImageDecodeError, read_image, resize_image
from keras_transfer.data.scan import file_problem
from keras_transfer.data.sources import walk_images
from keras_transfer.errors import KerasTransferError
from keras_transfer.models.classifier import input_size
from keras_transfer.serving.loading import default_class_names, load_model
from keras_transfer.serving.task_predict import task_describer, task_outputs_on_batch


def class_probabilities(outputs):
    """`(n, num_classes)` probabilities from a classifier's output; one sigmoid unit becomes `[1 - p, p]`."""
    outputs = np.asarray(keras.ops.convert_to_numpy(outputs), dtype=np.float64)
    if outputs.ndim != 2:
        raise KerasTransferError(f"Expected classifier outputs of shape (n, classes). Received: shape={outputs.shape}")
    if outputs.shape[1] == 1:
        return np.concatenate([1.0 - outputs, outputs], axis=1)
    return outputs


def scan_inputs(inputs):
    """`(paths, refused)`: the image files of `inputs` in order, and `{path: reason}` for those among them that
    are never opened (`data.scan`'s rule, as training scans: a FIFO, socket or device; in a folder, a symlink
    out of it or a loop). Folders are walked recursively, sorted, hidden entries left out."""
    given = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    found, refused = [], {}
    for item in map(os.fspath, given):
        if os.path.isdir(item):
            paths, _, skipped = walk_images(item)  # the training loader's walk: same files, same order, same rule
            found.extend(paths + [path for path, _ in skipped])  # the refused ones last, each named
            refused.update(skipped)
        elif os.path.lexists(item):
            found.append(item)
            if file_problem(item):  # a FIFO named on the command line: named, not opened
                refused[item] = file_problem(item)
        else:
            raise KerasTransferError(f"No such file or folder: {item}. Received: inputs={given!r}")
    if not found:
        raise KerasTransferError(f"No image files found in {', '.join(map(os.fspath, given)) or 'nothing'} "
                                 f"(looked for {', '.join(IMAGE_EXTENSIONS)}). Received: inputs={given!r}")
    return found, refused


def predict_probabilities(model, images, *, tta=False):
    """Class probabilities `(n, num_classes)` of a batch of float images; `tta` averages with the mirror."""
    probabilities = class_probabilities(model.predict_on_batch(images))
    if tta:
        mirrored = class_probabilities(model.predict_on_batch(np.ascontiguousarray(images[:, :, ::-1])))
        probabilities = (probabilities + mirrored) / 2.0
    return probabilities


def predict(model_or_run_dir, inputs, *, top_k=5, tta=False, batch_size=32, strict=False, antialias=False):
    """Predicts the top classes of image files.

    Args:
        model_or_run_dir: a Keras model, a `.keras` file, or a run folder (its `best.keras`; class names
            from the model, else the folder's `class_names.json`).
        inputs: a file or folder, or a list of them; folders are searched recursively for image files.
        top_k: classes listed per image (at most the number of classes).
        tta: also predict each horizontally flipped image and average the two probabilities.
        batch_size: images read and predicted at a time.
        strict: raise on the first file that cannot be read, instead of naming and skipping it (as training does).
        antialias: resize as the model's training images were (`config.json`'s `antialias` of its run; the
            CLI reads it from the run folder).

    Returns:
        A list, one per file in order: `{"path": str, "top": [(class_name, probability), ...]}`, most probable
        first; a file that cannot be read gets `{"path": str, "top": [], "skipped": reason}`. A regression or
        multi-label model gives `{"path", "values"}` or `{"path", "labels", "probabilities"}` instead of `"top"`
        (`task_predict.task_describer`).

    Raises:
        KerasTransferError: no model there, a missing input, no image found; with `strict`, `ImageDecodeError`
            names a file that cannot be read.

    Example:
    >>> from keras_transfer import build_classifier
    >>> import numpy as np; from PIL import Image
    >>> Image.fromarray(np.zeros((40, 30, 3), np.uint8)).save("/tmp/kt_predict.png")
    >>> model = build_classifier("vgg16", class_names=["a", "b", "c"], weights=None, input_size=32)
    >>> predict(model, "/tmp/kt_predict.png", top_k=2)[0]["top"][0][0] in ("a", "b", "c")
    True
    """
    for name, value in (("top_k", top_k), ("batch_size", batch_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise KerasTransferError(f"{name} must be a positive int. Received: {name}={value!r}")
    model, names = load_model(model_or_run_dir)
    describe = task_describer(model)  # regression and multi-label models: values, or labels above thresholds
    names = default_class_names(model, names) if describe is None else names
    size, (paths, refused) = input_size(model), scan_inputs(inputs)
    k = min(top_k, len(names or ()))
    outputs_of = predict_probabilities if describe is None else task_outputs_on_batch
    results = []
    for start in range(0, len(paths), batch_size):
        images, skipped = _read_chunk(paths[start:start + batch_size], size, strict, antialias, refused)
        rows = iter(outputs_of(model, np.stack(list(images.values())), tta=tta)) if images else iter(())
        for path in paths[start:start + batch_size]:
            if path in skipped:
                results.append({"path": path, "top": [], "skipped": skipped[path]})
                continue
            row = next(rows)
            if describe is not None:
                results.append({"path": path, **describe(row)})
                continue
            order = np.argsort(-row, kind="stable")[:k]
            results.append({"path": path, "top": [(names[i], float(row[i])) for i in order]})
    return results


def _read_chunk(paths, size, strict, antialias, refused):
    """`({path: image}, {path: reason})`: the readable files' pixels and why the others were skipped (`refused`:
    the scan's reasons, for files never opened)."""
    images, skipped = {}, {}
    for path in paths:
        try:
            if path in refused:
                raise ImageDecodeError(path, refused[path])
            images[path] = resize_image(read_image(path), size, antialias)
        except ImageDecodeError as error:
            if strict:
                raise
            skipped[path] = error.reason
    return images, skipped
