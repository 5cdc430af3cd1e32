"""Recipe 10: multi-label, model.fit-style: several labels per image (here the digits present in a 2x2 tile).

    python examples/multilabel.py tiles --backbone resnet50 --epochs 10

Writes 2x2 tiles of real scikit-learn digit scans with the set of digits present as a `path,labels` manifest
(labels joined by `|`; bring your own CSV the same way), then: one sigmoid per label, a binary cross-entropy
whose positive terms are weighted up for rare labels (negatives / positives of the training split, in [1, 10],
stored in the model), the head on the frozen backbone, then the top blocks; each label's threshold is chosen on
the validation split and saved with the model, and `predict` gives the labels above their thresholds.
"""

import argparse

import keras
import numpy as np

import keras_transfer as kt
from keras_transfer.data.digit_tasks import write_digit_tiles
from keras_transfer.models.freezing import freeze
from keras_transfer.models.heads import get_thresholds, set_thresholds, task_loss, task_metrics
from keras_transfer.models.label_weights import positive_weights
from keras_transfer.models.registry import get_backbone_spec
from keras_transfer.serving.task_metrics import choose_thresholds
from keras_transfer.serving.task_report import task_outputs

parser = argparse.ArgumentParser()
parser.add_argument("folder", help="where the tiles and tags.csv are written")
parser.add_argument("--n", type=int, default=600, help="tiles to write")
parser.add_argument("--backbone", default="resnet50")
parser.add_argument("--weights", default="imagenet")
parser.add_argument("--input-size", type=int, default=None)
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--blocks", type=int, default=1)
args = parser.parse_args()

manifest = write_digit_tiles(args.folder, n=args.n)              # path,labels rows: "tiles/tile_0000.png,1|4|7"
spec = get_backbone_spec(args.backbone)
size = args.input_size or spec.default_size
data = kt.load_data(manifest, task="multilabel", image_size=size, batch_size=16)
weights = positive_weights(data.targets("train"))                 # rare labels weigh more
print("label weights:", dict(zip(data.names, np.round(weights, 2).tolist())))
model = kt.build_model(spec.name, "multilabel", class_names=data.names, label_weights=weights, input_size=size,
                       augmentation="none", weights=None if args.weights == "none" else args.weights)

print(freeze(model, "head_only"))                                # 1. the head on the frozen backbone
model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=task_loss(model), metrics=task_metrics(model))
model.fit(data.train, validation_data=data.val, epochs=args.epochs)
print(freeze(model, "top_blocks", n=args.blocks))                # 2. the top blocks, at a small rate
model.compile(optimizer=keras.optimizers.Adam(1e-5), loss=task_loss(model), metrics=task_metrics(model))
model.fit(data.train, validation_data=data.val, epochs=args.epochs)

outputs, truth = task_outputs(model, data.val)                   # 3. per-label thresholds, best F1 on validation
print("thresholds:", dict(zip(data.names, np.round(set_thresholds(model, choose_thresholds(outputs, truth)),
                                                   2).tolist())))
print(kt.evaluate(model, data.val).summary())                    # micro/macro F1, mAP, per-label table
images, tags = next(iter(data.val))
for p, t in zip(model.predict(np.asarray(images), verbose=0)[:3], np.asarray(tags)[:3]):
    print("true:", [n for n, v in zip(data.names, t) if v], "predicted:",
          [n for n, q, c in zip(data.names, p, get_thresholds(model)) if q >= c])
