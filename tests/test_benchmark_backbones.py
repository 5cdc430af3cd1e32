"""benchmarks/recipes.py with any registry backbone and weights file, criteria_table.py's per-cell checks and
task_table.py's regression / multi-label cells."""

import json
import os
import sys

import keras
import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
import criteria_table  # noqa: E402
import task_table  # noqa: E402
import recipes as bench  # noqa: E402
from few_shot_tasks import FewShotTask  # noqa: E402


def test_defaults_unchanged_and_other_backbones_need_a_weights_file(capsys):
    args = bench.parse_args([])
    assert (args.backbone, args.size, args.weights, args.jsonl) == ("cut", 32, None, None)
    args = bench.parse_args(["--backbone", "mobilenetv2", "--weights", "w.h5", "--input-size", "96"])
    assert (args.backbone, args.size, args.weights) == ("mobilenetv2", 96, "w.h5")
    with pytest.raises(SystemExit):
        bench.parse_args(["--backbone", "mobilenetv2"])
    assert "needs --weights PATH" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.parse_args(["--backbone", "nosuchnet", "--weights", "w.h5"])
    assert "nosuchnet" in capsys.readouterr().err


def test_a_registry_backbone_loads_the_given_weights_file(tmp_path):
    task = FewShotTask("t", ["a", "b", "c"], *([np.zeros((3, 32, 32, 3), "float32"), np.arange(3, dtype="int32")] * 3),
                       source="", regions={})
    keras.utils.set_random_seed(7)
    reference = keras.applications.MobileNetV2(weights=None, include_top=False, input_shape=(32, 32, 3))
    path = str(tmp_path / "mnv2.weights.h5")
    reference.save_weights(path)
    model = bench.make_model(task, path, cut=None, size=32, seed=0, backbone="mobilenetv2")
    backbone = model.get_layer("backbone")
    assert backbone.get_layer("block_16_project").kernel.shape == reference.get_layer("block_16_project").kernel.shape
    for name in ("Conv1", "block_16_project"):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(backbone.get_layer(name).kernel),
                                      keras.ops.convert_to_numpy(reference.get_layer(name).kernel))
    assert model.output_shape == (None, 3)


def _write(path, rows):
    with open(path, "w") as f:
        f.writelines(json.dumps(dict(backend="jax", size=96, **r)) + "\n" for r in rows)


def test_criteria_are_checked_on_the_mean_of_the_seeds(tmp_path):
    rows = []
    for seed, (probe, auto, scratch) in enumerate([(0.80, 0.78, 0.60), (0.80, 0.80, 0.70)]):  # auto - probe: -0.01
        rows += [dict(task="digits", k=5, seed=seed, method=m, accuracy=a)
                 for m, a in (("linear_probe", probe), ("auto", auto), ("scratch", scratch))]
    for seed, (probe, auto) in enumerate([(0.70, 0.70), (0.70, 0.72)]):  # auto - probe at K=50: +0.01, misses 0.02
        rows += [dict(task="photos", k=50, seed=seed, method="linear_probe", accuracy=probe),
                 dict(task="photos", k=50, seed=seed, method="auto", accuracy=auto, ran="lp_ft: head+fine_tune")]
    path = tmp_path / "r.jsonl"
    _write(path, rows)
    lines = criteria_table.table(criteria_table.load([str(path)])).splitlines()
    digits = [cell.strip() for cell in next(line for line in lines if "| digits |" in line).split("|")[1:-1]]
    photos = [cell.strip() for cell in next(line for line in lines if "| photos |" in line).split("|")[1:-1]]
    assert digits[4:11] == ["0,1", "0.800", "0.790", "0.650", "-0.010", "yes", "+0.140"]
    assert digits[11:13] == ["yes", ""]  # K <= 10: the scratch criterion, not the K = 50 one
    assert photos[8:10] == ["+0.010", "yes"] and photos[11:14] == ["", "**no**", "lp_ft: head+fine_tune"]


@pytest.mark.backend_free
def test_a_scratch_figure_under_the_superseded_epoch_rule_is_replaced_by_a_re_measurement_and_marked_until_then(
        tmp_path):
    old_rule = dict(method="scratch", epoch_rule="lowest val_loss")
    rows = [dict(task=t, k=5, seed=s, method=m, accuracy=0.8) for t in ("digits", "photos") for s in (0, 1)
            for m in ("linear_probe", "auto")]
    rows += [dict(task=t, k=5, seed=s, accuracy=0.3, **old_rule) for t in ("digits", "photos") for s in (0, 1)]
    new, old = tmp_path / "new.jsonl", tmp_path / "old.jsonl"
    _write(new, [dict(task="digits", k=5, seed=s, method="scratch", accuracy=0.5) for s in (0, 1)]
           + [dict(task="photos", k=5, seed=0, method="scratch", accuracy=0.5)])
    _write(old, rows)
    for order in ([new, old], [old, new]):  # the re-measurement wins in either file order
        lines = criteria_table.table(criteria_table.load([str(p) for p in order])).splitlines()
        digits = [cell.strip() for cell in next(line for line in lines if "| digits |" in line).split("|")[1:-1]]
        photos = [cell.strip() for cell in next(line for line in lines if "| photos |" in line).split("|")[1:-1]]
        assert digits[7] == "0.500"  # both seeds re-measured: no mark
        assert photos[7] == "0.400" + criteria_table.OLD_RULE  # seed 1 still the old rule's 0.3: marked
        assert any("lowest-validation-loss" in line for line in lines)


