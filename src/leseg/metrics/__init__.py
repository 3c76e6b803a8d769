"""Evaluation metrics on tensors (segmentation: confusion-matrix mIoU, mmsegmentation contract)."""

from leseg.metrics.segmentation import SegmentationMetric, confusion_matrix, metrics_from_confusion

__all__ = ["SegmentationMetric", "confusion_matrix", "metrics_from_confusion"]
