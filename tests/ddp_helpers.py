"""A callback the DDP tests pass to train.py subprocesses (importable with PYTHONPATH=tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch


class DumpRankState(L.Callback):
    """At the end of fit, save this rank's state dict and per-device batch sizes as
    ``<trainer.default_root_dir>/rank<global rank>.pt`` (one file per process)."""

    def __init__(self) -> None:
        self.batch_sizes: list[int] = []

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        images = batch["image"] if "image" in batch else batch["labeled"]["image"]
        self.batch_sizes.append(int(images.shape[0]))

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        state = {k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items()}
        out = Path(trainer.default_root_dir) / f"rank{trainer.global_rank}.pt"
        torch.save({"state_dict": state, "batch_sizes": self.batch_sizes,
                    "world_size": trainer.world_size}, out)
