"""The import graph of ``src/leseg`` has no arrow from a lower layer to a higher one.

Layers (docs/ARCHITECTURE.md), top to bottom: entry points (``eval.py``, ``train.py``,
``leseg/*.py`` commands) → ``tasks`` → ``methods`` → ``callbacks`` → ``components``, ``inference``,
``metrics``, ``stages`` → ``models``, ``data`` → ``utils``. A package may import its own layer and
the layers below; ``utils`` imports no other leseg package. Every ``import`` statement counts,
also those inside functions (a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "leseg"

LAYER = {"utils": 0, "data": 1, "models": 1, "components": 2, "inference": 2, "metrics": 2,
         "stages": 2, "callbacks": 3, "methods": 4, "tasks": 5}
"""Layer of each package; top-level modules of ``leseg`` (commands) are entry points, above all."""


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every absolute ``leseg.*`` import in a file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
            if node.module == "leseg":
                out += [(node.lineno, f"leseg.{a.name}") for a in node.names]
    return [(line, m) for line, m in out if m.startswith("leseg.")]


def upward_imports(src: Path = SRC) -> list[str]:
    """``file:line: <package> imports <module>`` for every import of a higher layer."""
    bad = []
    for path in sorted(src.rglob("*.py")):
        rel = path.relative_to(src)
        if len(rel.parts) == 1:
            continue  # leseg/__init__.py and the command modules are entry points
        pkg = rel.parts[0]
        assert pkg in LAYER, f"{path}: package {pkg!r} has no layer in tests/test_layering.py"
        for line, module in _imports(path):
            target = module.split(".")[1]
            if target == pkg:
                continue
            if target not in LAYER or LAYER[target] > LAYER[pkg] or pkg == "utils":
                bad.append(f"{rel}:{line}: {pkg} imports {module}")
    return bad


def test_no_lower_layer_imports_a_higher_one() -> None:
    assert upward_imports() == []


def test_the_check_finds_an_upward_import(tmp_path: Path) -> None:
    (tmp_path / "utils").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "utils" / "x.py").write_text("def f():\n    from leseg.data.io import read_label\n")
    (tmp_path / "data" / "y.py").write_text("import leseg.utils.io\nfrom leseg import stages\n")
    assert upward_imports(tmp_path) == ["data/y.py:2: data imports leseg.stages",
                                        "utils/x.py:2: utils imports leseg.data.io"]
