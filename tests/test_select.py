"""`keras-transfer select` / `select_backbones`: LogME against an independent reference, the probe, the ranking
files and plot, bad input, and the command end to end (tiny random backbones at 32 px, a few images; tiny random
BERTs saved as KerasHub preset folders, 8 tokens, for text)."""

import json
import os
import shlex

import numpy as np
import pytest
from PIL import Image

from keras_transfer import cli, select_backbones
from keras_transfer.errors import KerasTransferError
from keras_transfer.runs.select import is_text_data, resolve_candidates, resolve_weights
from keras_transfer.serving.plots import pareto_front
from keras_transfer.training.transferability import log_evidence, logme, logme_per_column, probe_score
import tiny_backbone
from conftest import write_image_folder
from test_cli import assert_one_line_error
from test_text import tiny_bert
from test_text_runs import TEXTS, _write

TINY = dict(backbones="tinyvgg", weights="none", input_size=32, views=0, folds=2, verbose=0)


def reference_evidence(f, y, iterations=100_000):
    """LogME from the paper's equations, written out with D x D matrices (no SVD): the fixed point
    gamma = sum_i beta l_i / (alpha + beta l_i) over the eigenvalues l_i of F'F, m = beta A^-1 F'y,
    alpha = gamma / m'm, beta = (n - gamma) / |F m - y|^2, then the log evidence / n."""
    n, d = f.shape
    gram, fy = f.T @ f, f.T @ y
    eigenvalues = np.linalg.eigvalsh(gram)
    alpha, beta = 1.0, 1.0
    for _ in range(iterations):
        a = alpha * np.eye(d) + beta * gram
        m = beta * np.linalg.solve(a, fy)
        gamma = np.sum(beta * eigenvalues / (alpha + beta * eigenvalues))
        new = gamma / (m @ m), (n - gamma) / np.sum((f @ m - y) ** 2)
        if np.allclose(new, (alpha, beta), rtol=1e-15, atol=0):
            break
        alpha, beta = new
    a = alpha * np.eye(d) + beta * gram
    m = beta * np.linalg.solve(a, fy)
    evidence = (n / 2 * np.log(beta) + d / 2 * np.log(alpha) - n / 2 * np.log(2 * np.pi)
                - beta / 2 * np.sum((f @ m - y) ** 2) - alpha / 2 * m @ m - np.linalg.slogdet(a)[1] / 2)
    return evidence / n


@pytest.mark.backend_free
@pytest.mark.parametrize("n, d, seed", [(30, 4, 0), (50, 8, 1), (12, 3, 2), (40, 6, 3)])
def test_log_evidence_matches_the_papers_equations_within_1e_6(n, d, seed):
    rng = np.random.default_rng(seed)
    f = rng.normal(size=(n, d)) * rng.uniform(0.5, 3, d)
    y = f @ rng.normal(size=d) * 0.5 + rng.normal(size=n)
    assert abs(log_evidence(f, y)[0] - reference_evidence(f, y)) < 1e-6


@pytest.mark.backend_free
def test_logme_averages_the_columns_of_each_task():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 40)
    one_hot = np.eye(3)[labels]
    f = one_hot @ rng.normal(size=(3, 5)) + rng.normal(size=(40, 5))  # informative: a finite optimum
    expected = np.mean([reference_evidence(f, one_hot[:, j]) for j in range(3)])
    assert abs(logme(f, labels, "classification") - expected) < 1e-6
    targets = f[:, :2] + rng.normal(size=(40, 2))
    expected = np.mean([reference_evidence(f, targets[:, j]) for j in range(2)])
    assert abs(logme(f, targets, "regression") - expected) < 1e-6
    multi = (rng.random((40, 3)) > 0.5).astype("float32")
    expected = np.mean([reference_evidence(f, multi[:, j]) for j in range(3)])
    assert abs(logme(f, multi, "multilabel") - expected) < 1e-6


