"""The text recipes (the image recipes with AdamW and encoder rates) and the offline text demo's data and claim:
the pretrained MiniLM beats the same architecture from random initialisation on held-out docstrings."""

import collections
import math
import socket

import pytest

from keras_transfer.text_demo import FAMILIES, compare, docstring_corpus, write_corpus
from keras_transfer.training.recipes import DataSize, RecipeOptions
from keras_transfer.training.text_recipes import TEXT_FINE_TUNE_RATE, TEXT_SCRATCH_RATE, plan_text_recipe


@pytest.mark.backend_free
def test_text_recipes_fine_tune_with_adamw_at_encoder_rates_and_one_rate_for_the_encoder():
    name, phases, why = plan_text_recipe("auto", DataSize(images=300, classes=3, batch=None))
    assert name == "lp_ft" and [p for p, _ in phases] == ["head", "fine_tune"]
    fine = phases[1][1]
    assert (fine.optimizer, fine.learning_rate, fine.layer_decay) == ("adamw", TEXT_FINE_TUNE_RATE, None)
    assert any("adamw 3e-05" in line for line in why)
    name, phases, why = plan_text_recipe("auto", DataSize(images=300, classes=3, batch=None), pretrained=False)
    assert name == "scratch" and phases[0][1].learning_rate == TEXT_SCRATCH_RATE
    assert not any("BatchNorm included" in line for line in why)
    options = RecipeOptions(fine_tune_learning_rate=5e-5)
    assert plan_text_recipe("lp_ft", DataSize(images=300, classes=3, batch=None), options)[1][1][1].learning_rate == 5e-5


@pytest.mark.backend_free
def test_the_demo_corpus_is_real_docstrings_labelled_by_their_module_family():
    rows = docstring_corpus()
    counts = collections.Counter(label for _, label in rows)
    assert set(counts) == set(FAMILIES) and min(counts.values()) >= 100
    texts = [text for text, _ in rows]
    assert len(texts) == len(set(texts))  # each paragraph once: no text in two classes
    by_text = dict(rows)
    assert by_text[" ".join(math.sqrt.__doc__.split())] == "maths"
    assert by_text[" ".join(socket.gethostname.__doc__.split("\n\n")[-1].split())] == "network"


@pytest.mark.slow
def test_pretrained_minilm_beats_the_same_architecture_from_scratch(tmp_path):
    """The demo, smaller: 3 families, 4 training and 4 validation docstrings a class, 10 held out a class, at the
    library's default batch (12 texts: batch 3, so scratch's 300 steps are 75 epochs, not 300 of one step each)."""
    source = write_corpus(str(tmp_path / "docstrings.csv"), families=("maths", "network", "time"))
    results = compare(source, per_class=4, val_per_class=4, test_per_class=10, sequence_length=24, seed=0,
                      batch_size=None)
    pretrained, scratch = results["pretrained"][0], results["scratch"][0]
    assert pretrained >= scratch + 0.2, results
    assert pretrained >= 0.6, results
