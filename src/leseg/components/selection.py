"""Unsupervised choice of the images to annotate: the fourth ingredient of Hoyer et al.

Hoyer et al., CVPR 2021, §3.4 "Automatic data selection for annotation" (arXiv 2012.10782;
reference ``label_selection.py``, exp 211; see docs/REFERENCES.md):

* **diversity (DS)**: features of a frozen self-supervised depth network's decoder stage i = 3
  ("upconv 3"), adaptive-average-pooled to 4 × 8, standardised per feature over the candidate pool,
  flattened; pairwise L2 distances d(i, j) (:func:`selection_features`, :func:`pairwise_distances`);
* **uncertainty (US)**: the depth error of a student against the depth teacher,
  err(j) = mean |log(1 + d_student) − log(1 + d_teacher)| over the image, without the pixels whose
  teacher disparity is < 0.07 (dilated 7 × 7: far and small objects) and the bottom 13 % of rows
  (ego vehicle) (:func:`depth_error`);
* **DS + US**: iterative farthest-point sampling on d'(i, j) = d(i, j) + λ · err(j), λ = 1000:
  repeatedly add argmax_j min_{i ∈ S} d'(i, j) (:func:`farthest_point_sampling`); the first sample
  is random (seeded) when the set starts empty. λ = 0 is pure DS.

Tensor code only: no files, no Lightning.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["depth_error", "farthest_point_sampling", "pairwise_distances", "selection_features"]


def selection_features(features: torch.Tensor, size: tuple[int, int] = (4, 8),
                       eps: float = 1e-6) -> torch.Tensor:
    """Pooled, standardised, flattened decoder features of the candidate pool.

    Args:
        features: (N, C, h, w) float decoder features of all N candidates.
        size: adaptive-average-pool output (4, 8).

    Returns:
        (N, C · 4 · 8) float32; every column has mean 0 and (population) std 1 over the N
        candidates (constant columns become 0).
    """
    if features.dim() != 4:
        raise ValueError(f"features must be (N, C, h, w), got {tuple(features.shape)}")
    x = F.adaptive_avg_pool2d(features.float(), size).flatten(1)
    mean = x.mean(dim=0, keepdim=True)
    std = x.std(dim=0, unbiased=False, keepdim=True)
    return (x - mean) / std.clamp(min=eps)


def pairwise_distances(x: torch.Tensor) -> torch.Tensor:
    """(N, N) float64 Euclidean distances between the rows of x (N, D)."""
    x = x.double()
    return torch.cdist(x, x).fill_diagonal_(0.0)


def depth_error(disp_student: torch.Tensor, disp_teacher: torch.Tensor,
                min_teacher_disp: float = 0.07, dilation: int = 7,
                bottom_share: float = 0.13) -> torch.Tensor:
    """Per-image depth error of a student against the depth teacher.

    Args:
        disp_student, disp_teacher: (N, 1, H, W) or (N, H, W) sigmoid disparities in (0, 1).
        min_teacher_disp: pixels with teacher disparity below it (far) are left out, after a
            ``dilation`` × ``dilation`` dilation of that mask.
        bottom_share: share of the image rows at the bottom left out (ego vehicle).

    Returns:
        (N,) float: mean |log(1 + d_s) − log(1 + d_t)| over the kept pixels (0 if none is kept).
    """
    if disp_student.dim() == 3:
        disp_student, disp_teacher = disp_student[:, None], disp_teacher[:, None]
    if disp_student.shape != disp_teacher.shape:
        raise ValueError(f"student and teacher disparities differ in shape: "
                         f"{tuple(disp_student.shape)} vs {tuple(disp_teacher.shape)}")
    far = (disp_teacher < min_teacher_disp).float()
    if dilation > 1:
        far = F.max_pool2d(far, dilation, stride=1, padding=dilation // 2)
        far = far[..., : disp_teacher.shape[-2], : disp_teacher.shape[-1]]
    keep = far < 0.5
    rows = disp_teacher.shape[-2]
    cut = rows - int(round(bottom_share * rows))
    keep[..., cut:, :] = False
    err = (torch.log1p(disp_student.float()) - torch.log1p(disp_teacher.float())).abs()
    kept = keep.flatten(1).sum(1)
    return (err * keep).flatten(1).sum(1) / kept.clamp(min=1)


def farthest_point_sampling(distances: torch.Tensor, budget: int,
                            initial: Sequence[int] = (), bias: torch.Tensor | None = None,
                            first: int | None = None,
                            generator: torch.Generator | None = None) -> list[int]:
    """Grow a set by iterative farthest-point sampling on column-biased distances.

    d'(i, j) = distances[i, j] + bias[j]; each step adds argmax_{j ∉ S} min_{i ∈ S} d'(i, j)
    (ties: the lowest index).

    Args:
        distances: (N, N) symmetric non-negative distances.
        budget: final size of the set (≥ len(initial), ≤ N).
        initial: indices already selected (kept, in order).
        bias: (N,) per-candidate bias (λ · err), None = 0.
        first: the first index when ``initial`` is empty; None = drawn with ``generator``.

    Returns:
        ``budget`` distinct indices: ``initial`` followed by the new picks in selection order.

    Raises:
        ValueError: a budget outside [len(initial), N], repeated or out-of-range initial indices.
    """
    n = distances.shape[0]
    if distances.shape != (n, n):
        raise ValueError(f"distances must be square, got {tuple(distances.shape)}")
    chosen = [int(i) for i in initial]
    if len(set(chosen)) != len(chosen) or any(not 0 <= i < n for i in chosen):
        raise ValueError(f"initial selection must hold distinct indices in [0, {n}), got {chosen}")
    if not len(chosen) <= budget <= n:
        raise ValueError(f"budget {budget} must lie between the {len(chosen)} already selected "
                         f"and the {n} candidates")
    d = distances.double()
    if bias is not None:
        d = d + bias.double().view(1, n)
    if not chosen and budget > 0:
        start = int(torch.randint(n, (1,), generator=generator)) if first is None else int(first)
        chosen.append(start)
    selected = torch.zeros(n, dtype=torch.bool)
    selected[chosen] = True
    nearest = d[chosen].min(dim=0).values if chosen else torch.full((n,), float("inf"))
    while len(chosen) < budget:
        score = nearest.masked_fill(selected, float("-inf"))
        j = int(torch.argmax(score))
        chosen.append(j)
        selected[j] = True
        nearest = torch.minimum(nearest, d[j])
    return chosen
