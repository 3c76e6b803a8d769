"""Evaluation-time prediction on tensors: whole image, sliding window, multi-scale + flip TTA."""

from leseg.inference.predictor import (
    MODES,
    Predictor,
    slide_inference,
    slide_windows,
    whole_inference,
)

__all__ = ["MODES", "Predictor", "slide_inference", "slide_windows", "whole_inference"]
