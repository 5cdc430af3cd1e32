"""Recipe 5: pick a learning rate with a range test (Leslie Smith; fastai's `lr_find`), then train at it.

    python examples/find_lr.py path/to/images --backbone resnet50 --epochs 10 --plot lr_find.png

`find_lr` trains a few batches at a learning rate growing from 1e-7 to 10 and records the loss; the suggestion
is the rate where the smoothed loss falls fastest. It leaves the model exactly as it was (weights, BatchNorm
statistics, optimizer), so the `fit` below starts from the same point it would have without the test.
"""

import argparse

import keras

import keras_transfer as kt
from keras_transfer.models.freezing import freeze
from keras_transfer.models.registry import get_backbone_spec
from keras_transfer.training.lr_finder import find_lr
from keras_transfer.training.presets import compile_model

parser = argparse.ArgumentParser()
parser.add_argument("data_dir")
parser.add_argument("--backbone", default="resnet50")
parser.add_argument("--weights", default="imagenet")
parser.add_argument("--input-size", type=int, default=None)
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--steps", type=int, default=100, help="batches in the range test")
parser.add_argument("--plot", default="lr_find.png")
args = parser.parse_args()

spec = get_backbone_spec(args.backbone)
size = args.input_size or spec.default_size
data = kt.load_data(args.data_dir, image_size=size, batch_size=32)
model = kt.build_model(spec.name, class_names=data.class_names, input_size=size,
                       weights=None if args.weights == "none" else args.weights)
freeze(model, "head_only")
compile_model(model, "feature_extraction")     # the optimizer the test copies (Adam), the loss it measures

result = find_lr(model, data.train, steps=args.steps)
print(f"suggested learning rate: {result.suggestion} (lowest loss at {result.min_loss_learning_rate:.2g}, "
      f"{len(result.losses)} steps{', stopped when the loss diverged' if result.stopped_early else ''})")
print("plot written to", result.plot(args.plot))

# No steep descent on a short or flat curve: a tenth of the rate with the lowest loss is the usual fallback.
learning_rate = result.suggestion or result.min_loss_learning_rate / 10
compile_model(model, "feature_extraction", learning_rate=learning_rate)
model.fit(data.train, validation_data=data.val, epochs=args.epochs,
          callbacks=[keras.callbacks.EarlyStopping(patience=3, restore_best_weights=True)])
print("validation:", model.evaluate(data.val, return_dict=True, verbose=0))