@pytest.mark.backend_free
def test_logme_of_features_that_say_nothing_is_at_least_the_evidence_of_pure_noise():
    """Features unrelated to y: alpha may grow without bound (m -> 0), where the evidence tends to that of y
    as pure noise, 1/2 log(beta / 2 pi) - 1/2 with beta = n / |y|^2; the maximum is never below it."""
    rng = np.random.default_rng(0)
    for _ in range(5):
        f, y = rng.normal(size=(40, 5)), rng.normal(size=40)
        noise = 0.5 * np.log(len(y) / (y @ y) / (2 * np.pi)) - 0.5
        assert log_evidence(f, y)[0] >= noise - 1e-9
    f, y = rng.normal(size=(40, 5)), rng.normal(size=40)
    assert abs(reference_evidence(f, y, iterations=50) - log_evidence(f, y)[0]) < 1e-6


@pytest.mark.backend_free
def test_logme_and_the_probe_prefer_features_that_carry_the_labels():
    rng = np.random.default_rng(0)
    labels = np.arange(60) % 3
    good = np.eye(3)[labels] + rng.normal(0, 0.3, (60, 3))
    noise = rng.normal(size=(60, 3))
    assert logme(good, labels) > logme(noise, labels) + 0.1
    assert probe_score(good, labels, folds=3) > 0.9 > 0.6 > probe_score(noise, labels, folds=3)
    targets = good[:, :1] * 2 + rng.normal(0, 0.1, (60, 1))
    assert probe_score(good, targets, "regression") > 0.9
    assert probe_score(noise, targets, "regression") < 0.2


@pytest.mark.backend_free
def test_the_probe_trains_on_views_but_scores_the_images_alone():
    rng = np.random.default_rng(0)
    labels = np.arange(20) % 2
    images = np.eye(2)[labels] + rng.normal(0, 0.1, (20, 2))
    misleading_views = np.eye(2)[1 - labels] * 5  # views labelled the other way: they must change the fit
    assert probe_score(images, labels, folds=2) == 1.0
    assert probe_score(np.concatenate([images, misleading_views]), labels, folds=2, views=1) < 0.5


@pytest.mark.backend_free
def test_pareto_front_keeps_the_points_nothing_beats():
    assert pareto_front([0.9, 0.8, 0.7, 0.8], [10.0, 2.0, 5.0, 3.0]) == [0, 1]
    assert pareto_front([0.5], [1.0]) == [0]


@pytest.mark.backend_free
def test_candidates_and_weights_are_resolved_and_checked(tmp_path):
    assert all(name.startswith(("mobilenet", "efficientnet", "nasnet", "densenet"))
               for name in resolve_candidates() if name not in tiny_backbone.NAMES)  # the tests' own two
    assert resolve_candidates("MobileNetV2, vgg16") == ["mobilenetv2", "vgg16"]
    weights_file = tmp_path / "w.weights.h5"
    weights_file.write_bytes(b"x")
    assert resolve_weights([f"vgg16={weights_file}"], ["mobilenetv2", "vgg16"]) == {
        "mobilenetv2": "imagenet", "vgg16": str(weights_file)}
    assert resolve_weights("none", ["vgg16"]) == {"vgg16": None}
    with pytest.raises(KerasTransferError, match="Did you mean 'resnet50'"):
        resolve_candidates("resnet5")
    with pytest.raises(KerasTransferError, match="not a candidate.*Received: weights resnet50="):
        resolve_weights(["resnet50=none"], ["vgg16"])
    with pytest.raises(KerasTransferError, match="Weights file not found: /nope.h5"):
        resolve_weights(["vgg16=/nope.h5"], ["vgg16"])
    with pytest.raises(KerasTransferError, match="NAME=PATH"):
        resolve_weights(["vgg16="], ["vgg16"])


