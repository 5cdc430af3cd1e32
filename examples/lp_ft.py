"""Recipe 4: LP-FT by hand: the head fitted to convergence on the frozen features, then the top blocks
fine-tuned with per-block rates under warmup + cosine decay, optionally pulled toward the pretrained weights.

    python examples/lp_ft.py path/to/images --backbone resnet50 --blocks 2 --l2sp 0.01
"""

import argparse

import keras_transfer as kt
from keras_transfer.models.freezing import freeze
from keras_transfer.models.registry import get_backbone_spec
from keras_transfer.training.linear_probe import fit_linear_head
from keras_transfer.training.optimizers import block_multipliers, make_optimizer
from keras_transfer.training.presets import compile_model
from keras_transfer.training.regularization import attach_l2sp
from keras_transfer.training.schedules import WarmupCosine

parser = argparse.ArgumentParser()
parser.add_argument("data_dir")
parser.add_argument("--backbone", default="resnet50")
parser.add_argument("--weights", default="imagenet")
parser.add_argument("--input-size", type=int, default=None)
parser.add_argument("--blocks", type=int, default=2)
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--l2sp", type=float, default=0.0)
args = parser.parse_args()

spec = get_backbone_spec(args.backbone)
size = args.input_size or spec.default_size
data = kt.load_data(args.data_dir, image_size=size)
model = kt.build_model(spec.name, class_names=data.class_names, input_size=size,
                       weights=None if args.weights == "none" else args.weights)

print(fit_linear_head(model, data.train, data.val))             # 1. the head, to convergence (L-BFGS)
print(freeze(model, "top_blocks", n=args.blocks))                # 2. the top blocks train; BatchNorm stays frozen
if args.l2sp:
    print(attach_l2sp(model, args.l2sp))                         #    L2-SP: pulled toward the pretrained weights
steps = args.epochs * len(data.train)
rates = block_multipliers(model, 0.5)                            # top block x0.5, the next x0.25, ...
optimizer = make_optimizer("adam", WarmupCosine(1e-4, steps, warmup_steps=steps // 10), multipliers=rates)
compile_model(model, "fine_tune", optimizer=optimizer)
model.fit(data.train, validation_data=data.val, epochs=args.epochs)
print("validation:", model.evaluate(data.val, return_dict=True, verbose=0))
