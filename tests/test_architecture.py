"""The import graph of ``src/leseg`` obeys the layering of docs/ARCHITECTURE.md.

Every ``import`` / ``from … import`` statement of every file under ``src/leseg`` (module level and
inside functions, relative imports resolved) is read with :mod:`ast`; nothing is imported, so the
check needs neither torch nor a GPU. Each top-level module of ``leseg`` belongs to one layer; an
import is an arrow from the importing file's layer to the imported module's layer. Layers, lowest
first, and the one rule each obeys:

0. ``utils`` — the ground floor: imports no other leseg package (it may use Lightning, Hydra,
   OmegaConf and wandb; checkpoint loading and config helpers live here).
1. ``data``, ``models`` — import only ``utils``; neither imports the other (a dataset never knows
   the network, a network never knows the dataset).
2. ``components``, ``inference``, ``metrics`` — tensor code: import only layers 0–2 and never
   ``lightning``, ``pytorch_lightning``, ``hydra``, ``omegaconf`` or ``wandb`` (they are
   unit-tested on hand-made tensors without a Trainer or a config).
3. ``methods``, ``callbacks`` — Lightning modules and callbacks composing layers 0–2 (and each
   other: a method may configure its EMA callback).
4. ``stages`` — offline multi-stage artefact jobs (CAMs, CRF seeds, random walk, pseudo-label
   audit, annotation selection) that may rebuild a trained method from its checkpoint.
5. ``tasks`` — ``train(cfg)`` / ``evaluate(cfg)``: launch, trainer, logger wiring.
6. entry modules — ``leseg/__init__.py``, ``__main__``, ``aggregate``, ``export``,
   ``visualize_s5``, ``results``: command-line programs on top of everything.

A lower layer must not import a higher one; within layer 1 ``data`` and ``models`` must not import
each other. Layers 2 and 3 may import within their own layer. A top-level module missing from
:data:`LAYERS` fails the check, so every new module has to be placed deliberately.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "leseg"

#: top-level module of leseg -> (rank, layer name); lower rank = lower layer.
LAYERS: dict[str, tuple[int, str]] = {
    "utils": (0, "utils"),
    "data": (1, "data"),
    "models": (1, "models"),
    "components": (2, "components"),
    "inference": (2, "inference"),
    "metrics": (2, "metrics"),
    "methods": (3, "methods"),
    "callbacks": (3, "callbacks"),
    "stages": (4, "stages"),
    "tasks": (5, "tasks"),
    "__init__": (6, "entry"),
    "__main__": (6, "entry"),
    "aggregate": (6, "entry"),
    "export": (6, "entry"),
    "visualize_s5": (6, "entry"),
    "results": (6, "entry"),
}

#: layers that must not import one another although they share a rank.
SIBLINGS_APART = {frozenset({"data", "models"})}

#: rank whose layers are tensor-only, and the frameworks they must not import.
TENSOR_RANK = 2
FRAMEWORKS = ("lightning", "pytorch_lightning", "hydra", "omegaconf", "wandb")

def _module_name(path: Path, root: Path) -> list[str]:
    """Dotted module parts of ``path`` under ``root`` (``root`` is the ``leseg`` package dir)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ["leseg", *parts]


def _top_level(module_parts: list[str]) -> str:
    """Top-level leseg module of a module inside leseg (``leseg`` alone -> ``__init__``)."""
    return module_parts[1] if len(module_parts) > 1 else "__init__"


