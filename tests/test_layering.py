"""Imports point one way: a module imports only from its own layer or the layers below it.

The layers, lowest first (a layer may import any layer listed before it):

* floor: errors, registry, seeds, CPU resources, file writing, image decoding, figures, ``key=value`` parsing,
  devices, distributed helpers;
* models: the encoders (below the generators, because feature visualisation renders through one);
* generators;
* data: datasets on disk, readers, online streams, contact sheets;
* training parts: augmentations, losses, SSL methods;
* train and eval;
* comparison: the comparison suite;
* front ends: the package root (its lazy API), ``cli`` and ``__main__``.

Project imports also sit at module top (none inside functions), so the graph
read here is the whole graph.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "noisevision"

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("floor", ("_env", "_version", "errors", "registry", "rng", "resources", "fileio", "imagefiles", "plotting",
               "parsing", "accel", "distributed")),
    ("models", ("models",)),
    ("generators", ("generators",)),
    ("data", ("data", "sheets")),
    ("training parts", ("augment", "losses", "methods")),
    ("train/eval", ("train", "eval")),
    ("comparison", ("comparison",)),
    ("front ends", ("", "cli", "__main__")),
]


def _layer(module: str) -> int:
    """Index of the layer of a dotted ``noisevision...`` module name (the longest matching prefix)."""
    parts = module.split(".")[1:]
    for n in range(len(parts), -1, -1):
        prefix = ".".join(parts[:n])
        for i, (_, members) in enumerate(LAYERS):
            if prefix in members:
                return i
    raise AssertionError(f"{module} is in no layer: add it to LAYERS in {__file__}")


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[str, int, bool]]:
    """(imported project module, line, at module level) for every project import of a file."""
    module = _module_name(path)
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(), str(path))
    top_level = {id(node) for node in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.split(".")[0] == PACKAGE]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            if origin.split(".")[0] != PACKAGE:
                continue
            names = [f"{origin}.{a.name}" for a in node.names]
        else:
            continue
        out.extend((name, node.lineno, id(node) in top_level) for name in names)
    return out


FILES = sorted((SRC / PACKAGE).rglob("*.py"))


def test_every_module_has_a_layer():
    for path in FILES:
        _layer(_module_name(path))


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(SRC)))
def test_imports_point_down_and_sit_at_module_top(path: Path):
    module = _module_name(path)
    own = _layer(module)
    upward = [f"line {line}: {name} ({LAYERS[_layer(name)][0]})" for name, line, _ in _imports(path)
              if _layer(name) > own]
    assert not upward, f"{module} ({LAYERS[own][0]}) imports a higher layer: " + "; ".join(upward)
    nested = [f"line {line}: {name}" for name, line, top in _imports(path) if not top]
    assert not nested, f"{module} imports project modules inside functions: " + "; ".join(nested)


def test_the_checker_sees_an_upward_import(tmp_path):
    """The test itself can fail: a generator importing the training loop is reported."""
    assert _layer("noisevision.train.loop") > _layer("noisevision.generators.base")
    assert _layer("noisevision.__version__") == len(LAYERS) - 1  # the root package is a front end
