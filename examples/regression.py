"""Recipe 9: regression, model.fit-style: predict a number per image (here each handwritten digit's value).

    python examples/regression.py digits --backbone resnet50 --epochs 10

Writes the real scikit-learn digit scans with their values as a `path,value` manifest (bring your own CSV of
`path,target` rows the same way), then: a model whose head returns values in the targets' units (their mean
and scale are stored in the model, so `predict` and every export need no post-processing), its loss on the
standardised targets, the head on the frozen backbone, then the top blocks, and MAE / RMSE / R^2.
"""

import argparse

import keras
import numpy as np

import keras_transfer as kt
from keras_transfer.data.digit_tasks import write_digit_values
from keras_transfer.models.freezing import freeze
from keras_transfer.models.heads import standardisation, task_loss, task_metrics
from keras_transfer.models.registry import get_backbone_spec

parser = argparse.ArgumentParser()
parser.add_argument("folder", help="where the digit images and values.csv are written")
parser.add_argument("--n", type=int, default=600, help="digit images to write")
parser.add_argument("--backbone", default="resnet50")
parser.add_argument("--weights", default="imagenet")
parser.add_argument("--input-size", type=int, default=None)
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--blocks", type=int, default=1)
args = parser.parse_args()

manifest = write_digit_values(args.folder, n=args.n)             # path,value rows of real digit scans
spec = get_backbone_spec(args.backbone)
size = args.input_size or spec.default_size
data = kt.load_data(manifest, task="regression", image_size=size, batch_size=16)
mean, scale = standardisation(data.targets("train"))            # stored in the model: values come out in units
model = kt.build_model(spec.name, "regression", class_names=data.names, target_mean=mean, target_scale=scale,
                       loss="mse", input_size=size, augmentation="none",
                       weights=None if args.weights == "none" else args.weights)

print(freeze(model, "head_only"))                                # 1. the head on the frozen backbone
model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=task_loss(model), metrics=task_metrics(model))
model.fit(data.train, validation_data=data.val, epochs=args.epochs)
print(freeze(model, "top_blocks", n=args.blocks))                # 2. the top blocks, at a small rate
model.compile(optimizer=keras.optimizers.Adam(1e-5), loss=task_loss(model), metrics=task_metrics(model))
model.fit(data.train, validation_data=data.val, epochs=args.epochs)

print(kt.evaluate(model, data.val).summary())                    # MAE, RMSE, R^2 on the validation split
images, values = next(iter(data.val))
predicted = model.predict(np.asarray(images), verbose=0)[:, 0]
print("true:", np.asarray(values)[:5, 0].round(2).tolist(), "predicted:", predicted[:5].round(2).tolist())
