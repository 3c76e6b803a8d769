"""Monocular depth evaluation metrics (Eigen et al., NIPS 2014; the KITTI protocol of monodepth2).

abs rel = mean |D − D*| / D*, sq rel = mean (D − D*)² / D*, RMSE = sqrt(mean (D − D*)²),
RMSE log = sqrt(mean (log D − log D*)²), δ_k = share of pixels with max(D/D*, D*/D) < 1.25^k
(k = 1, 2, 3), over valid ground-truth pixels (min_depth < D* < max_depth). Monocular depth has no
metric scale, so each prediction is first multiplied by median(D*) / median(D) over its valid
pixels (median scaling, Zhou et al. CVPR 2017; Godard et al. 2019 §4) and then clipped to
[min_depth, max_depth] (the depth cap, 80 m on KITTI).
"""

from __future__ import annotations

import torch

__all__ = ["DEPTH_METRIC_NAMES", "DepthMetric", "compute_depth_errors", "constant_depth_errors"]

DEPTH_METRIC_NAMES = ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3")
"""Keys returned by :func:`compute_depth_errors`; a1..a3 are δ < 1.25, 1.25², 1.25³."""


def _valid(gt: torch.Tensor, min_depth: float, max_depth: float,
           mask: torch.Tensor | None) -> torch.Tensor:
    valid = (gt > min_depth) & (gt < max_depth) & torch.isfinite(gt)
    return valid if mask is None else valid & mask.bool()


def compute_depth_errors(pred: torch.Tensor, gt: torch.Tensor, *, min_depth: float = 1e-3,
                         max_depth: float = 80.0, median_scaling: bool = True,
                         mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Depth errors of one image (or one flattened set of pixels).

    Args:
        pred: predicted depth (> 0), any shape; gt: ground-truth depth of the same shape, metres;
            pixels outside (min_depth, max_depth) (e.g. 0 = no LiDAR point) are ignored.
        min_depth, max_depth: valid ground-truth range and the cap applied to the prediction.
        median_scaling: scale ``pred`` by median(gt) / median(pred) over the valid pixels first.
        mask: optional extra bool mask of pixels to evaluate.

    Returns:
        dict of 0-d float64 tensors keyed by :data:`DEPTH_METRIC_NAMES` plus ``scale`` (the median
        ratio applied, 1 without median scaling) and ``count`` (valid pixels).

    Raises:
        ValueError: shapes differ, or no valid ground-truth pixel.
    """
    if pred.shape != gt.shape:
        raise ValueError(f"compute_depth_errors: pred {tuple(pred.shape)} and gt "
                         f"{tuple(gt.shape)} must have the same shape")
    valid = _valid(gt, min_depth, max_depth, mask)
    if not valid.any():
        raise ValueError(f"compute_depth_errors: no ground-truth pixel within ({min_depth}, "
                         f"{max_depth})")
    g = gt[valid].double()
    p = pred[valid].double()
    scale = torch.ones((), dtype=torch.float64, device=g.device)
    if median_scaling:
        scale = g.median() / p.median().clamp(min=1e-12)
        p = p * scale
    p = p.clamp(min_depth, max_depth)
    ratio = torch.maximum(g / p, p / g)
    out = {
        "abs_rel": ((g - p).abs() / g).mean(),
        "sq_rel": ((g - p) ** 2 / g).mean(),
        "rmse": ((g - p) ** 2).mean().sqrt(),
        "rmse_log": ((g.log() - p.log()) ** 2).mean().sqrt(),
        "a1": (ratio < 1.25).double().mean(),
        "a2": (ratio < 1.25 ** 2).double().mean(),
        "a3": (ratio < 1.25 ** 3).double().mean(),
        "scale": scale,
        "count": valid.sum().double(),
    }
    return out


def constant_depth_errors(gt: torch.Tensor, **kwargs) -> dict[str, torch.Tensor]:
    """Errors of the constant-depth baseline (a flat prediction, median-scaled to median(gt))."""
    return compute_depth_errors(torch.ones_like(gt), gt, **kwargs)


class DepthMetric:
    """Average of per-image depth errors over a dataset (the KITTI/Eigen protocol).

    Args:
        min_depth, max_depth, median_scaling: see :func:`compute_depth_errors`.

    Call :meth:`update` with batches of predicted and ground-truth depth (B, 1, H, W) or (B, H, W)
    (images without any valid pixel are skipped), then :meth:`compute`.
    """

    def __init__(self, min_depth: float = 1e-3, max_depth: float = 80.0,
                 median_scaling: bool = True) -> None:
        self.kwargs = {"min_depth": min_depth, "max_depth": max_depth,
                       "median_scaling": median_scaling}
        self.reset()

    def reset(self) -> None:
        """Forget all images."""
        self.sums = {k: 0.0 for k in DEPTH_METRIC_NAMES}
        self.baseline_abs_rel = 0.0
        self.count = 0

    def update(self, pred: torch.Tensor, gt: torch.Tensor) -> None:
        """Add the per-image errors of a batch (pred and gt of the same shape, batch first)."""
        if pred.shape != gt.shape:
            raise ValueError(f"DepthMetric.update: pred {tuple(pred.shape)} and gt "
                             f"{tuple(gt.shape)} must have the same shape")
        for p, g in zip(pred, gt):
            if not _valid(g, self.kwargs["min_depth"], self.kwargs["max_depth"], None).any():
                continue
            errors = compute_depth_errors(p, g, **self.kwargs)
            for k in DEPTH_METRIC_NAMES:
                self.sums[k] += float(errors[k])
            self.baseline_abs_rel += float(constant_depth_errors(g, **self.kwargs)["abs_rel"])
            self.count += 1

    def compute(self) -> dict[str, float]:
        """Mean of each metric over the images seen, plus ``abs_rel_constant`` (the constant-depth
        baseline's abs rel) and ``images``; NaN for every metric when no image had ground truth."""
        n = self.count
        out = {k: (v / n if n else float("nan")) for k, v in self.sums.items()}
        out["abs_rel_constant"] = self.baseline_abs_rel / n if n else float("nan")
        out["images"] = float(n)
        return out
