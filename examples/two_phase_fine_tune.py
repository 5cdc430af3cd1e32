"""Recipe 2: head first, then unfreeze the top blocks and fine-tune at a lower rate.

    python examples/two_phase_fine_tune.py path/to/images --backbone resnet50 --blocks 2
"""

import argparse

import keras_transfer as kt
from keras_transfer.models.registry import get_backbone_spec
from keras_transfer.training.recipes import fine_tune

parser = argparse.ArgumentParser()
parser.add_argument("data_dir")
parser.add_argument("--backbone", default="resnet50")
parser.add_argument("--weights", default="imagenet")
parser.add_argument("--input-size", type=int, default=None)
parser.add_argument("--blocks", type=int, default=2)
parser.add_argument("--epochs", type=int, default=5)
parser.add_argument("--out", default="runs/two_phase")
args = parser.parse_args()

spec = get_backbone_spec(args.backbone)
size = args.input_size or spec.default_size
data = kt.load_data(args.data_dir, image_size=size)
model = kt.build_model(spec.name, class_names=data.class_names, input_size=size,
                       weights=None if args.weights == "none" else args.weights)

result = fine_tune(model, data.train, data.val, head_epochs=args.epochs, fine_tune_epochs=args.epochs,
                   unfreeze="top_blocks", n=args.blocks, checkpoint_path=f"{args.out}/best.keras")
for report in result.freeze_reports:
    print(report)
print("validation:", model.evaluate(data.val, return_dict=True, verbose=0))
