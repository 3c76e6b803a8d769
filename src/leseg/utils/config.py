"""Config helpers: the printed/saved config tree, start-up checks, and plain-container export.

Lightning 2.6 loads checkpoints with ``torch.load(weights_only=True)``; an OmegaConf ``DictConfig``
inside the saved hyper-parameters makes that fail (ANCHORS.md d-8). :func:`to_plain` converts a config
into plain ``dict``/``list``/scalars, which is what leseg stores in every checkpoint.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import rich.syntax
import rich.tree
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from leseg.utils.io import atomic_write_text
from leseg.utils.logging import get_logger

log = get_logger(__name__)

PRINT_ORDER = ("data", "model", "method", "inference", "callbacks", "logger", "trainer", "paths")


def to_plain(cfg: Any) -> Any:
    """Return ``cfg`` as plain Python containers with interpolations resolved.

    Args:
        cfg: a ``DictConfig``/``ListConfig`` or any plain value.

    Returns:
        ``dict``/``list``/scalars only (safe for ``torch.load(weights_only=True)`` and JSON).
    """
    if isinstance(cfg, DictConfig) or OmegaConf.is_config(cfg):
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    return cfg


@rank_zero_only
def print_config_tree(
    cfg: DictConfig, order: Sequence[str] = PRINT_ORDER, save_to: str | Path | None = None
) -> None:
    """Print the composed config as a rich tree (main groups first) and optionally save it.

    Args:
        cfg: the composed Hydra config.
        order: top-level keys printed first, in this order; the rest follow.
        save_to: if given, the same tree as plain text is written atomically to this file
            (``config_tree.log`` in the run directory).
    """
    tree = rich.tree.Tree("CONFIG", style="dim", guide_style="dim")
    keys = [k for k in order if k in cfg] + [k for k in cfg if k not in order]
    for key in keys:
        branch = tree.add(str(key), style="bold", guide_style="dim")
        value = cfg[key]
        text = OmegaConf.to_yaml(value, resolve=True) if isinstance(value, DictConfig) else str(value)
        branch.add(rich.syntax.Syntax(text, "yaml"))
    rich.print(tree)
    if save_to is not None:
        console = rich.console.Console(record=True, width=120, file=open("/dev/null", "w"))  # noqa: SIM115
        console.print(tree)
        atomic_write_text(save_to, console.export_text())


def extras(cfg: DictConfig) -> None:
    """Start-up conveniences driven by ``cfg.extras``: silence warnings, print and save the config."""
    opts = cfg.get("extras")
    if not opts:
        return
    if opts.get("ignore_warnings"):
        log.info("Silencing Python warnings (extras.ignore_warnings=True)")
        warnings.filterwarnings("ignore")
    if opts.get("print_config"):
        out = Path(cfg.paths.output_dir) / "config_tree.log" if cfg.get("paths") else None
        print_config_tree(cfg, save_to=out)