def test_select_backbones_ranks_writes_json_and_plot(tmp_path):
    data = write_image_folder(tmp_path / "data", per_class=4, size=20)
    out = tmp_path / "sel"
    selection = select_backbones(data, out, **dict(TINY, backbones="tinyvgg,tinybn", folds=5),
                                 max_images=3)
    assert selection.images == 9  # 3 classes x at most 3 images
    assert {c.backbone for c in selection.candidates} == {"tinyvgg", "tinybn"}
    ranked = [(round(c.probe, 9), c.logme) for c in selection.candidates]
    assert ranked == sorted(ranked, reverse=True)  # by the probe (the default), ties broken by LogME
    for c in selection.candidates:
        assert c.params == {"tinyvgg": 1_392, "tinybn": 3_832}[c.backbone]
        assert c.ms_per_image > 0 and c.input_size == 32 and 0 <= c.probe <= 1
        assert c.seconds >= c.features_seconds > 0
    assert any(c.pareto for c in selection.candidates)
    written = json.loads((out / "selection.json").read_text())
    assert [c["backbone"] for c in written["candidates"]] == [c.backbone for c in selection.candidates]
    assert written["probe_metric"] == "accuracy" and written["images"] == 9
    assert written["folds"] == 3  # 5 asked, 3 images a class: the folds the probe could use, said
    assert f"--backbone {selection.best.backbone}" in written["command"]
    with Image.open(out / "selection.png") as plot:
        assert plot.size[0] > 100
    table = selection.table()
    assert table.splitlines()[1].split()[1] == selection.best.backbone
    assert "Train the winner: keras-transfer train" in table


def test_select_backbones_scores_a_regression_manifest(tmp_path):
    rng = np.random.default_rng(0)
    rows = ["path,value"]
    for i in range(8):
        Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
        rows.append(f"{i}.png,{i * 0.5}")
    (tmp_path / "values.csv").write_text("\n".join(rows) + "\n")
    selection = select_backbones(str(tmp_path / "values.csv"), None, task="regression", **TINY)
    assert selection.images == 8 and np.isfinite(selection.best.logme) and np.isfinite(selection.best.probe)
    assert selection.to_dict()["probe_metric"] == "R^2"
    assert "--task regression" in selection.command


