"""The identifiers of a run (experiment, method, model, data, split, seed), read from its config.

They head every ``metrics.json`` and name ``eval.py``'s run directories
(``${leseg.ckpt_info:...}``, :mod:`leseg.utils.resolvers`).
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

__all__ = ["run_info"]


def run_info(cfg: DictConfig | dict) -> dict[str, Any]:
    """The identifiers of a run: task, experiment, method, model, data, split, seed, and which
    network a mean-teacher method evaluates (``eval_net``: teacher | student; None for others).

    Args:
        cfg: a composed config or the plain training config stored in a checkpoint; missing
            entries give None (``split`` gives the string ``"None"``).
    """
    get = cfg.get
    data = get("data") or {}
    return {
        "task": get("task_name"),
        "experiment": get("experiment_name"),
        "method": (get("method") or {}).get("name"),
        "model": (get("model") or {}).get("name"),
        "data": data.get("name"),
        "split": str(data.get("split")),
        "seed": get("seed"),
        "eval_net": (get("method") or {}).get("eval_net"),
    }
