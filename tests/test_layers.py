"""Data flows one way (docs/design.md): no module imports from a stage above its own."""

from __future__ import annotations

import ast
from pathlib import Path

import algodistill

# Stages in order; a module may import from its own group and the groups above it.
LAYERS = [
    ("errors", "rng", "atomic", "jsonio", "progress", "device"),
    ("envs",),
    ("sources",),
    ("dataset",),
    ("generate",),
    ("convert",),
    ("sampler",),
    ("datasummary",),
    ("encoders", "kvcache"),
    ("model",),
    ("methods",),
    ("configs",),
    ("checkpoint",),
    ("runlog",),
    ("train",),
    ("evaluate",),
    ("stats",),
    ("tuning",),
    ("rl2",),
    ("export",),
    ("agent",),
    ("report",),
    ("presets",),
    ("stages",),
    ("pipeline",),
    ("studies",),
    ("cli",),
]
RANK = {name: i for i, group in enumerate(LAYERS) for name in group}
PACKAGE = Path(algodistill.__file__).parent


def _imports(path: Path) -> set[str]:
    """The top-level algodistill modules that `path` imports (algodistill.x.y -> x)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("algodistill."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.ImportFrom) and node.module == "algodistill":
            found.update(alias.name for alias in node.names if alias.name in RANK)
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("algodistill."))
    return found


def test_every_module_has_a_layer():
    modules = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in PACKAGE.rglob("*.py")}
    assert modules - {"__init__"} == set(RANK)


def test_no_import_goes_up_a_stage():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        if module == "__init__":  # the package itself only registers the envs
            continue
        upward += [f"{module} imports {target}" for target in _imports(path) if RANK[target] > RANK[module]]
    assert upward == []
    assert "train" not in _imports(PACKAGE / "evaluate.py")
