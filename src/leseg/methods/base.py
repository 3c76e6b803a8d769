"""Shared LightningModule logic for every segmentation method.

:class:`SegmentationModule` owns what all methods share: the optimiser with a backbone / head
learning-rate split, the per-iteration LR schedule, and validation/test with mmsegmentation's
evaluation contract (dataset-level confusion matrix, ignore 255, mIoU = mean over classes present in
ground truth or prediction). A method subclasses it and implements :meth:`training_step`.

Logged metric keys: ``train/loss``, ``val/mIoU``, ``val/mIoU_best``, ``val/aAcc``,
``val/IoU/<class>``, ``test/mIoU`` (single scale) and, when ``tta`` is configured,
``test/mIoU_ms_flip`` (multi-scale + flip, reported separately, never mixed into the headline).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn

from leseg.inference.predictor import Predictor
from leseg.methods.optim import build_optimizer, lightning_optimizers, param_groups
from leseg.metrics.segmentation import SegmentationMetric


def _predictor(inference: dict[str, Any] | None, tta: bool) -> Predictor:
    """Predictor for ``inference`` (conf/inference/): single-scale, or with ``tta`` its TTA passes.

    ``inference.scale`` (default 1.0) resizes the input before the network, as mmseg's test-time
    ``Resize``; logits are resized back to the label size, so metrics stay at the labels'
    resolution. The TTA scales are relative to it (mmseg's ms ratios multiply the test scale).

    Raises:
        ValueError: ``inference.scale`` not a positive number (and see :class:`Predictor`).
    """
    cfg = dict(inference or {})
    tta_cfg = cfg.pop("tta", None) or {}
    base = cfg.pop("scale", None)
    base = 1.0 if base is None else base
    if not isinstance(base, (int, float)) or isinstance(base, bool) or base <= 0:
        raise ValueError(f"inference.scale must be a positive number, got {base!r}")
    if tta:
        cfg["scales"] = tuple(float(base) * s for s in tta_cfg.get("scales", (1.0,)))
        cfg["flip"] = bool(tta_cfg.get("flip", False))
    else:
        cfg["scales"] = (float(base),)
    return Predictor(**cfg)


class SegmentationModule(L.LightningModule):
    """Base LightningModule: optimiser, LR schedule, evaluation.

    Args:
        net: segmentation network mapping images (B, C_in, H, W) float32 to logits
            (B, num_classes, H, W); if it has a ``backbone`` attribute, that part gets the base LR and
            the rest ``lr · head_lr_mult``.
        num_classes: K, number of classes (19 Cityscapes, 21 VOC).
        ignore_index: label value excluded from losses and metrics (255).
        optimizer: plain dict for :func:`leseg.methods.optim.build_optimizer` plus ``head_lr_mult``.
        scheduler: plain dict for :func:`leseg.methods.optim.build_scheduler` (``name``, ``power``,
            ``warmup_iters``, ...); the schedule runs per optimiser step over
            ``trainer.estimated_stepping_batches``, or per epoch over ``trainer.max_epochs`` with
            ``interval: epoch`` (:func:`leseg.methods.optim.lightning_optimizers`).
        inference: evaluation protocol (``mode`` whole|slide, ``crop_size``, ``stride``, optional
            ``tta: {scales, flip}``); see ``conf/inference/``.
        class_names: K names used in per-class metric keys (``val/IoU/<name>``).
        name: the method's short name (for logs).
    """

    def __init__(
        self,
        net: nn.Module,
        num_classes: int,
        ignore_index: int = 255,
        optimizer: dict[str, Any] | None = None,
        scheduler: dict[str, Any] | None = None,
        inference: dict[str, Any] | None = None,
        class_names: list[str] | None = None,
        name: str = "supervised",
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["net"], logger=False)
        self.net = net
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.class_names = list(class_names) if class_names else [str(i) for i in range(num_classes)]
        self._check_class_names()
        self.predictor = _predictor(inference, tta=False)
        self.has_tta = bool((inference or {}).get("tta"))
        self.predictor_tta = _predictor(inference, tta=True) if self.has_tta else None
        self.val_metric = SegmentationMetric(num_classes, ignore_index)
        self.test_metric = SegmentationMetric(num_classes, ignore_index)
        self.test_metric_tta = SegmentationMetric(num_classes, ignore_index)
        self.best_val_miou = 0.0

    def _check_class_names(self) -> None:
        if len(self.class_names) != self.num_classes:
            raise ValueError(f"{len(self.class_names)} class names given but num_classes="
                             f"{self.num_classes}: {self.class_names}")

    def setup(self, stage: str) -> None:
        """Take class names from the DataModule when none were configured."""
        names = getattr(getattr(self.trainer, "datamodule", None), "class_names", None)
        if not self.hparams.class_names and names is not None:
            self.class_names = list(names)
            self._check_class_names()

    # ------------------------------------------------------------------ model
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits (B, K, H, W) for images (B, C_in, H, W)."""
        return self.net(images)

    #: optimiser / schedule used when ``method.optimizer`` / ``method.scheduler`` are null
    DEFAULT_OPTIMIZER: dict[str, Any] = {"name": "sgd", "lr": 0.01}
    DEFAULT_SCHEDULER: dict[str, Any] = {"name": "poly", "power": 0.9}

    def configure_optimizers(self) -> dict[str, Any]:
        """Backbone/head parameter groups, the optimiser and the LR schedule (per step, or per
        epoch with ``scheduler.interval: epoch``).

        Raises:
            ValueError: an unknown optimiser, schedule or ``scheduler.interval``.
        """
        opt_cfg = dict(self.hparams.optimizer or self.DEFAULT_OPTIMIZER)
        backbone = getattr(self.net, "backbone", None)
        groups = param_groups(backbone, self.parameters(),
                              lr=opt_cfg.get("lr", self.DEFAULT_OPTIMIZER["lr"]),
                              head_lr_mult=opt_cfg.pop("head_lr_mult", 1.0))
        optimizer = build_optimizer(groups, **opt_cfg)
        return lightning_optimizers(optimizer, self.hparams.scheduler or self.DEFAULT_SCHEDULER,
                                    self.trainer)

    # ------------------------------------------------------------- evaluation
    def predict_probs(self, images: torch.Tensor, out_size: tuple[int, int] | None = None,
                      tta: bool = False) -> torch.Tensor:
        """Class probabilities (B, K, H', W') in [0, 1] with the configured inference protocol."""
        predictor = self.predictor_tta if tta and self.predictor_tta is not None else self.predictor
        return predictor(self.net, images, out_size=out_size)

    def _eval_step(self, batch: dict[str, Any], metric: SegmentationMetric, tta: bool) -> torch.Tensor:
        labels = batch["label"]
        probs = self.predict_probs(batch["image"], out_size=tuple(labels.shape[-2:]), tta=tta)
        pred = probs.argmax(dim=1)
        metric.update(pred, labels)
        return pred

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        """Single-scale prediction, accumulated into the dataset-level confusion matrix."""
        pred = self._eval_step(batch, self.val_metric, tta=False)
        return {"pred": pred}

    def _log_metrics(self, prefix: str, metric: SegmentationMetric, suffix: str = "") -> dict:
        result = dict(metric.compute())
        result["confusion_matrix"] = metric.confmat.detach().clone()
        metric.reset()
        miou = result["mIoU"].float()
        self.log(f"{prefix}/mIoU{suffix}", miou, prog_bar=True, sync_dist=False)
        self.log(f"{prefix}/aAcc{suffix}", result["aAcc"].float(), sync_dist=False)
        self.log(f"{prefix}/mAcc{suffix}", result["mAcc"].float(), sync_dist=False)
        for name, iou in zip(self.class_names, result["IoU"].tolist(), strict=True):
            if iou == iou:  # NaN: class absent from both ground truth and prediction
                self.log(f"{prefix}/IoU{suffix}/{name}", float(iou), sync_dist=False)
        return result

    def on_validation_epoch_end(self) -> None:
        """Log ``val/mIoU`` and ``val/mIoU_best`` (best so far, excluding the sanity check)."""
        result = self._log_metrics("val", self.val_metric)
        if not self.trainer.sanity_checking:
            self.best_val_miou = max(self.best_val_miou, float(result["mIoU"]))
        self.log("val/mIoU_best", self.best_val_miou, sync_dist=False)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        """Single-scale prediction, plus multi-scale + flip when ``inference.tta`` is set."""
        pred = self._eval_step(batch, self.test_metric, tta=False)
        out = {"pred": pred}
        if self.has_tta:
            out["pred_ms_flip"] = self._eval_step(batch, self.test_metric_tta, tta=True)
        return out

    def on_test_epoch_end(self) -> None:
        """Log ``test/mIoU`` and, with TTA, ``test/mIoU_ms_flip``; keep the results for eval.py."""
        self.test_results = {"single_scale": self._log_metrics("test", self.test_metric)}
        if self.has_tta:
            self.test_results["ms_flip"] = self._log_metrics("test", self.test_metric_tta, "_ms_flip")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep the best validation mIoU so a resumed run continues ``val/mIoU_best``."""
        checkpoint["leseg_best_val_miou"] = self.best_val_miou

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:  # noqa: D102
        self.best_val_miou = float(checkpoint.get("leseg_best_val_miou", 0.0))
