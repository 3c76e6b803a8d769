"""Write test-time predictions as PNGs: class indices (trainIds) and colour renderings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from PIL import Image

from leseg.callbacks.common import colorize, dataset_info
from leseg.utils.io import atomic_write


class PredictionWriter(L.Callback):
    """Save each test prediction as ``<output_dir>/pred_trainIds/<name>.png`` (uint8 class indices,
    255 never predicted) and ``<output_dir>/pred_color/<name>.png`` (dataset palette), atomically.

    Uses the ``pred`` entry returned by ``test_step`` ((B, H, W) int64) and the batch's ``name`` list.

    Args:
        output_dir: directory that receives the two sub-folders.
        max_images: write at most this many images (None: all).
        color: also write the colour rendering.
    """

    def __init__(self, output_dir: str, max_images: int | None = None, color: bool = True) -> None:
        self.output_dir = Path(output_dir)
        self.max_images = max_images
        self.color = color
        self.written = 0

    def on_test_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any,
                          batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:  # noqa: D102
        if not isinstance(outputs, dict) or "pred" not in outputs:
            return
        _, palette = dataset_info(trainer)
        preds = outputs["pred"].cpu().numpy().astype(np.uint8)
        for name, pred in zip(batch["name"], preds, strict=True):
            if self.max_images is not None and self.written >= self.max_images:
                return
            self._save(self.output_dir / "pred_trainIds" / f"{name}.png", pred)
            if self.color:
                self._save(self.output_dir / "pred_color" / f"{name}.png", colorize(pred, palette))
            self.written += 1

    @staticmethod
    def _save(path: Path, array: np.ndarray) -> None:
        with atomic_write(path) as f:
            Image.fromarray(array).save(f, format="PNG")
