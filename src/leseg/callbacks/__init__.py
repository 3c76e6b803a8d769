"""Lightning callbacks: validation image logging and prediction writing."""

from leseg.callbacks.image_logger import SegmentationImageLogger
from leseg.callbacks.prediction_writer import PredictionWriter

__all__ = ["PredictionWriter", "SegmentationImageLogger"]
