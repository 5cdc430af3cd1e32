"""Where backbone weights come from: ImageNet (download or offline cache), a file, or none.

`load_weights_by_order` loads a checkpoint whose layer names differ from the model's (for example
a VGG16 saved inside another model) by matching variables in order and by shape.
"""

import dataclasses
import os
import re
import warnings

import h5py
import numpy as np
from keras.src.utils import naming

from keras_transfer.errors import KerasTransferError


class WeightsError(KerasTransferError):
    """Weights that cannot be fetched, found or matched to the backbone."""


def keras_models_dir():
    """The folder Keras caches application weights in: `$KERAS_HOME/models` (default `~/.keras/models`)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(home, "models")


def build_backbone(spec, input_size, weights="imagenet"):
    """Builds a registry backbone without its top, with `weights` loaded.

    Args:
        spec: a `BackboneSpec`.
        input_size: the square input side.
        weights: `"imagenet"`, `None`, or a path to a weights file of this architecture
            (Keras `.weights.h5`, legacy `.h5`); a file whose layer names differ is matched by
            order and shape through `load_weights_by_order`.

    Returns:
        The backbone, a functional `keras.Model` named `"backbone"` taking preprocessed images.
    """
    shape = (input_size, input_size, 3)
    kwargs = dict(spec.kwargs)
    if weights is None or (isinstance(weights, str) and weights.lower() == "none"):
        model = spec.build(weights=None, include_top=False, input_shape=shape, **kwargs)
    elif isinstance(weights, str) and weights.lower() == "imagenet":
        model = _build_imagenet(spec, input_size, shape, kwargs)
    elif isinstance(weights, (str, os.PathLike)):
        model = spec.build(weights=None, include_top=False, input_shape=shape, **kwargs)
        load_weights_file(model, weights)
    else:
        raise WeightsError(
            f"Unknown weights for backbone '{spec.name}'. Allowed: 'imagenet', None, or a path to a "
            f"weights file. Received: weights={weights!r}"
        )
    model.name = "backbone"
    return model


def _build_imagenet(spec, input_size, shape, kwargs):
    if spec.fixed_size_for_imagenet and input_size != spec.fixed_size_for_imagenet:
        raise WeightsError(
            f"The ImageNet weights of '{spec.name}' only load at input size {spec.fixed_size_for_imagenet}. "
            f"Use input_size={spec.fixed_size_for_imagenet} or weights=None. Received: input_size={input_size}"
        )
    fname = spec.weights_file_for(input_size)
    placed = os.path.join(keras_models_dir(), fname)
    if os.path.isfile(placed):
        return _load_placed(spec, input_size, shape, kwargs, placed)
    try:
        return spec.build(weights="imagenet", include_top=False, input_shape=shape, **kwargs)
    except Exception as error:  # Keras raises a bare Exception for a failed download (its text names the URL).
        raise WeightsError(
            f"Could not fetch the ImageNet weights of '{spec.name}' ({fname}): {str(error).splitlines()[0]}. "
            f"On an offline machine, download that file elsewhere and place it as {placed} "
            f"(the folder is $KERAS_HOME/models, default ~/.keras/models), or pass weights=None or a weights "
            f"file path. Received: weights='imagenet'"
        ) from None


def _load_placed(spec, input_size, shape, kwargs, placed):
    """Loads a file already placed in `$KERAS_HOME/models` as Keras would after downloading it, but without
    Keras's hash check: Keras would delete a placed file whose hash differs and retry the download."""
    model = spec.build(weights=None, include_top=False, input_shape=shape, **kwargs)
    try:
        model.load_weights(placed)
    except Exception as error:  # h5py, Keras: ValueError, KeyError, OSError for a file of another model
        raise WeightsError(
            f"The ImageNet weights file {placed} does not fit backbone '{spec.name}' at input size "
            f"{input_size}: {str(error).splitlines()[0]}. Replace it with Keras's no-top file of that name, "
            f"or pass weights=None. Received: weights='imagenet'"
        ) from None
    return model


