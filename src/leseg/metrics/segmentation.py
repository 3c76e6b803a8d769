"""Dataset-level semantic-segmentation metrics from a confusion matrix (mmsegmentation's contract).

As mmsegmentation's ``IoUMetric`` (``mmseg/evaluation/metrics/iou_metric.py``): pixels whose ground
truth equals ``ignore_index`` are dropped; intersections and unions are summed over the whole
dataset (never averaged per image); per-class IoU_c = TP_c / (TP_c + FP_c + FN_c); a class absent
from both ground truth and prediction has IoU NaN and is left out of mIoU = nanmean(IoU); a class
absent from the ground truth but predicted somewhere has IoU 0 and counts.

All counting is exact integer arithmetic (``torch.bincount`` on ``target · C + pred``), so it is
safe to run with ``torch.use_deterministic_algorithms(True)``: the flag is lifted around the count
(CUDA ``bincount`` has no "deterministic" kernel, but integer counts are order-independent).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torchmetrics import Metric

__all__ = ["SegmentationMetric", "confusion_matrix", "metrics_from_confusion"]

_MAX_LISTED_VALUES = 10


@contextmanager
def _deterministic_algorithms_off() -> Iterator[None]:
    """Temporarily allow non-deterministic kernels; restore the flag (and warn_only) afterwards."""
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    if enabled:
        torch.use_deterministic_algorithms(False)
    try:
        yield
    finally:
        if enabled:
            torch.use_deterministic_algorithms(True, warn_only=warn_only)


def _check_range(values: torch.Tensor, num_classes: int, what: str, ignore_note: str) -> None:
    bad = (values < 0) | (values >= num_classes)
    if bool(bad.any()):
        offending = torch.unique(values[bad])[:_MAX_LISTED_VALUES].tolist()
        raise ValueError(f"{what} values must lie in [0, {num_classes}){ignore_note}; found "
                         f"{offending}")


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
                     ignore_index: int = 255) -> torch.Tensor:
    """Count (ground truth, prediction) pairs over the non-ignored pixels.

    Args:
        pred: (N, ...) integer predicted class indices (trainIds) in [0, num_classes).
        target: same shape, integer ground-truth trainIds in [0, num_classes) or ``ignore_index``.
        num_classes: C.
        ignore_index: ground-truth value excluded from counting (255). Predictions at ignored
            pixels are not looked at.

    Returns:
        (C, C) int64 matrix on ``target``'s device; entry [i, j] = number of pixels with ground
        truth i predicted as j (rows = ground truth, columns = prediction).

    Raises:
        ValueError: shapes differ; float/bool inputs; num_classes < 1; a ground-truth value outside
            [0, C) ∪ {ignore_index} or a prediction (at a counted pixel) outside [0, C) — the
            message lists the offending values.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got {tuple(pred.shape)} and "
                         f"{tuple(target.shape)}")
    for name, tensor in (("pred", pred), ("target", target)):
        if tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool:
            raise ValueError(f"{name} must hold integer class indices, got dtype {tensor.dtype}")
    num_classes = int(num_classes)
    if num_classes < 1:
        raise ValueError(f"num_classes must be ≥ 1, got {num_classes}")
    target = target.reshape(-1).long()
    pred = pred.reshape(-1).long().to(target.device)
    valid = target != ignore_index
    target, pred = target[valid], pred[valid]
    _check_range(target, num_classes, "target (ground truth)", f" or be {ignore_index} (ignore)")
    _check_range(pred, num_classes, "pred (prediction)", "")
    with _deterministic_algorithms_off():
        counts = torch.bincount(target * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def metrics_from_confusion(confmat: torch.Tensor) -> dict[str, torch.Tensor]:
    """mmsegmentation's IoU / accuracy metrics of a (C, C) confusion matrix.

    Args:
        confmat: (C, C) non-negative counts, rows = ground truth, columns = prediction.

    Returns:
        Dict of float64 tensors on ``confmat``'s device, all ratios in [0, 1] (or NaN):

        - ``IoU`` (C,): TP / (TP + FP + FN); NaN for a class absent from ground truth and prediction.
        - ``mIoU`` (): nanmean of ``IoU`` (NaN if every class is NaN).
        - ``Acc`` (C,): per-class recall TP / (TP + FN); NaN for a class absent from ground truth.
        - ``mAcc`` (): nanmean of ``Acc``.
        - ``aAcc`` (): overall pixel accuracy trace / total (NaN for an empty matrix).

    Raises:
        ValueError: ``confmat`` is not a square 2-D matrix.
    """
    if confmat.ndim != 2 or confmat.shape[0] != confmat.shape[1]:
        raise ValueError(f"confusion matrix must be (C, C), got shape {tuple(confmat.shape)}")
    cm = confmat.to(torch.float64)
    tp = cm.diagonal()
    gt = cm.sum(dim=1)
    predicted = cm.sum(dim=0)
    union = gt + predicted - tp
    nan = torch.full_like(tp, float("nan"))
    iou = torch.where(union > 0, tp / union.clamp_min(1), nan)
    acc = torch.where(gt > 0, tp / gt.clamp_min(1), nan)
    total = gt.sum()
    aacc = torch.where(total > 0, tp.sum() / total.clamp_min(1), float("nan"))
    return {"aAcc": aacc, "mIoU": torch.nanmean(iou), "mAcc": torch.nanmean(acc),
            "IoU": iou, "Acc": acc}


class SegmentationMetric(Metric):
    """Dataset-level confusion-matrix mIoU as a torchmetrics ``Metric`` (DDP-safe: states summed).

    Args:
        num_classes: C (19 Cityscapes, 21 VOC).
        ignore_index: ground-truth value excluded from counting (255).
        **kwargs: passed to ``torchmetrics.Metric``.

    State: ``confmat`` (C, C) int64, summed across processes.

    ``update(preds, target)``: ``preds`` (B, H, W) integer class indices or (B, C, H, W) scores
    (logits or probabilities; argmax over C), ``target`` (B, H, W) integer trainIds with ignore.
    ``compute()``: the dict of :func:`metrics_from_confusion` (float64 tensors).

    Raises:
        ValueError (in update): scores with a channel count other than C, float preds without a
            class dimension, shape mismatches, values out of range (see :func:`confusion_matrix`).
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(self, num_classes: int, ignore_index: int = 255, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be ≥ 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.add_state("confmat", default=torch.zeros(self.num_classes, self.num_classes,
                                                      dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        """Add one batch to the confusion matrix (see the class docstring for shapes)."""
        if preds.ndim == target.ndim + 1:
            if preds.shape[1] != self.num_classes:
                raise ValueError(f"score maps have {preds.shape[1]} channels but num_classes="
                                 f"{self.num_classes}")
            preds = preds.argmax(dim=1)
        elif preds.ndim != target.ndim:
            raise ValueError(f"preds must be (B, H, W) labels or (B, C, H, W) scores for target "
                             f"{tuple(target.shape)}, got {tuple(preds.shape)}")
        cm = confusion_matrix(preds, target, self.num_classes, self.ignore_index)
        self.confmat += cm.to(self.confmat.device)

    def compute(self) -> dict[str, torch.Tensor]:
        """IoU, mIoU, Acc, mAcc, aAcc of everything accumulated so far."""
        return metrics_from_confusion(self.confmat)
