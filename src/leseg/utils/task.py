"""The task wrapper around ``train``/``evaluate``: failures are logged, wandb is always closed.

Closing the wandb run in ``finally`` matters in multirun sweeps: without it the next job would reuse
the previous job's run (lightning-hydra-template issue #289).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig

from leseg.utils.logging import get_logger

log = get_logger(__name__)


def close_wandb() -> None:
    """Finish the active wandb run, if wandb was imported and a run is open."""
    if "wandb" in sys.modules:
        import wandb

        if wandb.run is not None:
            log.info("Closing wandb run")
            wandb.finish()


def task_wrapper(task: Callable[[DictConfig], tuple[dict, dict]]) -> Callable:
    """Decorate a task ``f(cfg) -> (metric_dict, object_dict)``.

    On exit, successful or not, the run directory is printed and wandb is closed. Exceptions are
    logged and re-raised (so a multirun stops at the failing job and the exit code is non-zero).
    """

    @functools.wraps(task)
    def wrapped(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
        try:
            return task(cfg)
        except Exception:
            log.exception("Task failed")
            raise
        finally:
            log.info(f"Output dir: {cfg.paths.output_dir}")
            print(f"Run directory: {cfg.paths.output_dir}")
            close_wandb()

    return wrapped


def get_metric_value(metric_dict: dict[str, Any], metric_name: str | None) -> float | None:
    """Return ``metric_dict[metric_name]`` as a float (for Hydra sweepers), or None if unnamed.

    Raises:
        KeyError: if the metric is named but was not logged; the message lists what was.
    """
    if not metric_name:
        return None
    if metric_name not in metric_dict:
        raise KeyError(
            f"optimized_metric={metric_name!r} was not logged; available: {sorted(metric_dict)}"
        )
    value = metric_dict[metric_name]
    return float(value.item() if hasattr(value, "item") else value)
