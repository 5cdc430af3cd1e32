"""Training throughput: images per second of frozen (head only) and full fine-tuning steps, and the
achieved FLOP/s as a fraction of the machine's peak.

For each backbone (default ResNet50, VGG16, InceptionV3 at their default sizes, weights=None) and each
mode, a keras_transfer classifier (`build_classifier` + `freeze` + `compile_model`) and the same model
written by hand in Keras (`keras.applications` + pooling + Dense, `trainable` set by hand) take
`--steps` timed `train_on_batch` steps after one warm-up step; the script prints the median images/s of
each and their ratio. Run it once per backend (`KERAS_BACKEND=tensorflow` / `jax`).

FLOPs are counted analytically: 2 x the multiply-accumulates of every Conv2D, DepthwiseConv2D,
SeparableConv2D and Dense layer at the layer's output shape (other layers are ignored). A training step
costs about 1x the forward FLOPs with a frozen backbone (no backbone gradients) and 3x with the full
network training. Peaks: (a) a measured float32 matmul (`keras.ops.matmul`, 3072^2, best of 5) and
(b) cores x clock x 32 FLOPs/cycle (two 256-bit FMA units: AVX2) from /proc/cpuinfo.

    KERAS_BACKEND=tensorflow python benchmarks/throughput.py
    KERAS_BACKEND=jax python benchmarks/throughput.py --backbones resnet50 --batch 16 --steps 10
"""

import argparse
import math
import os
import statistics
import time

import keras
import numpy as np

import keras_transfer as kt


def count_flops(model):
    """Forward FLOPs per image: 2 x the MACs of the conv and dense layers, walking nested models."""
    macs = 0
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.Model) or not hasattr(layer, "output"):
            continue
        try:
            out = layer.output.shape
        except (AttributeError, ValueError):
            continue
        spatial = math.prod(out[1:-1]) if len(out) > 2 else 1
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            kh, kw = layer.kernel_size
            macs += spatial * out[-1] * kh * kw
        elif isinstance(layer, keras.layers.SeparableConv2D):
            kh, kw = layer.kernel_size
            cin = layer.input.shape[-1]
            macs += spatial * cin * layer.depth_multiplier * kh * kw + spatial * cin * layer.depth_multiplier * out[-1]
        elif isinstance(layer, keras.layers.Conv2D):
            kh, kw = layer.kernel_size
            macs += spatial * out[-1] * kh * kw * layer.input.shape[-1] // layer.groups
        elif isinstance(layer, keras.layers.Dense):
            macs += spatial * out[-1] * layer.input.shape[-1]
    return 2 * macs


def matmul_peak(n=3072, repeats=5):
    a = keras.ops.convert_to_tensor(np.random.default_rng(0).standard_normal((n, n)).astype("float32"))
    best = math.inf
    for _ in range(repeats + 1):
        start = time.perf_counter()
        keras.ops.convert_to_numpy(keras.ops.matmul(a, a))
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best


def cpuinfo_peak(flops_per_cycle=32):
    with open("/proc/cpuinfo") as f:
        mhz = [float(line.split(":")[1]) for line in f if line.startswith("cpu MHz")]
    return len(mhz) * statistics.mean(mhz) * 1e6 * flops_per_cycle, len(mhz), statistics.mean(mhz)


def hand_written(spec, size, classes, frozen):
    base = spec.build(weights=None, include_top=False, input_shape=(size, size, 3))
    base.trainable = not frozen
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = base(x, training=False)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def ours(spec, size, classes, frozen, *, precision=None, jit_compile="auto"):
    model = kt.build_classifier(spec.name, classes, weights=None, input_size=size, augmentation="none", dropout=0,
                                precision=precision)
    kt.freeze(model, "head_only" if frozen else "full")
    kt.compile_model(model, "feature_extraction" if frozen else "fine_tune_all", jit_compile=jit_compile)
    return model


def images_per_second(models, x, y, steps):
    """Median images/s of each model; steps alternate between the models so both see the same load."""
    for model in models.values():
        model.train_on_batch(x, y)  # warm-up: tracing and compilation are not timed
    times = {name: [] for name in models}
    for _ in range(steps):
        for name, model in models.items():
            start = time.perf_counter()
            model.train_on_batch(x, y)
            times[name].append(time.perf_counter() - start)
    return {name: len(x) / statistics.median(t) for name, t in times.items()}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--backbones", default="resnet50,vgg16,inceptionv3")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--modes", default="frozen,full")
    args = parser.parse_args()
    measured = matmul_peak()
    theoretical, cores, mhz = cpuinfo_peak()
    print(f"backend={keras.backend.backend()} batch={args.batch} timed steps={args.steps} (median)")
    print(f"peak: measured float32 matmul {measured / 1e9:.1f} GFLOP/s; "
          f"cpuinfo {cores} cores x {mhz:.0f} MHz x 32 FLOP/cycle = {theoretical / 1e9:.1f} GFLOP/s")
    print("backbone     size mode    keras img/s  kt img/s  kt/keras  GFLOP/img  GFLOP/s  %matmul %cpuinfo")
    rng = np.random.default_rng(0)
    for name in args.backbones.split(","):
        spec = kt.get_backbone_spec(name)
        size = spec.default_size
        x = rng.uniform(0, 255, (args.batch, size, size, 3)).astype("float32")
        y = rng.integers(0, 10, args.batch).astype("int32")
        for mode in args.modes.split(","):
            frozen = mode == "frozen"
            keras.utils.clear_session()
            models = {"keras": hand_written(spec, size, 10, frozen), "kt": ours(spec, size, 10, frozen)}
            rates = images_per_second(models, x, y, args.steps)
            forward = count_flops(models["kt"])
            achieved = rates["kt"] * forward * (1 if frozen else 3)
            print(f"{spec.name:12s} {size:4d} {mode:7s} {rates['keras']:11.2f} {rates['kt']:9.2f} "
                  f"{rates['kt'] / rates['keras']:9.3f} {forward / 1e9:10.2f} {achieved / 1e9:8.1f} "
                  f"{100 * achieved / measured:7.1f}% {100 * achieved / theoretical:7.1f}%", flush=True)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    main()