@pytest.mark.backend_free
def test_a_figure_trained_on_one_repeated_batch_order_is_marked_and_a_record_with_fewer_marks_wins(tmp_path):
    fixed = dict(epoch_order="fixed")
    rows = [dict(task="photos", k=k, seed=s, method="linear_probe", accuracy=0.6) for k in (5, 50) for s in (0, 1)]
    rows += [dict(task="photos", k=50, seed=s, method="auto", accuracy=0.7, ran="lp_ft: head+fine_tune", **fixed)
             for s in (0, 1)]
    rows += [dict(task="photos", k=5, seed=s, method="auto", accuracy=0.7, ran="lp_ft: head") for s in (0, 1)]
    rows += [dict(task="photos", k=5, seed=s, method="scratch", accuracy=0.2, epoch_rule="lowest val_loss", **fixed)
             for s in (0, 1)]
    later = [dict(task="photos", k=5, seed=0, method="scratch", accuracy=0.4, **fixed),  # the new rule, same order
             dict(task="photos", k=5, seed=1, method="scratch", accuracy=0.5),  # both fixed
             dict(task="photos", k=50, seed=0, method="auto", accuracy=0.8, ran="lp_ft: head+fine_tune")]
    new, old = tmp_path / "new.jsonl", tmp_path / "old.jsonl"
    _write(new, later)
    _write(old, rows)
    for order in ([new, old], [old, new]):
        lines = criteria_table.table(criteria_table.load([str(p) for p in order])).splitlines()
        k5, k50 = ([cell.strip() for cell in next(line for line in lines if f"| photos | {k} |" in line)
                    .split("|")[1:-1]] for k in (5, 50))
        assert k5[6:8] == ["0.700", "0.450" + criteria_table.FIXED_ORDER]  # no old rule left; seed 0's order
        assert k50[6] == "0.750" + criteria_table.FIXED_ORDER  # seed 1 not re-measured yet
        assert any("one batch order" in line for line in lines)
        assert not any("lowest-validation-loss" in line for line in lines)


@pytest.mark.backend_free
def test_another_recipe_is_compared_with_auto_on_the_seeds_both_ran_and_kept_fine_tuning_is_counted():
    rows = [dict(task="photos", k=5, seed=s, method="auto", accuracy=a, ran="lp_ft: head")
            for s, a in ((0, 0.5), (1, 0.6), (2, 0.9))]
    rows += [dict(task="photos", k=5, seed=s, method="linear_probe", accuracy=0.4) for s in (0, 1, 2)]
    rows += [dict(task="photos", k=5, seed=0, method="lp_ft", accuracy=0.5,
                  ran="lp_ft: head+fine_tune (fine-tuning reverted to the probe)"),
             dict(task="photos", k=5, seed=1, method="lp_ft", accuracy=0.8, ran="lp_ft: head+fine_tune"),
             dict(task="digits", k=5, seed=0, method="auto", accuracy=0.5, ran="lp_ft: head"),  # no lp_ft: no row
             dict(task="photos", k=5, seed=0, method="scratch", accuracy=0.3),
             dict(task="photos", k=5, seed=3, method="scratch", accuracy=0.4)]  # a baseline: every seed counts
    lines = criteria_table.versus([dict(backend="jax", size=96, **r) for r in rows], "lp_ft").splitlines()
    assert "| lp_ft - auto |" in lines[0] and len(lines) == 3
    cells = [cell.strip() for cell in lines[2].split("|")[1:-1]]
    assert cells == ["jax", "96", "photos", "5", "0,1", "0.400", "0.550", "0.650", "+0.100", "1 of 2",
                     "0.350", "+0.300"]


@pytest.mark.backend_free
def test_task_cells_are_the_mean_of_the_seeds_both_models_have_signed_so_positive_favours_transfer():
    rows = [dict(task="regression", model="transfer", train=50, seed=0, rmse=2.0),
            dict(task="regression", model="transfer", train=50, seed=1, rmse=3.0),
            dict(task="regression", model="scratch", train=50, seed=0, rmse=2.2),
            dict(task="regression", model="scratch", train=50, seed=1, rmse=2.4),  # transfer 2.5 vs 2.3: worse
            dict(task="multilabel", model="transfer", train=100, seed=0, map=0.6),
            dict(task="multilabel", model="transfer", train=100, seed=1, map=0.5),  # seed 1 has no scratch
            dict(task="multilabel", model="scratch", train=100, seed=0, map=0.4),
            dict(task="multilabel", model="transfer", train=50, seed=0, map=0.6)]  # no scratch at all: no row
    lines = task_table.table([dict(backend="jax", **r) for r in rows]).splitlines()
    cells = [[cell.strip() for cell in line.split("|")[1:-1]] for line in lines[2:]]
    assert cells == [["jax", "multi-label (mAP)", "100", "0", "0.600", "0.400", "+0.200", "yes"],
                     ["jax", "regression (RMSE, lower is better)", "50", "0,1", "2.500", "2.300", "-0.200", "no"]]
