"""A callback the S4MC DDP test passes to train.py subprocesses (importable with PYTHONPATH=tests)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L


class RecordStreamNames(L.Callback):
    """Record the image names of every training batch of this rank and, at the end of fit, write
    ``<trainer.default_root_dir>/names_rank<global rank>.json``: a list with one
    ``{"labeled": [...], "unlabeled": [...]}`` per step (semi-supervised batches)."""

    def __init__(self) -> None:
        self.steps: list[dict[str, list[str]]] = []

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        self.steps.append({k: list(v["name"]) for k, v in batch.items()})

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        out = Path(trainer.default_root_dir) / f"names_rank{trainer.global_rank}.json"
        out.write_text(json.dumps(self.steps))
