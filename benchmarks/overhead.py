"""Overhead: a training epoch through keras_transfer vs the same model hand-written in Keras.

Both models are the same VGG16-style classifier (raw pixels -> preprocessing -> backbone -> pooling ->
dropout -> dense) on the same in-memory data, trained with the same optimizer; epochs alternate between
the two and the script prints the median epoch time of each and their ratio (goal: within 2%).

    KERAS_BACKEND=tensorflow python benchmarks/overhead.py --backbone vgg16 --size 64 --repeats 5
"""

import argparse
import statistics
import time

import keras
import numpy as np

import keras_transfer as kt


def hand_written(spec, size, classes):
    """The Keras transfer-learning guide's model, written by hand."""
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Lambda(lambda t: keras.ops.flip(t, axis=-1) - np.array([103.939, 116.779, 123.68], "float32"))(inputs) \
        if spec.preprocess == "caffe" else keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    base = spec.build(weights=None, include_top=False, input_shape=(size, size, 3))
    base.trainable = False
    x = base(x, training=False)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.2)(x)
    outputs = keras.layers.Dense(classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def ours(spec, size, classes):
    model = kt.build_classifier(spec.name, classes, weights=None, input_size=size, augmentation=None, dropout=0.2)
    kt.freeze(model, "head_only")
    kt.compile_model(model, "feature_extraction")
    return model


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--backbone", default="vgg16")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    spec = kt.get_backbone_spec(args.backbone)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (args.images, args.size, args.size, 3)).astype("float32")
    y = rng.integers(0, 10, args.images)
    models = {"keras": hand_written(spec, args.size, 10), "keras_transfer": ours(spec, args.size, 10)}
    times = {name: [] for name in models}
    for name, model in models.items():  # warm-up: tracing and compilation are not timed
        model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    for _ in range(args.repeats):
        for name, model in models.items():
            start = time.perf_counter()
            model.fit(x, y, batch_size=32, epochs=1, verbose=0)
            times[name].append(time.perf_counter() - start)
    base, mine = statistics.median(times["keras"]), statistics.median(times["keras_transfer"])
    print(f"backend={keras.backend.backend()} backbone={spec.name} size={args.size} images={args.images} "
          f"repeats={args.repeats}")
    print(f"median epoch: hand-written Keras {base:.3f} s, keras_transfer {mine:.3f} s, ratio {mine / base:.3f}")


if __name__ == "__main__":
    main()
