"""benchmarks/few_shot_tasks.py: every task builds from the real files, balanced, in range, deterministic per seed,
with test images that share no pixel with training or validation images."""

import importlib.util
import os
import re
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
import few_shot_tasks  # noqa: E402
from few_shot_tasks import TASKS, build_task  # noqa: E402

pytestmark = pytest.mark.backend_free
pytest.importorskip("sklearn", reason="the digits and photos tasks read scikit-learn's bundled images")
# scikit-image is not imported (its import needs lazy_loader); only its data folder must exist
NEEDS_SKIMAGE = pytest.mark.skipif(importlib.util.find_spec("skimage") is None,
                                   reason="the images scikit-image ships: pip install --no-deps scikit-image")
TASK_PARAMS = [pytest.param(name, marks=() if name == "digits" else NEEDS_SKIMAGE) for name in TASKS]
K, TEST = 2, 3


def _boxes_overlap(a, b):
    """Two `(source, top, left, bottom, right)` rows share a pixel."""
    return a[0] == b[0] and a[1] < b[3] and b[1] < a[3] and a[2] < b[4] and b[2] < a[4]


@pytest.mark.parametrize("name", TASK_PARAMS)
def test_task_shapes_labels_and_range(name):
    task = build_task(name, k=K, test_per_class=TEST, size=32, seed=0)
    classes = len(task.class_names)
    assert classes >= 2 and task.name == name and task.source
    for x, y, per_class in ((task.x_train, task.y_train, K), (task.x_val, task.y_val, K),
                            (task.x_test, task.y_test, TEST)):
        assert x.shape == (classes * per_class, 32, 32, 3) and x.dtype == np.float32
        assert 0 <= x.min() and x.max() <= 255 and x.max() > x.min()
        assert np.array_equal(np.bincount(y, minlength=classes), np.full(classes, per_class))


@pytest.mark.parametrize("name", TASK_PARAMS)
def test_test_images_share_no_pixel_with_training_or_validation(name):
    task = build_task(name, k=K, test_per_class=TEST, seed=0)
    regions = task.regions
    assert [len(regions[s]) for s in ("train", "val", "test")] == [len(task.y_train), len(task.y_val),
                                                                   len(task.y_test)]
    for seen in ("train", "val"):
        for a in regions["test"]:
            assert not any(_boxes_overlap(a, b) for b in regions[seen]), (seen, a)
    for a in regions["train"]:
        assert not any(_boxes_overlap(a, b) for b in regions["val"]), a
    seen = {x.tobytes() for x in np.concatenate([task.x_train, task.x_val])}
    assert not any(x.tobytes() in seen for x in task.x_test)


@pytest.mark.parametrize("name", TASK_PARAMS)
def test_same_seed_same_arrays_other_seed_other_draw(name):
    a, b = (build_task(name, k=K, test_per_class=TEST, seed=3) for _ in range(2))
    c = build_task(name, k=K, test_per_class=TEST, seed=4)
    for split in ("train", "val", "test"):
        assert np.array_equal(getattr(a, f"x_{split}"), getattr(b, f"x_{split}"))
        assert np.array_equal(getattr(a, f"y_{split}"), getattr(b, f"y_{split}"))
    assert not np.array_equal(a.x_train, c.x_train)


def test_val_per_class_and_size():
    task = build_task("digits", k=2, val_per_class=4, test_per_class=1, size=16, seed=0)
    assert task.x_train.shape == (20, 16, 16, 3) and task.x_val.shape == (40, 16, 16, 3)


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(name="digit"), "Received: name='digit'"),
    (dict(k=0), "Received: k=0"),
    (dict(test_per_class=2.5), "Received: test_per_class=2.5"),
    (dict(k=100, test_per_class=100), "fewer than k + val_per_class + test_per_class = 300"),
])
def test_bad_arguments_raise_naming_the_argument(kwargs, fragment):
    call = dict(name="digits", k=2, test_per_class=2, seed=0) | kwargs
    with pytest.raises(ValueError, match=re.escape(fragment)):
        build_task(call.pop("name"), **call)


def test_missing_scikit_image_says_how_to_install(monkeypatch):
    monkeypatch.setattr(few_shot_tasks.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps scikit-image"):
        build_task("textures", k=2, test_per_class=2, seed=0)


def test_regions_of_crops_are_apart_by_the_margin():
    for cut in ("vertical", "horizontal"):
        boxes = few_shot_tasks.split_regions(300, 451, cut)
        for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
            (t1, l1, b1, r1), (t2, l2, b2, r2) = boxes[a], boxes[b]
            gap = max(t2 - b1, t1 - b2, l2 - r1, l1 - r2)
            assert gap >= few_shot_tasks.MARGIN, (cut, a, b, gap)
