"""How tests/run.sh shares the `backend_free` tests between its pytest processes (`KT_BACKEND_FREE`, read by
`conftest.pytest_collection_modifyitems`): two backends split them with none lost or run twice; one backend (`all`)
or a plain `pytest` (unset) runs every test."""

import types

import pytest

import conftest

pytestmark = pytest.mark.backend_free


class Item:
    def __init__(self, name, *markers):
        self.name, self.markers = name, set(markers)

    def get_closest_marker(self, name):
        return name if name in self.markers else None


ITEMS = [Item("model"), Item("free_first", "backend_free", "first_backend"), Item("free_second", "backend_free")]


def kept(monkeypatch, share):
    if share is None:
        monkeypatch.delenv("KT_BACKEND_FREE", raising=False)
    else:
        monkeypatch.setenv("KT_BACKEND_FREE", share)
    items, deselected = list(ITEMS), []
    config = types.SimpleNamespace(hook=types.SimpleNamespace(pytest_deselected=lambda items: deselected.extend(items)))
    conftest.pytest_collection_modifyitems(config, items)
    assert sorted(i.name for i in items + deselected) == sorted(i.name for i in ITEMS)  # each item kept or deselected
    return [item.name for item in items]


def test_two_backends_split_the_backend_free_tests_and_one_backend_runs_them_all(monkeypatch):
    assert kept(monkeypatch, "first") == ["model", "free_first"]
    assert kept(monkeypatch, "second") == ["model", "free_second"]
    assert kept(monkeypatch, "none") == ["model"]
    assert kept(monkeypatch, "all") == ["model", "free_first", "free_second"]  # BACKENDS=jax bash tests/run.sh
    assert kept(monkeypatch, None) == ["model", "free_first", "free_second"]
