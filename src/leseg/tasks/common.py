"""Pieces shared by the train and eval tasks: run metadata, launch checks, checkpoint loading."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig


def run_info(cfg: DictConfig | dict) -> dict[str, Any]:
    """The identifiers of a run: experiment, method, model, data, split, seed (for metrics.json)."""
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
    }


def is_multirun() -> bool:
    """True inside a Hydra multirun job."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def check_launch(cfg: DictConfig) -> None:
    """Refuse a launch that cannot work: Lightning's DDP re-launch inside a Hydra multirun.

    Lightning's ``ddp`` strategy re-executes ``sys.argv`` for ranks 1..N-1; inside a multirun the
    argv still holds the sweep, so every rank would start its own sweep (ANCHORS.md d-2).

    Raises:
        ValueError: for ``-m`` together with a multi-device trainer, saying what to do instead.
    """
    trainer = cfg.get("trainer") or {}
    devices = trainer.get("devices", 1)
    multi = devices == -1 or (isinstance(devices, int) and devices > 1) or (
        not isinstance(devices, int | str) and len(devices) > 1)
    if is_multirun() and multi and str(trainer.get("strategy", "auto")).startswith("ddp"):
        raise ValueError(
            "A Hydra multirun (-m) cannot use a multi-device DDP trainer: Lightning would relaunch "
            "the whole sweep on every rank. Sweep with single-device jobs (trainer=gpu), or run each "
            "multi-GPU job on its own (python train.py trainer=ddp ...) or through a cluster "
            "launcher (hydra/launcher=submitit_slurm)."
        )


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a leseg checkpoint with ``weights_only=True`` (no code runs while loading).

    Returns:
        The checkpoint dict; ``ckpt["hyper_parameters"]["config"]`` is the training config.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a leseg checkpoint (no stored training config).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ckpt_path: no checkpoint file at {path}")
    ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    hp = ckpt.get("hyper_parameters") or {}
    if "config" not in hp:
        raise ValueError(
            f"ckpt_path={path} is not a leseg training checkpoint: it has no stored training config "
            "(hyper_parameters.config). Checkpoints written by train.py have one."
        )
    return ckpt