def _imports(path: Path, root: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import statement in ``path``.

    ``from . import x`` and ``from .a import b`` are resolved against the file's package;
    ``from leseg import methods`` counts as an import of ``leseg.methods``.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    parts = _module_name(path, root)
    package = parts[:-1]  # leseg/data/x.py and leseg/data/__init__.py: package leseg.data
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module == "leseg":  # from leseg import methods -> leseg.methods
                found.extend((node.lineno, f"leseg.{alias.name}") for alias in node.names)
            else:
                found.append((node.lineno, module))
    return found


def find_violations(root: Path = SRC) -> list[tuple[str, str, str]]:
    """Every import of a file under ``root`` that breaks the layering.

    Args:
        root: the ``leseg`` package directory (``src/leseg``).

    Returns:
        Sorted ``(file, imported module, message)`` triples; ``file`` is relative to ``root``
        and ``message`` reads ``"file:line imports X (layer A -> layer B)"``. Empty when the
        graph has no upward arrow.

    Raises:
        AssertionError: a top-level module under ``root`` has no entry in :data:`LAYERS`.
    """
    out: list[tuple[str, str, str]] = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        src_top = _top_level(_module_name(path, root))
        assert src_top in LAYERS, (
            f"{rel}: top-level module {src_top!r} has no layer; add it to LAYERS in "
            f"tests/test_architecture.py")
        src_rank, src_layer = LAYERS[src_top]
        for line, module in _imports(path, root):
            first = module.split(".")[0]
            if src_rank == TENSOR_RANK and first in FRAMEWORKS:
                out.append((rel, module, f"{rel}:{line} imports {module} "
                            f"(layer {src_layer} -> framework {first}; tensor code only)"))
                continue
            if first != "leseg" or module == "leseg":
                continue
            dst_top = module.split(".")[1]
            if dst_top == src_top:
                continue
            if dst_top not in LAYERS:
                out.append((rel, module, f"{rel}:{line} imports {module} "
                            f"(layer {src_layer} -> unplaced module {dst_top!r})"))
                continue
            dst_rank, dst_layer = LAYERS[dst_top]
            upward = dst_rank > src_rank
            ground = src_rank == 0  # utils imports no other leseg package
            apart = frozenset({src_layer, dst_layer}) in SIBLINGS_APART
            if upward or ground or apart:
                out.append((rel, module, f"{rel}:{line} imports {module} "
                            f"(layer {src_layer} -> layer {dst_layer})"))
    return sorted(out)


def test_every_top_level_module_has_a_layer() -> None:
    names = {p.stem for p in SRC.glob("*.py")} | {
        p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert names - set(LAYERS) == set(), "place these modules in LAYERS"


def test_no_upward_imports() -> None:
    violations = [msg for _, _, msg in find_violations()]
    assert not violations, "layering violations:\n" + "\n".join(violations)


def test_checker_reports_each_kind_of_violation(tmp_path: Path) -> None:
    """A hand-made package with one import of each forbidden kind yields exactly those messages."""
    files = {
        "utils/__init__.py": "",
        "utils/io.py": "import os\nfrom leseg.data import labels\n",  # ground floor -> data
        "data/__init__.py": "",
        "data/labels.py": "from leseg.utils import io\nfrom ..models import net\n",  # -> sibling
        "models/__init__.py": "",
        "models/net.py": "from leseg.utils.io import x\n",  # allowed
        "metrics/__init__.py": "",
        "metrics/miou.py": "import torch\n\ndef f():\n    import lightning\n",  # framework
        "methods/__init__.py": "",
        "methods/m.py": "from leseg.metrics import miou\nfrom leseg import tasks\n",  # -> tasks
        "tasks/__init__.py": "",
        "tasks/train.py": "from leseg.methods import m\nfrom leseg.stages import s\n",
        "stages/__init__.py": "",
        "stages/s.py": "from . import x\n",
        "gizmo.py": "",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    with pytest.raises(AssertionError, match="gizmo"):
        find_violations(tmp_path)
    (tmp_path / "gizmo.py").unlink()
    assert [msg for _, _, msg in find_violations(tmp_path)] == [
        "data/labels.py:2 imports leseg.models (layer data -> layer models)",
        "methods/m.py:2 imports leseg.tasks (layer methods -> layer tasks)",
        "metrics/miou.py:4 imports lightning (layer metrics -> framework lightning; "
        "tensor code only)",
        "utils/io.py:2 imports leseg.data (layer utils -> layer data)",
    ]
