"""Build callbacks and loggers from their config groups (dicts of ``_target_`` configs)."""

from __future__ import annotations

from typing import Any

import hydra
from lightning.pytorch import Callback
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig

from leseg.utils.logging import get_logger

log = get_logger(__name__)


def _instantiate_group(cfg: DictConfig | None, kind: str) -> list[Any]:
    objects: list[Any] = []
    if not cfg:
        return objects
    if not isinstance(cfg, DictConfig):
        raise TypeError(f"`{kind}` config must be a mapping of name -> {{_target_: ...}}, got {type(cfg)}")
    for name, conf in cfg.items():
        if isinstance(conf, DictConfig) and "_target_" in conf:
            log.info(f"Instantiating {kind[:-1]} <{conf._target_}> ({name})")
            objects.append(hydra.utils.instantiate(conf))
    return objects


def instantiate_callbacks(cfg: DictConfig | None) -> list[Callback]:
    """Instantiate every entry of the ``callbacks`` group (entries without ``_target_`` are skipped)."""
    return _instantiate_group(cfg, "callbacks")


def instantiate_loggers(cfg: DictConfig | None) -> list[Logger]:
    """Instantiate every entry of the ``logger`` group; an empty group means no logger."""
    return _instantiate_group(cfg, "loggers")
