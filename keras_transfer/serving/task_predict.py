"""What `predict` returns for a regression or multi-label model: values in the user's units, or the labels at or
above their thresholds with every label's probability."""

import keras
import numpy as np

from keras_transfer.models.heads import get_thresholds, head_of, task_of


def task_describer(model):
    """`describe(output_row) -> dict` for a regression or multi-label model; `None` for a classifier.

    Regression: `{"values": {target name: value}}`. Multi-label: `{"labels": [names at or above their
    thresholds, most probable first], "probabilities": {label: probability}}`.

    Example:
    >>> model = build_model("vgg16", "multilabel", class_names=["a", "b"], weights=None, input_size=32)
    >>> task_describer(model)(np.array([0.7, 0.2]))["labels"]
    ['a']
    """
    task = task_of(model)
    if task == "classification":
        return None
    head = head_of(model)
    names = head.class_names or [str(i) for i in range(int(head.units))]
    if task == "regression":
        return lambda row: {"values": {name: float(v) for name, v in zip(names, row)}}
    thresholds = np.asarray(get_thresholds(model))

    def describe(row):
        above = [i for i in np.argsort(-row, kind="stable") if row[i] >= thresholds[i]]
        return {"labels": [names[i] for i in above], "probabilities": {n: float(p) for n, p in zip(names, row)}}

    return describe


def task_outputs_on_batch(model, images, *, tta=False):
    """The model's raw outputs on a batch (values or probabilities); `tta` averages with the mirrored images."""
    outputs = np.asarray(keras.ops.convert_to_numpy(model.predict_on_batch(images)), "float64")
    if tta:
        mirrored = model.predict_on_batch(np.ascontiguousarray(images[:, :, ::-1]))
        outputs = (outputs + np.asarray(keras.ops.convert_to_numpy(mirrored), "float64")) / 2.0
    return outputs
