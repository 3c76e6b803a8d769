"""Log a few validation images with predicted and true masks (wandb overlays, TensorBoard grids)."""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

from leseg.callbacks.common import colorize, dataset_info, denormalize


class SegmentationImageLogger(L.Callback):
    """Collect the first ``num_images`` validation samples each epoch and log them.

    wandb: ``val/predictions`` as images with ``predictions`` and ``ground_truth`` mask overlays
    (class names as labels, 255 shown as ``ignore``). TensorBoard: image | prediction | ground truth
    side by side. Other loggers: nothing. Only global rank 0 logs.

    Args:
        num_images: how many validation images to log per validation epoch (0 disables).
    """

    def __init__(self, num_images: int = 4) -> None:
        self.num_images = num_images
        self._buffer: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:  # noqa: D102
        self._buffer = []

    def on_validation_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                                outputs: Any, batch: Any, batch_idx: int,
                                dataloader_idx: int = 0) -> None:  # noqa: D102
        if (trainer.sanity_checking or not trainer.is_global_zero
                or len(self._buffer) >= self.num_images or not isinstance(outputs, dict)):
            return
        preds = outputs.get("pred")
        if preds is None:
            return
        for i in range(preds.shape[0]):
            if len(self._buffer) >= self.num_images:
                break
            label = batch["label"][i].cpu().numpy()
            image = denormalize(batch["image"][i])
            if image.shape[:2] != label.shape:
                continue
            self._buffer.append((image, preds[i].cpu().numpy().astype(np.uint8), label))

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:  # noqa: D102
        if not self._buffer or not trainer.is_global_zero:
            return
        names, palette = dataset_info(trainer)
        class_labels = {i: n for i, n in enumerate(names or [])}
        class_labels[255] = "ignore"
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(
                    key="val/predictions",
                    images=[img for img, _, _ in self._buffer],
                    masks=[{"predictions": {"mask_data": p, "class_labels": class_labels},
                            "ground_truth": {"mask_data": g, "class_labels": class_labels}}
                           for _, p, g in self._buffer],
                    step=trainer.global_step,
                )
            elif isinstance(logger, TensorBoardLogger):
                for k, (img, p, g) in enumerate(self._buffer):
                    grid = np.concatenate([img, colorize(p, palette), colorize(g, palette)], axis=1)
                    logger.experiment.add_image(f"val/predictions/{k}", grid, trainer.global_step,
                                                dataformats="HWC")
        self._buffer = []