def test_cli_select_end_to_end(tmp_path, capsys):
    data = write_image_folder(tmp_path / "data", per_class=3, size=20)
    out = tmp_path / "sel"
    code = cli.main(["select", data, "--backbones", "tinyvgg", "--weights", "none", "--input-size", "32",
                     "--views", "1", "--folds", "2", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "tinyvgg" in captured.out and "Train the winner" in captured.out
    assert "18/18" in captured.out  # the progress bar: 9 images and their 9 views
    written = json.loads((out / "selection.json").read_text())
    assert written["views"] == 1 and written["candidates"][0]["feature_dim"] == 16
    assert os.path.isfile(out / "selection.png")


@pytest.mark.parametrize("extra, fragments", [
    (["--backbones", "mobilenetv3smal"], ["Unknown backbone 'mobilenetv3smal'", "Did you mean 'mobilenetv3small'"]),
    (["--backbones", "mobilenetv3small", "--weights", "mobilenetv3small=/no/such.h5"],
     ["Weights file not found: /no/such.h5"]),
    (["--backbones", "mobilenetv3small", "--weights", "vgg16=none", "--weights", "mobilenetv3small=none"],
     ["Weights are given for vgg16, which is not a candidate", "Candidates: mobilenetv3small"]),
    (["--backbones", "mobilenetv3small", "--weights", "none", "--max-images", "0"],
     ["max_images must be a positive integer", "Received: max_images=0"]),
    (["--backbones", "mobilenetv3small", "--weights", "none", "--views", "many"],
     ["--views must be 'auto' or an integer", "Received: --views many"]),
])
def test_cli_select_bad_input_is_one_line(tmp_path, capsys, extra, fragments):
    data = write_image_folder(tmp_path / "data", per_class=2, size=20)
    code = cli.main(["select", data, "--input-size", "32", "--out", str(tmp_path / "sel"), *extra])
    assert_one_line_error(code, capsys.readouterr(), *fragments)
    assert not os.path.exists(tmp_path / "sel" / "selection.json")


@pytest.mark.backend_free
def test_logme_and_probe_score_name_what_was_wrong():
    rng = np.random.default_rng(0)
    with pytest.raises(KerasTransferError, match="one label row per feature row.*Received: 4 feature rows, 3 label rows"):
        logme(rng.normal(size=(4, 3)), np.array([0, 1, 0]))
    with pytest.raises(KerasTransferError, match="task must be one of .*Received: task='ranking'"):
        logme(rng.normal(size=(4, 3)), np.array([0, 1, 0, 1]), task="ranking")
    with pytest.raises(KerasTransferError, match="needs 2 folds.*Received: 3 images, 1 fold"):
        probe_score(rng.normal(size=(3, 2)), np.array([0, 1, 1]))


@pytest.mark.backend_free
def test_logme_per_column_is_each_columns_reference_evidence():
    rng = np.random.default_rng(4)
    f = rng.normal(size=(40, 5))
    labels = np.stack([f[:, 0] + 0.3 * rng.normal(size=40) > 0, f[:, 1] + 1.5 * rng.normal(size=40) > 0],
                      axis=1).astype("float32")
    per_label = logme_per_column(f, labels, "multilabel")
    for value, column in zip(per_label, labels.T):
        assert abs(value - reference_evidence(f, column.astype("float64"))) < 1e-6
    assert per_label[0] > per_label[1]  # the label the features carry more clearly scores higher
    assert logme(f, labels, "multilabel") == pytest.approx(np.mean(per_label), abs=1e-12)


def test_select_backbones_reports_logme_per_label_for_a_multilabel_manifest(tmp_path):
    rng = np.random.default_rng(0)
    rows = ["path,labels"]
    for i in range(8):
        Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
        rows.append(f"{i}.png,{'cat|dog' if i % 3 == 0 else ('cat' if i % 2 else 'dog')}")
    (tmp_path / "tags.csv").write_text("\n".join(rows) + "\n")
    selection = select_backbones(str(tmp_path / "tags.csv"), tmp_path / "sel", task="multilabel", **TINY)
    best = selection.best
    assert selection.label_names == ["cat", "dog"] and len(best.logme_per_label) == 2
    assert best.logme == pytest.approx(np.mean(best.logme_per_label), abs=1e-12)
    assert f"LogME per label, tinyvgg: cat {best.logme_per_label[0]:.4f}" in selection.table()
    written = json.loads((tmp_path / "sel" / "selection.json").read_text())
    assert written["label_names"] == ["cat", "dog"]
    assert written["candidates"][0]["logme_per_label"] == pytest.approx(best.logme_per_label)
    assert "--task multilabel" in selection.command


def _bert_folder(root, num_layers):
    """A tiny random BERT saved as a KerasHub preset folder (encoder and preprocessor)."""
    folder = str(root / f"bert{num_layers}")
    encoder, preprocessor = tiny_bert(num_layers=num_layers)
    encoder.save_to_preset(folder)
    preprocessor.save_to_preset(folder)
    return folder


def test_text_data_is_found_by_its_files(tmp_path):
    assert is_text_data(_write(tmp_path / "texts.csv"))
    (tmp_path / "images.csv").write_text("path,label\na.png,cat\n")
    assert not is_text_data(tmp_path / "images.csv")
    (tmp_path / "folder" / "a").mkdir(parents=True)
    (tmp_path / "folder" / "a" / "1.txt").write_text("good film")
    assert is_text_data(tmp_path / "folder")
    Image.new("RGB", (4, 4)).save(tmp_path / "folder" / "a" / "2.png")
    assert not is_text_data(tmp_path / "folder")


def test_select_ranks_text_encoders_and_its_train_command_trains_the_winner(tmp_path, monkeypatch):
    source = _write(tmp_path / "texts.csv")
    folders = [_bert_folder(tmp_path, 1), _bert_folder(tmp_path, 2)]
    selection = select_backbones(source, tmp_path / "sel", backbones=",".join(folders), sequence_length=8, folds=2,
                                 max_images=6, verbose=0)
    assert selection.modality == "text" and selection.views == 0
    assert selection.images == 6 * len(TEXTS)
    assert sorted(c.backbone for c in selection.candidates) == folders
    for c in selection.candidates:
        assert c.input_size == 8 and c.feature_dim == 32 and c.weights == "pretrained"
        assert np.isfinite(c.logme) and 0 <= c.probe <= 1 and c.ms_per_image > 0
    params = {c.backbone: c.params for c in selection.candidates}
    assert params[folders[1]] > params[folders[0]]  # two transformer layers against one
    table = selection.table()
    assert "ms/text" in table.splitlines()[0] and "tokens" in table.splitlines()[0]
    assert "shifted views" not in table
    written = json.loads((tmp_path / "sel" / "selection.json").read_text())
    assert written["modality"] == "text"
    command = shlex.split(selection.command)
    assert command[:5] == ["keras-transfer", "train", source, "--modality", "text"]
    assert command[command.index("--backbone") + 1] == selection.best.backbone
    monkeypatch.chdir(tmp_path)
    assert cli.main(command[1:] + ["--validation-split", "0.25", "--seed", "0"]) == 0
    run = json.loads((tmp_path / "runs" / os.path.basename(selection.best.backbone) / "config.json").read_text())
    assert run["settings"]["modality"] == "text" and run["settings"]["sequence_length"] == 8


def test_cli_select_finds_a_text_folder_and_scores_random_encoder_weights(tmp_path, capsys):
    for label, texts in TEXTS.items():
        (tmp_path / "data" / label).mkdir(parents=True)
        for i, text in enumerate(texts[:4]):
            (tmp_path / "data" / label / f"{i}.txt").write_text(text)
    folder = _bert_folder(tmp_path, 1)
    code = cli.main(["select", str(tmp_path / "data"), "--backbones", folder, "--weights", "none",
                     "--sequence-length", "8", "--folds", "2", "--out", str(tmp_path / "sel")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"{4 * len(TEXTS)}/{4 * len(TEXTS)}" in captured.out  # the progress bar: the texts, no views
    written = json.loads((tmp_path / "sel" / "selection.json").read_text())
    assert written["modality"] == "text" and written["candidates"][0]["weights"] == "none"
    assert "--modality text" in written["command"] and "--weights none" in written["command"]


@pytest.mark.parametrize("kwargs, message", [
    (dict(input_size=32), "input_size is for images; a text encoder takes sequence_length"),
    (dict(task="regression"), "Text selection scores a classification.*Received: task='regression'"),
    (dict(views=2), "Shifted views are for images.*Received: views=2"),
    (dict(weights="/some/file.weights.h5"), "name their folder as a backbone"),
    (dict(modality="audio"), "modality must be one of auto, image, text. Received: modality='audio'"),
])
def test_text_selection_names_what_was_wrong(tmp_path, kwargs, message):
    source = _write(tmp_path / "texts.csv")
    with pytest.raises(KerasTransferError, match=message):
        select_backbones(source, None, **dict(dict(backbones="all_minilm_l6_v2", verbose=0), **kwargs))


def test_image_selection_refuses_a_sequence_length(tmp_path):
    data = write_image_folder(tmp_path / "data", per_class=2, size=20)
    with pytest.raises(KerasTransferError, match="sequence_length is for text encoders.*Received: sequence_length=8"):
        select_backbones(data, None, sequence_length=8, **TINY)