def load_weights_file(model, path):
    """Loads `path` into `model`: by Keras's own matching first, then by order and shape.

    Raises:
        WeightsError: when the file is missing or fits neither way (naming the first mismatch).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise WeightsError(f"Weights file not found: {path}. Received: weights={path!r}")
    if path.endswith(".keras"):
        raise WeightsError(
            f"'{path}' is a whole saved model, not a weights file: pass it as the backbone instead "
            f"(build_classifier(backbone='{path}', ...)). Received: weights={path!r}"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.load_weights(path)
        return None
    except Exception as by_name_error:  # a mismatched or foreign layout: try by order.
        try:
            match = load_weights_by_order(model, path)
        except WeightsError as by_order_error:
            raise WeightsError(
                f"{by_order_error} (Keras's by-name loading also failed: {str(by_name_error).splitlines()[0]})"
            ) from None
        # The run continues correctly, so a warning: the names differed, the shapes fit in order.
        warnings.warn(f"{path}: layer names differ from '{model.name}'; {match}.", stacklevel=2)
        return match


@dataclasses.dataclass
class WeightsMatch:
    """What `load_weights_by_order` did: `pairs` of (model variable, file dataset), and unused datasets."""

    pairs: list
    unused: list

    def __str__(self):
        return f"loaded {len(self.pairs)} variables by order and shape; {len(self.unused)} in the file unused"


def _natural_key(path):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path)]


def read_weight_arrays(path):
    """The arrays in an HDF5 weights file, in model order: `[(dataset_path, array)]`.

    Legacy Keras `.h5` files list their order in `layer_names`/`weight_names` attributes;
    Keras 3 `.weights.h5` files are read in natural order (`conv2d_2` before `conv2d_10`).
    """
    arrays = []
    try:
        with h5py.File(path, "r") as f:
            root = f["model_weights"] if "model_weights" in f else f
            if "layer_names" in root.attrs:
                for layer in root.attrs["layer_names"]:
                    group = root[_decode(layer)]
                    for name in group.attrs.get("weight_names", []):
                        arrays.append((f"{_decode(layer)}/{_decode(name)}", np.asarray(group[_decode(name)])))
            else:
                found = []
                root.visititems(lambda name, obj: found.append(name) if isinstance(obj, h5py.Dataset) else None)
                arrays = [(name, np.asarray(root[name])) for name in sorted(found, key=_natural_key)]
    except OSError as error:
        raise WeightsError(f"Cannot read weights file {path}: not an HDF5 file ({error}).") from None
    return arrays


def _in_model_order(model, arrays):
    """Reorders a Keras 3 file's arrays to `model`'s layer order.

    Keras 3 keys a model's layers by class and count (`layers/conv2d_1`, `layers/batch_normalization`),
    so sorting by path groups layers by class. Within a class the count keeps model order, so each of
    the model's layers takes the next unused file layer of its own class. Files without `/vars/` paths
    (legacy `.h5`, already in order) are returned as they are.
    """
    if not any("/vars/" in name for name, _ in arrays):
        return arrays
    groups = {}
    for name, array in arrays:
        groups.setdefault(name.rsplit("/vars/", 1)[0], []).append((name, array))
    queues = {}
    for owner in groups:  # natural order, as read
        queues.setdefault(re.sub(r"_\d+$", "", owner.rsplit("/", 1)[-1]), []).append(owner)
    owners = {}
    for variable in model.weights:
        owners.setdefault(variable.path.rsplit("/", 1)[0], None)
    layer_classes = {getattr(layer, "path", layer.name): layer for layer in model._flatten_layers()}
    ordered = []
    for owner in owners:
        layer = layer_classes.get(owner)
        queue = queues.get(naming.to_snake_case(type(layer).__name__), []) if layer is not None else []
        if not queue:
            break  # no file layer of this class left: the order check names the mismatch
        ordered.append(queue.pop(0))
    used = set(ordered)
    return [item for owner in ordered for item in groups[owner]] + [
        item for owner in groups if owner not in used for item in groups[owner]]


def _decode(value):
    return value.decode("utf8") if isinstance(value, bytes) else value


def load_weights_by_order(model, path, *, source_filter=None):
    """Loads a checkpoint into `model` matching variables by order and shape, not by name.

    The model's variables are taken in order; each takes the next array of the file. The file may
    hold more arrays after the last match (a head, side outputs): they are reported as unused.

    Args:
        model: a built `keras.Model`.
        path: an HDF5 weights file (`.weights.h5` or legacy `.h5`).
        source_filter: optional regex; only file datasets whose path matches it (`re.search`) are used.

    Returns:
        A `WeightsMatch`.

    Raises:
        WeightsError: naming the first variable whose shape differs, or that the file ran out.

    Example:
    >>> src = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="a")])
    >>> src.save_weights("/tmp/src.weights.h5")
    >>> dst = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="b")])
    >>> print(load_weights_by_order(dst, "/tmp/src.weights.h5"))
    loaded 2 variables by order and shape; 0 in the file unused
    """
    arrays = read_weight_arrays(os.fspath(path))
    if source_filter:
        arrays = [(name, array) for name, array in arrays if re.search(source_filter, name)]
    arrays = _in_model_order(model, arrays)
    variables = model.weights
    for index, variable in enumerate(variables):
        if index >= len(arrays):
            raise WeightsError(
                f"Weights file {path} does not fit '{model.name}': it has {len(arrays)} arrays but the model "
                f"needs {len(variables)}; the first without a match is '{variable.path}' {tuple(variable.shape)}."
            )
        name, array = arrays[index]
        if tuple(array.shape) != tuple(variable.shape):
            raise WeightsError(
                f"Weights file {path} does not fit '{model.name}': variable {index} '{variable.path}' has shape "
                f"{tuple(variable.shape)} but the file's array {index} '{name}' has shape {tuple(array.shape)}."
            )
    for variable, (_, array) in zip(variables, arrays):
        variable.assign(array)
    return WeightsMatch(
        pairs=[(v.path, name) for v, (name, _) in zip(variables, arrays)],
        unused=[name for name, _ in arrays[len(variables):]],
    )
