"""Unsupervised choice of the images to annotate: the fourth ingredient of Hoyer et al.

Hoyer et al., CVPR 2021, §3.4 "Automatic data selection for annotation" (arXiv 2012.10782;
reference ``label_selection.py``, exp 211; see docs/REFERENCES.md):

* **diversity (DS)**: features of a frozen self-supervised depth network's decoder stage i = 3
  ("upconv 3"), adaptive-average-pooled to 4 × 8, standardised per channel with one mean and one
  (unbiased) std pooled over all candidates and the 4 × 8 positions (reference
  ``label_selection.py::_calc_feature_distance``, ``torch.std_mean(dim=[0, 2, 3])``), flattened;
  pairwise L2 distances d(i, j) (:func:`selection_features`, :func:`pairwise_distances`);
* **uncertainty (US)**: the depth error of a student against the depth teacher,
  err(j) = mean over **all** pixels of |log(1 + d_student) − log(1 + d_teacher)|, the masked pixels
  counting as 0 — masked are those near a teacher disparity < 0.07 (dilated 7 × 7: far and small
  objects) and the rows from ⌊0.87 · H⌋ on (ego vehicle); the teacher disparity is the per-image
  min-max normalised pseudo-depth, the scale the 0.07 is stated on (reference
  ``label_selection.py::acquire_scores`` with ``depth_error_type="abs_log"``, pseudo-depth written
  by ``loader/depth_estimator.py``) (:func:`depth_error`);
* **DS + US**: iterative farthest-point sampling on d'(i, j) = d(i, j) + λ · err(j), λ = 1000:
  repeatedly add argmax_j min_{i ∈ S} d'(i, j) (:func:`farthest_point_sampling`); the first sample
  is random (seeded) when the set starts empty. λ = 0 is pure DS.

Tensor code only: no files, no Lightning.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from leseg.components.depthmix import normalize_disparity

__all__ = ["depth_error", "farthest_point_sampling", "pairwise_distances", "selection_features"]


def selection_features(features: torch.Tensor, size: tuple[int, int] = (4, 8),
                       eps: float = 1e-6) -> torch.Tensor:
    """Pooled, standardised, flattened decoder features of the candidate pool.

    Each channel c is standardised with one mean and one std over all N candidates and all
    pooled positions: x'[n, c, y, x] = (x[n, c, y, x] − μ_c) / σ_c, σ_c the unbiased (N·h·w − 1)
    std (Hoyer et al., CVPR 2021, §3.4; reference ``label_selection.py::_calc_feature_distance``).
    Positions are not standardised separately, so a channel that is large everywhere in the
    top rows of every image keeps that spatial pattern.

    Args:
        features: (N, C, h, w) float decoder features of all N candidates.
        size: adaptive-average-pool output (4, 8).
        eps: floor of σ_c (a constant channel becomes 0).

    Returns:
        (N, C · 4 · 8) float32, flattened channel-major (c, y, x).

    Raises:
        ValueError: ``features`` is not 4-D.
    """
    if features.dim() != 4:
        raise ValueError(f"features must be (N, C, h, w), got {tuple(features.shape)}")
    x = F.adaptive_avg_pool2d(features.float(), size)
    std, mean = torch.std_mean(x, dim=(0, 2, 3), keepdim=True)
    if x[:, :1].numel() < 2:  # one value per channel: no spread to divide by
        std = torch.zeros_like(mean)
    return ((x - mean) / std.clamp(min=eps)).flatten(1)


def pairwise_distances(x: torch.Tensor) -> torch.Tensor:
    """(N, N) float64 Euclidean distances between the rows of x (N, D)."""
    x = x.double()
    return torch.cdist(x, x).fill_diagonal_(0.0)


def depth_error(disp_student: torch.Tensor, disp_teacher: torch.Tensor,
                min_teacher_disp: float = 0.07, dilation: int = 7,
                bottom_share: float = 0.13, normalize_teacher: bool = True) -> torch.Tensor:
    """Per-image depth error of a student against the depth teacher.

    err = (1 / (H·W)) · Σ_pixels keep · |log(1 + d_s) − log(1 + d_t)|: a mean over **all** pixels
    in which the masked ones count as 0, as the reference's ``torch.mean(depth_error_map)`` after
    zeroing them (``label_selection.py::acquire_scores``), not a mean over the kept pixels.
    Masked: the ``dilation`` × ``dilation`` dilation of {d_t < ``min_teacher_disp``} (far pixels,
    small far objects) and the rows from ⌊(1 − ``bottom_share``) · H⌋ on (the ego vehicle; the
    reference's ``int(0.87 · H)``).

    Args:
        disp_student: (N, 1, H, W) or (N, H, W) float disparity of the student, on the teacher's
            normalised [0, 1] scale (the reference's label-selection student is trained with berHu
            against that pseudo-depth).
        disp_teacher: same shape, the teacher's disparity. With ``normalize_teacher`` (default)
            it is min-max normalised per image first
            (:func:`leseg.components.depthmix.normalize_disparity`), which is the reference's
            pseudo-depth (``loader/depth_estimator.py`` stores (d − min) / (max − min)) and the
            scale the 0.07 threshold is stated on; False = it is already normalised. The
            reference's 8-bit PNG quantisation of the pseudo-depth is not reproduced.
        min_teacher_disp: far threshold on the (normalised) teacher disparity.
        dilation: odd size of the far-mask dilation (1 = none).
        bottom_share: share of the image rows at the bottom left out (0.13).

    Returns:
        (N,) float32, ≥ 0 (0 when every pixel is masked).

    Raises:
        ValueError: student and teacher differ in shape.
    """
    if disp_student.dim() == 3:
        disp_student, disp_teacher = disp_student[:, None], disp_teacher[:, None]
    if disp_student.shape != disp_teacher.shape:
        raise ValueError(f"student and teacher disparities differ in shape: "
                         f"{tuple(disp_student.shape)} vs {tuple(disp_teacher.shape)}")
    disp_teacher = disp_teacher.float()
    if normalize_teacher:
        disp_teacher = normalize_disparity(disp_teacher)
    far = (disp_teacher < min_teacher_disp).float()
    if dilation > 1:
        far = F.max_pool2d(far, dilation, stride=1, padding=dilation // 2)
        far = far[..., : disp_teacher.shape[-2], : disp_teacher.shape[-1]]
    keep = far < 0.5
    rows = disp_teacher.shape[-2]
    keep[..., int((1.0 - bottom_share) * rows):, :] = False
    err = (torch.log1p(disp_student.float()) - torch.log1p(disp_teacher)).abs()
    return (err * keep).flatten(1).mean(1)


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
