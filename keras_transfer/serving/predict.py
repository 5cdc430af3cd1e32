"""A model's outputs on images: `predict` on image files (a trained model, a `.keras` file or a run folder), and
`model_outputs` on labelled data, which `evaluation.evaluate` reports on. What is said of the outputs is the
task's (`describer`, `evaluation.report_of`).

Files of any size and format `images.read_image` takes are read the way training read them (EXIF,
grayscale, palette, 16-bit handled) and resized to the model's input size; the model preprocesses them
itself. `tta=True` averages the probabilities of each image and its horizontal mirror.
"""

import os

import keras
import numpy as np

from keras_transfer.data.images import IMAGE_EXTENSIONS, ImageDecodeError, read_image, resize_image
from keras_transfer.data.pipeline import make_dataset
from keras_transfer.data.scan import file_problem
from keras_transfer.data.sources import walk_images
from keras_transfer.errors import KerasTransferError
from keras_transfer.models.classifier import input_size
from keras_transfer.models.heads import get_thresholds, task_of
from keras_transfer.serving.loading import default_class_names, load_model


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


def check_counts(**counts):
    """Refuses a count (`top_k`, `batch_size`, `worst`, ...) that is not a positive int (`worst`: non-negative)."""
    for name, value in counts.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < (0 if name == "worst" else 1):
            raise KerasTransferError(f"{name} must be a {'non-negative' if name == 'worst' else 'positive'} int. "
                                     f"Received: {name}={value!r}")


def outputs_on_batch(model, inputs, *, tta=False):
    """The model's raw outputs `(n, units)` on a batch, float64 (probabilities or values); `tta` averages them with
    those of the horizontally mirrored images."""
    outputs = np.asarray(keras.ops.convert_to_numpy(model.predict_on_batch(inputs)), "float64")
    if tta:
        mirrored = model.predict_on_batch(np.ascontiguousarray(inputs[:, :, ::-1]))
        outputs = (outputs + np.asarray(keras.ops.convert_to_numpy(mirrored), "float64")) / 2.0
    return outputs


def _dataset_outputs(model, dataset):
    """`(outputs, targets, ids_or_None)`; ids where the batches carry them (`(inputs, targets, paths)`)."""
    outputs, targets, ids = [], [], []
    for batch in dataset:
        if not (isinstance(batch, (tuple, list)) and len(batch) >= 2):
            raise KerasTransferError("The dataset must yield (inputs, targets) batches. "
                                     f"Received: a batch of type {type(batch).__name__}")
        outputs.append(outputs_on_batch(model, keras.tree.map_structure(np.asarray, batch[0])))  # or token ids
        targets.append(np.asarray(batch[1]))
        if len(batch) == 3:
            ids += [os.fsdecode(p) for p in np.asarray(batch[2]).tolist()]
    if not outputs:
        raise KerasTransferError("The dataset is empty. Received: data=<empty tf.data.Dataset>")
    return np.concatenate(outputs), np.concatenate(targets), ids or None


def model_outputs(model, data, *, batch_size=32, antialias=False):
    """`(outputs, targets, ids_or_None)`: the model's raw outputs `(n, units)` (probabilities or values) on labelled
    data, with the targets as given (labels, one-hot or target rows), whatever the task.

    Args:
        model: a Keras model of any task.
        data: a `tf.data.Dataset` of `(inputs, targets)` or `(inputs, targets, paths)` batches (images, or a text
            model's token ids), a `(paths, targets)` pair (read at the model's input size; a file that fails to
            decode is named in a warning and left out, its target with it) or an `(x, y)` pair of arrays.
        batch_size: batch size for paths and arrays.
        antialias: for paths: resize as the model's training data was (see `pipeline.make_dataset`).

    Example:
    >>> model = build_model("vgg16", "regression", outputs=1, weights=None, input_size=32)
    >>> model_outputs(model, (np.zeros((4, 32, 32, 3)), np.arange(4.0)))[0].shape
    (4, 1)
    """
    if hasattr(data, "element_spec"):  # a tf.data.Dataset
        return _dataset_outputs(model, data)
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise KerasTransferError("data must be a tf.data.Dataset of (images, labels), a (paths, labels) pair or "
                                 f"an (x, y) pair of arrays. Received: data of type {type(data).__name__}")
    x, y = data
    if len(x) and all(isinstance(v, (str, os.PathLike)) for v in x):  # each file's index travels as its label
        dataset = make_dataset([os.fspath(p) for p in x], range(len(x)), image_size=input_size(model),
                               batch_size=batch_size, antialias=antialias, include_paths=True, fill_skipped=False)
        outputs, rows, paths = _dataset_outputs(model, dataset)
        return outputs, np.asarray(y)[rows.astype(np.int64)], paths
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 4 or len(x) != len(y) or not len(x):
        raise KerasTransferError(f"x must be a non-empty batch of images (n, height, width, 3) with one label each. "
                                 f"Received: x.shape={x.shape}, len(y)={len(y)}")
    outputs = keras.ops.convert_to_numpy(model.predict(x, batch_size=batch_size, verbose=0))
    return np.asarray(outputs, "float64"), np.asarray(y), None


def describer(model, class_names, top_k):
    """`describe(output_row) -> dict`, what `predict` says of one input, for the model's task.

    Classification: `{"top": [(class name, probability), ...]}`, the `top_k` most probable first. Regression:
    `{"values": {target name: value}}`. Multi-label: `{"labels": [names at or above their thresholds, most probable
    first], "probabilities": {label: probability}}`.

    Example:
    >>> model = build_model("vgg16", "multilabel", class_names=["a", "b"], weights=None, input_size=32)
    >>> describer(model, None, 5)(np.array([0.7, 0.2]))["labels"]
    ['a']
    """
    task, names = task_of(model), default_class_names(model, class_names)
    if task == "classification":
        k = min(top_k, len(names))

        def top(row):
            row = class_probabilities(row[None])[0]
            return {"top": [(names[i], float(row[i])) for i in np.argsort(-row, kind="stable")[:k]]}

        return top
    if task == "regression":
        return lambda row: {"values": {name: float(v) for name, v in zip(names, row)}}
    thresholds = np.asarray(get_thresholds(model))

    def labels(row):
        above = [i for i in np.argsort(-row, kind="stable") if row[i] >= thresholds[i]]
        return {"labels": [names[i] for i in above], "probabilities": {n: float(p) for n, p in zip(names, row)}}

    return labels


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
        (`describer`).

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
    check_counts(top_k=top_k, batch_size=batch_size)
    model, names = load_model(model_or_run_dir)
    describe = describer(model, names, top_k)
    size, (paths, refused) = input_size(model), scan_inputs(inputs)
    results = []
    for start in range(0, len(paths), batch_size):
        images, skipped = _read_chunk(paths[start:start + batch_size], size, strict, antialias, refused)
        rows = iter(outputs_on_batch(model, np.stack(list(images.values())), tta=tta)) if images else iter(())
        for path in paths[start:start + batch_size]:
            results.append({"path": path, "top": [], "skipped": skipped[path]} if path in skipped
                           else {"path": path, **describe(next(rows))})
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
