"""S4MC pseudo-labels: neighbourhood refinement, margin, dynamic partition adjustment, rescaled CE.

S4MC (Kimhi et al., "Semi-Supervised Semantic Segmentation via Marginal Contextual Information",
arXiv 2308.13900; see docs/REFERENCES.md) on the U2PL recipe, following code base A
(``s4mcontext/s4mc`` ``train_semi.py`` and ``compute_unsupervised_loss`` in
``s4mc_utils/utils/loss_helper.py``):

1. The teacher softmax ``p`` of an unlabeled image is refined with its spatial context
   (:func:`neighbour_max`, :func:`refine_probs`): ``p̃ = p + β·(q − max(p·q, p·E))``.
2. The confidence indicator is the margin top-1 − top-2 (:func:`margin`).
3. Dynamic partition adjustment (DPA): the share of pixels to drop shrinks linearly from
   ``100 − P`` % to 0 % over training (:func:`dpa_drop_percent`); the threshold is that
   percentile of the *unrefined* margin (:func:`dpa_threshold`) and is applied to the *refined*
   margin (:func:`s4mc_pseudo_labels`), so the refinement keeps more pixels.
4. The unsupervised CE is rescaled by (all valid pixels / kept pixels) (:func:`rescaled_unsup_ce`).

Everything here is a plain tensor function (no Lightning, no Hydra). Probabilities are
(B, C, H, W) float in [0, 1]; masks (B, H, W) bool; labels (B, H, W) int64 with ``ignore_index``.

Dataset prior E: the estimator (:func:`neighbour_prior`) and the published vectors
(:data:`PUBLISHED_PRIORS`, :func:`published_prior`). The reference hard-codes E in
``compute_unsupervised_loss`` (``s4mc_utils/utils/loss_helper.py`` of ``s4mcontext/s4mc``:
``pascal_E_joint``, 21 values 0.956–0.998, and ``cityscapes_E_joit``, 19 values, wall 0.832) and
uses the Cityscapes vector for every dataset that is not PASCAL. They are statistics of the
authors' full VOC / Cityscapes training labels (how they were computed is not released), valid
only for those class lists in trainId order, and a label-efficient run that reads them uses
labels beyond its split. leseg therefore estimates E on the labeled split by default (the
paper's definition) and offers the published vectors by name (``method.prior=voc|cityscapes``)
to reproduce the reference.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

#: β of the refinement, exp(−1/2) ≈ 0.6065 (S4MC paper; ``beta`` in code base A).
DEFAULT_BETA = math.exp(-0.5)
#: DPA partitions: one threshold for the batch (the paper) or one per pseudo-label class (extension)
DPA_PARTITIONS = ("global", "per_class")

#: The reference's hard-coded priors E (``s4mc_utils/utils/loss_helper.py``, s4mcontext/s4mc):
#: PASCAL VOC (21 classes, background first) and Cityscapes (19 trainIds).
PUBLISHED_PRIORS: dict[str, tuple[float, ...]] = {
    "voc": (0.9980886695132567, 0.9860495622941258, 0.9555923573386919, 0.9888166500147213,
            0.9861891841249937, 0.9894536447668415, 0.9928481727772317, 0.9899944432748093,
            0.9939554498312092, 0.9723734804881907, 0.9814734877790432, 0.992167780556063,
            0.9921082109870506, 0.9904260573555301, 0.9877020724598903, 0.9890704556150036,
            0.9771896568239452, 0.9865771364049042, 0.9878175644560833, 0.9948415228771397,
            0.993315147276186),
    "cityscapes": (0.9964431323326034, 0.9861639854327645, 0.961200350864672, 0.831981383888851,
                   0.9733805255682632, 0.9763628214927057, 0.9914859783638212,
                   0.9967060462154962, 0.9877697391019615, 0.98401636296503, 0.9905921230630785,
                   0.990570758079667, 0.9847896602829518, 0.9842767938040367,
                   0.9516618302498175, 0.9894203625002091, 0.9713330344039811,
                   0.9448128823732177, 0.9544919165416704),
}


def published_prior(name: str, num_classes: int) -> torch.Tensor:
    """The reference's prior E for ``name`` (``voc`` or ``cityscapes``) as a (K,) float64 tensor.

    Raises:
        ValueError: an unknown name, or a class count other than the vector's (21 / 19); both
            name ``method.prior``.
    """
    key = str(name).lower()
    if key not in PUBLISHED_PRIORS:
        raise ValueError(f"method.prior={name!r}: expected a list of values, null (estimate from "
                         f"the labeled split) or one of {sorted(PUBLISHED_PRIORS)}")
    values = PUBLISHED_PRIORS[key]
    if len(values) != num_classes:
        raise ValueError(f"method.prior={key} is the published {len(values)}-class vector but "
                         f"num_classes={num_classes}")
    return torch.tensor(values, dtype=torch.float64)


# (dy, dx) offsets of the neighbours of a pixel.
_OFFSETS = {
    4: ((-1, 0), (1, 0), (0, -1), (0, 1)),
    8: ((-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1)),
}
# Half of each neighbourhood (dy > 0 or dy == 0, dx > 0): every unordered pair visited once.
_HALF_OFFSETS = {4: ((0, 1), (1, 0)), 8: ((0, 1), (1, 0), (1, 1), (1, -1))}


def _check_connectivity(connectivity: int) -> None:
    if connectivity not in _OFFSETS:
        raise ValueError(f"connectivity must be 4 or 8 (pixel neighbourhood), got {connectivity!r}")


def _check_probs(probs: torch.Tensor, name: str = "probs") -> None:
    if not isinstance(probs, torch.Tensor) or probs.dim() != 4:
        shape = tuple(probs.shape) if isinstance(probs, torch.Tensor) else type(probs).__name__
        raise ValueError(f"{name} must be a (B, C, H, W) tensor, got {shape}")
    if not probs.is_floating_point():
        raise ValueError(f"{name} must be floating point, got {probs.dtype}")


def _neighbour_views(probs: torch.Tensor, connectivity: int) -> Iterator[torch.Tensor]:
    """Yield per neighbour offset a (B, C, H, W) view of that neighbour's values (0 outside)."""
    height, width = probs.shape[-2:]
    padded = F.pad(probs, (1, 1, 1, 1), mode="constant", value=0.0)
    for dy, dx in _OFFSETS[connectivity]:
        yield padded[..., 1 + dy:1 + dy + height, 1 + dx:1 + dx + width]


def neighbour_max(probs: torch.Tensor, connectivity: int = 4) -> torch.Tensor:
    """Per pixel and class, the largest class probability among the pixel's neighbours.

    ``q[b, c, y, x] = max_{(y', x') ∈ N(y, x)} probs[b, c, y', x']`` where N is the 4- or
    8-neighbourhood *without* the pixel itself; positions outside the image count as 0 (zero
    padding, as in S4MC's code base A). The maximum is taken per class, so different classes may
    take their maximum from different neighbours (S4MC code base A ``loss_helper.py``, k = 1).

    Args:
        probs: (B, C, H, W) float probabilities in [0, 1] (any real scores work, but zero padding
            only acts as "no neighbour" for non-negative inputs).
        connectivity: 4 (up, down, left, right) or 8 (plus diagonals).

    Returns:
        (B, C, H, W) tensor, same dtype and device as ``probs``.

    Raises:
        ValueError: ``probs`` is not a 4-D floating tensor or ``connectivity`` is not 4 or 8.
    """
    _check_probs(probs)
    _check_connectivity(connectivity)
    views = _neighbour_views(probs, connectivity)
    q = next(views).clone()
    for view in views:
        torch.maximum(q, view, out=q)
    return q


def neighbour_topk(probs: torch.Tensor, k: int, connectivity: int = 4) -> torch.Tensor:
    """The ``k`` largest neighbour values per pixel and class, in descending order.

    Generalises :func:`neighbour_max` (``neighbour_topk(p, 1)[0] == neighbour_max(p)``) for
    S4MC's ``n_neigbors`` ablation (k > 1). Positions outside the image count as 0.

    Args:
        probs: (B, C, H, W) float probabilities.
        k: number of neighbours kept, 1 ≤ k ≤ connectivity.
        connectivity: 4 or 8.

    Returns:
        (k, B, C, H, W) tensor; index 0 is the maximum. Uses ``connectivity``× the memory of
        ``probs`` (all neighbour views are stacked).

    Raises:
        ValueError: bad ``probs``/``connectivity``, or ``k`` outside [1, connectivity].
    """
    _check_probs(probs)
    _check_connectivity(connectivity)
    if not 1 <= k <= connectivity:
        raise ValueError(f"number of neighbours k must be in [1, {connectivity}], got {k}")
    stacked = torch.stack(list(_neighbour_views(probs, connectivity)), dim=0)
    return stacked.topk(k, dim=0).values


def _check_prior(prior: torch.Tensor | Iterable[float], num_classes: int,
                 like: torch.Tensor) -> torch.Tensor:
    prior_t = torch.as_tensor(prior, dtype=torch.float64)
    if prior_t.shape != (num_classes,):
        raise ValueError(f"prior E must have shape ({num_classes},) (one value per class), "
                         f"got {tuple(prior_t.shape)}")
    if torch.isnan(prior_t).any():
        missing = torch.nonzero(torch.isnan(prior_t)).flatten().tolist()
        raise ValueError(f"prior E is NaN for classes {missing} (never seen in the labels it was "
                         f"estimated from); re-estimate with neighbour_prior(..., fallback=value)")
    if (prior_t < 0).any() or (prior_t > 1).any():
        raise ValueError(f"prior E values must be probabilities in [0, 1], got min "
                         f"{prior_t.min().item():.4g}, max {prior_t.max().item():.4g}")
    return prior_t.to(dtype=like.dtype, device=like.device).view(1, num_classes, 1, 1)


def refine_probs(probs: torch.Tensor, prior: torch.Tensor | Iterable[float],
                 beta: float = DEFAULT_BETA, connectivity: int = 4,
                 num_neighbours: int = 1) -> torch.Tensor:
    """S4MC confidence refinement with the neighbourhood (arXiv 2308.13900; ``loss_helper.py``).

    For every pixel i and class c, with q = the class-c probability of the most likely neighbour
    (:func:`neighbour_max`) and E_c the dataset prior (probability that a neighbour of a class-c
    pixel is also class c, :func:`neighbour_prior`)::

        J_i^c = max(p_i^c · q_i^c, p_i^c · E_c)          # joint "pixel and neighbour are c"
        p̃_i^c = p_i^c + β · (q_i^c − J_i^c)              # damped union

    The result is *not* renormalised and can be lower than ``p`` when ``J > q`` (neighbour less
    likely than the prior predicts — the "dog vs cat" case of the paper). With
    ``num_neighbours`` k > 1 the update is applied sequentially with the k largest neighbour
    values, each step using the already-updated p (as code base A does).

    Args:
        probs: (B, C, H, W) float softmax probabilities in [0, 1].
        prior: E, (C,) values in [0, 1] (tensor or sequence); NaN is rejected.
        beta: damping β ≥ 0, default exp(−1/2).
        connectivity: 4 or 8.
        num_neighbours: k ≥ 1 (S4MC default 1).

    Returns:
        (B, C, H, W) refined scores p̃, same dtype/device as ``probs``. For probabilities and
        β ≤ 1 they stay in [0, 1] (p·(1 − β·E) ≤ p̃ ≤ p + β·q·(1 − p)), but the class scores of a
        pixel no longer sum to 1.

    Raises:
        ValueError: bad shapes, NaN / out-of-range prior, negative beta, bad connectivity or k.
    """
    _check_probs(probs)
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    e_prior = _check_prior(prior, probs.shape[1], probs)
    if num_neighbours == 1:
        neighbours: Iterable[torch.Tensor] = [neighbour_max(probs, connectivity)]
    else:
        neighbours = neighbour_topk(probs, num_neighbours, connectivity)
    refined = probs
    for q in neighbours:
        joint = torch.maximum(refined * q, refined * e_prior)
        refined = refined + beta * (q - joint)
    return refined


def margin(scores: torch.Tensor) -> torch.Tensor:
    """Confidence margin: highest minus second-highest class score per pixel.

    S4MC's default confidence indicator γ_i = top1(p̃_i) − top2(p̃_i) (``loss_helper.py``).

    Args:
        scores: (B, C, H, W) float scores (probabilities or refined scores), C ≥ 2.

    Returns:
        (B, H, W) float, ≥ 0 (in [0, 1] for probabilities).

    Raises:
        ValueError: not a 4-D floating tensor or fewer than 2 classes.
    """
    _check_probs(scores, "scores")
    if scores.shape[1] < 2:
        raise ValueError(f"margin needs at least 2 classes, got C={scores.shape[1]}")
    top2 = scores.topk(2, dim=1).values
    return top2[:, 0] - top2[:, 1]


def dpa_drop_percent(step: float, total: float = 1.0, drop_percent: float = 60.0) -> float:
    """Share of pixels (in %) DPA drops at a point of training: ``(100 − P)·(1 − step/total)``.

    U2PL/S4MC dynamic partition adjustment (S4MC ``train_semi.py``): with P = ``drop_percent``
    = 60 (VOC config) the dropped share falls linearly from 40 % at the start to 0 % at the end.

    Granularity is the caller's choice: the reference code evaluates it **per epoch**
    (``step`` = epoch index e, ``total`` = number of epochs E, so the last epoch still drops
    (100 − P)/E %); passing ``step`` = global iteration and ``total`` = number of iterations (or a
    progress fraction with ``total`` = 1) gives a per-iteration schedule.

    Args:
        step: epoch index, iteration index, or progress fraction; 0 ≤ step ≤ total.
        total: length of training in the same unit as ``step`` (> 0).
        drop_percent: P in [0, 100], the share *kept* at the start of training.

    Returns:
        The drop share α in percent, in [0, 100 − P].

    Raises:
        ValueError: total ≤ 0, step/total outside [0, 1], or P outside [0, 100].
    """
    if total <= 0:
        raise ValueError(f"DPA total (epochs or iterations) must be > 0, got {total}")
    progress = step / total
    if not 0.0 <= progress <= 1.0:
        raise ValueError(f"DPA progress step/total must be in [0, 1], got {step}/{total}")
    if not 0.0 <= drop_percent <= 100.0:
        raise ValueError(f"drop_percent P must be in [0, 100], got {drop_percent}")
    return (100.0 - drop_percent) * (1.0 - progress)


def percentile(values: torch.Tensor, q: float) -> torch.Tensor:
    """The q-th percentile of a set of values with numpy's default ("linear") convention.

    With the n values sorted ascending as s_0 ≤ … ≤ s_{n−1} and h = (q / 100)·(n − 1)::

        percentile = s_⌊h⌋ + (h − ⌊h⌋)·(s_⌊h⌋+1 − s_⌊h⌋)

    i.e. ``np.percentile(values, q)`` (method="linear"), which U2PL/S4MC call on CPU. Computed
    with two ``torch.kthvalue`` calls on the device, so it has no size limit (unlike
    ``torch.quantile``, which refuses more than 2^24 elements).

    Args:
        values: tensor of any shape (flattened), floating point, at least one element.
        q: percentile in [0, 100].

    Returns:
        0-d tensor, dtype/device of ``values``.

    Raises:
        ValueError: empty ``values``, non-floating dtype, or q outside [0, 100].
    """
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile q must be in [0, 100], got {q}")
    flat = values.reshape(-1)
    if flat.numel() == 0:
        raise ValueError("percentile of an empty set of values (no valid pixel)")
    if not flat.is_floating_point():
        raise ValueError(f"percentile needs floating point values, got {flat.dtype}")
    h = q / 100.0 * (flat.numel() - 1)
    lo = math.floor(h)
    frac = h - lo
    low = flat.kthvalue(lo + 1).values  # kthvalue is 1-based
    if frac == 0.0:
        return low
    high = flat.kthvalue(lo + 2).values
    return low + frac * (high - low)


def dpa_threshold(unrefined_margin: torch.Tensor, valid: torch.Tensor,
                  drop_percent: float) -> torch.Tensor:
    """DPA threshold τ: ``drop_percent``-th percentile of the unrefined margin over valid pixels.

    S4MC ``loss_helper.py``: τ_e = percentile_{α_e}(unrefined teacher margin of the batch's valid
    pixels), numpy "linear" convention (see :func:`percentile`). Pixels whose *refined* margin is
    ≤ τ are dropped by :func:`s4mc_pseudo_labels`.

    Args:
        unrefined_margin: (B, H, W) float margins of the teacher softmax (:func:`margin`).
        valid: (B, H, W) bool, False at padded / ignored pixels (excluded from the percentile).
        drop_percent: α in [0, 100] (:func:`dpa_drop_percent`).

    Returns:
        0-d tensor τ, dtype/device of ``unrefined_margin``.

    Raises:
        ValueError: shape mismatch, non-bool ``valid``, no valid pixel, or α outside [0, 100].
    """
    _check_margin_and_mask(unrefined_margin, valid)
    return percentile(unrefined_margin[valid], drop_percent)


def _check_margin_and_mask(unrefined_margin: torch.Tensor, valid: torch.Tensor) -> None:
    """Raise ValueError unless ``valid`` is a bool mask of ``unrefined_margin``'s (B, H, W) shape."""
    if valid.dtype != torch.bool:
        raise ValueError(f"valid must be a bool mask, got {valid.dtype}")
    if unrefined_margin.shape != valid.shape:
        raise ValueError(f"unrefined_margin {tuple(unrefined_margin.shape)} and valid "
                         f"{tuple(valid.shape)} must have the same (B, H, W) shape")


def dpa_threshold_per_class(unrefined_margin: torch.Tensor, valid: torch.Tensor,
                            classes: torch.Tensor, drop_percent: float) -> torch.Tensor:
    """Class-balanced DPA threshold map: τ_c per pseudo-label class, written at each pixel.

    An extension beyond S4MC/U2PL (``method.dpa_partition=per_class``; the paper's partition is
    :func:`dpa_threshold`, one τ for the batch). τ_c is the ``drop_percent``-th percentile
    (numpy "linear") of the unrefined margin over the valid pixels whose pseudo-label class is c,
    so every predicted class loses the same share α of its pixels. With one global τ, classes
    whose pixels are all low-margin (thin structures: pole, traffic sign, person) are dropped
    far more than α and the student sees almost none of their pseudo-labels (the per-class
    partition of class-balanced self-training, e.g. Zou et al., ECCV 2018, "CBST").

    Args:
        unrefined_margin: (B, H, W) float margins of the teacher softmax (:func:`margin`).
        valid: (B, H, W) bool, False at padded / ignored pixels (excluded from every τ_c).
        classes: (B, H, W) int64 pseudo-label classes (values at invalid pixels are not read).
        drop_percent: α in [0, 100] (:func:`dpa_drop_percent`).

    Returns:
        (B, H, W) float τ map, dtype/device of ``unrefined_margin``; +inf at invalid pixels.

    Raises:
        ValueError: shape mismatch, non-bool ``valid``, no valid pixel, or α outside [0, 100].
    """
    _check_margin_and_mask(unrefined_margin, valid)
    if classes.shape != valid.shape:
        raise ValueError(f"classes {tuple(classes.shape)} and valid {tuple(valid.shape)} must "
                         f"have the same (B, H, W) shape")
    if not bool(valid.any()):
        raise ValueError("percentile of an empty set of values (no valid pixel)")
    thresholds = torch.full_like(unrefined_margin, float("inf"))
    for c in classes[valid].unique().tolist():
        in_class = valid & (classes == c)
        thresholds[in_class] = percentile(unrefined_margin[in_class], drop_percent)
    return thresholds


def s4mc_pseudo_labels(
    teacher_probs: torch.Tensor,
    valid: torch.Tensor,
    prior: torch.Tensor | Iterable[float],
    progress: float,
    drop_percent: float = 60.0,
    beta: float = DEFAULT_BETA,
    connectivity: int = 4,
    ignore_index: int = 255,
    num_neighbours: int = 1,
    classes: torch.Tensor | None = None,
    partition: str = "global",
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """S4MC filtered pseudo-labels (code base A ``loss_helper.py``: margin indicator, DPA).

    1. α = :func:`dpa_drop_percent` (progress, P); τ = α-th percentile of the **unrefined**
       margin of ``teacher_probs`` over valid pixels.
    2. p̃ = :func:`refine_probs` (teacher_probs); a pixel is kept iff it is valid and its
       **refined** margin is > τ (code base A drops ``margin ≤ τ``; at α = 0, τ is the smallest
       unrefined margin, so pixels whose refined margin does not exceed it are still dropped).
    3. The class is the argmax of the **unrefined** teacher probabilities (or ``classes``), not of
       p̃; dropped and invalid pixels become ``ignore_index``.

    Runs without gradient.

    Args:
        teacher_probs: (B, C, H, W) float teacher softmax on the (mixed) unlabeled images.
        valid: (B, H, W) bool, False at padded pixels (never kept, not in the percentile).
        prior: E, (C,) neighbour prior (:func:`neighbour_prior`).
        progress: training progress in [0, 1] (e/E per epoch as in the reference, or per
            iteration), see :func:`dpa_drop_percent`.
        drop_percent: P (VOC config 60).
        beta, connectivity, num_neighbours: see :func:`refine_probs`.
        ignore_index: label written at dropped/invalid pixels (255).
        classes: optional (B, H, W) int64 pseudo-label classes to filter instead of
            ``argmax(teacher_probs)``; code base A takes them from the eval-mode teacher before
            mixing while ``teacher_probs`` come from the train-mode teacher on the mixed batch.
        partition: ``global`` (the paper: one τ for the batch) or ``per_class`` (τ_c per
            pseudo-label class, :func:`dpa_threshold_per_class`; an extension).

    Returns:
        ``(labels, keep, stats)``: labels (B, H, W) int64 in [0, C) ∪ {ignore_index};
        keep (B, H, W) bool; stats dict with 0-d tensors ``keep_ratio`` (kept / valid pixels,
        in [0, 1]), ``threshold`` (τ; with ``per_class`` the mean of τ over valid pixels; NaN
        when no pixel is valid), and the float ``drop_percent`` (α in %).

    Raises:
        ValueError: shape/dtype mismatches, bad prior/progress/P (see the helpers), or a
            ``partition`` other than global / per_class.
    """
    if partition not in DPA_PARTITIONS:
        raise ValueError(f"DPA partition must be one of {DPA_PARTITIONS}, got {partition!r}")
    _check_probs(teacher_probs, "teacher_probs")
    batch, _, height, width = teacher_probs.shape
    if valid.shape != (batch, height, width) or valid.dtype != torch.bool:
        raise ValueError(f"valid must be a bool (B, H, W) = {(batch, height, width)} mask, got "
                         f"{valid.dtype} {tuple(valid.shape)}")
    if classes is not None and classes.shape != valid.shape:
        raise ValueError(f"classes must have shape {tuple(valid.shape)}, "
                         f"got {tuple(classes.shape)}")
    alpha = dpa_drop_percent(progress, 1.0, drop_percent)
    with torch.no_grad():
        if classes is None:
            classes = teacher_probs.argmax(dim=1)
        num_valid = valid.sum()
        if not bool(num_valid > 0):
            keep = torch.zeros_like(valid)
            threshold = torch.tensor(float("nan"), dtype=teacher_probs.dtype,
                                     device=teacher_probs.device)
        else:
            unrefined = margin(teacher_probs)
            if partition == "global":
                tau = threshold = dpa_threshold(unrefined, valid, alpha)
            else:
                tau = dpa_threshold_per_class(unrefined, valid, classes, alpha)
                threshold = tau[valid].mean()
            refined = refine_probs(teacher_probs, prior, beta, connectivity, num_neighbours)
            keep = valid & (margin(refined) > tau)
        labels = torch.where(keep, classes.long(), torch.full_like(classes.long(), ignore_index))
        keep_ratio = keep.sum().to(teacher_probs.dtype) / num_valid.clamp_min(1).to(
            teacher_probs.dtype)
    stats = {"keep_ratio": keep_ratio, "threshold": threshold, "drop_percent": alpha}
    return labels, keep, stats


def rescaled_unsup_ce(student_logits: torch.Tensor, pseudo_labels: torch.Tensor,
                      valid: torch.Tensor | None = None, ignore_index: int = 255) -> torch.Tensor:
    """U2PL/S4MC-rescaled unsupervised cross-entropy (S4MC ``compute_unsupervised_loss``).

    ::

        L_u = (N_all / N_kept) · CE_mean = N_all · (Σ_{kept} CE_i) / N_kept²

    where CE_mean is the mean CE over kept pixels (label ≠ ``ignore_index``), N_kept their number
    and N_all the number of *valid* pixels (all B·H·W pixels when ``valid`` is None, exactly as
    the reference code's ``batch_size·h·w``). Note this is **not** Σ_kept CE / N_all: the factor
    N_all/N_kept ≥ 1 multiplies the mean, so the loss grows as more pixels are dropped, keeping
    its magnitude up (U2PL's rescaling). With nothing dropped it equals the plain mean CE.
    Padded pixels (``valid`` False) never enter the loss, neither as kept nor in N_all.

    Args:
        student_logits: (B, C, H, W) float student logits on the (mixed) unlabeled images, at the
            label resolution (upsample first; the reference uses bilinear, align_corners=True).
        pseudo_labels: (B, H, W) int64 in [0, C) ∪ {ignore_index} (from
            :func:`s4mc_pseudo_labels`).
        valid: optional (B, H, W) bool mask of non-padded pixels.
        ignore_index: label excluded from the loss (255).

    Returns:
        Scalar float tensor; 0 attached to the graph when no pixel is kept.

    Raises:
        ValueError: shape mismatch between logits, labels and mask, or non-bool ``valid``.
    """
    _check_probs(student_logits, "student_logits")
    batch, _, height, width = student_logits.shape
    if pseudo_labels.shape != (batch, height, width):
        raise ValueError(f"pseudo_labels must have shape (B, H, W) = {(batch, height, width)} "
                         f"matching student_logits, got {tuple(pseudo_labels.shape)}")
    if valid is None:
        num_all = torch.tensor(float(pseudo_labels.numel()), device=student_logits.device)
        kept = pseudo_labels != ignore_index
    else:
        if valid.shape != pseudo_labels.shape or valid.dtype != torch.bool:
            raise ValueError(f"valid must be a bool mask of shape {tuple(pseudo_labels.shape)}, "
                             f"got {valid.dtype} {tuple(valid.shape)}")
        num_all = valid.sum().to(student_logits.dtype)
        kept = valid & (pseudo_labels != ignore_index)
    num_kept = kept.sum()
    if not bool(num_kept > 0):
        return student_logits.sum() * 0.0
    targets = torch.where(kept, pseudo_labels.long(), torch.full_like(pseudo_labels.long(),
                                                                      ignore_index))
    ce_mean = F.cross_entropy(student_logits, targets, ignore_index=ignore_index)
    return ce_mean * (num_all.to(ce_mean.dtype) / num_kept.to(ce_mean.dtype))


def _label_batches(labels: Any) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield (index, (N, H, W) int64 tensor) from a tensor/array or an iterable of them/samples."""
    if isinstance(labels, (torch.Tensor, np.ndarray)):
        items: Iterable[Any] = [labels]
    else:
        items = labels
    for index, item in enumerate(items):
        if isinstance(item, Mapping):
            if "label" not in item:
                raise ValueError(f"label batch {index} is a mapping without a 'label' key "
                                 f"(keys: {sorted(item)})")
            item = item["label"]
        tensor = torch.as_tensor(item)
        if tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool:
            raise ValueError(f"label batch {index} must hold integer trainIds, got {tensor.dtype}")
        if tensor.dim() == 2:
            tensor = tensor.unsqueeze(0)
        if tensor.dim() != 3:
            raise ValueError(f"label batch {index} must be (H, W) or (N, H, W), got "
                             f"{tuple(tensor.shape)}")
        yield index, tensor.long()


def neighbour_prior(labels: Any, num_classes: int, ignore_index: int = 255,
                    connectivity: int = 4, fallback: float | None = None) -> torch.Tensor:
    """Estimate S4MC's dataset prior E from ground-truth masks (arXiv 2308.13900).

    E_c = P(a neighbour of a class-c pixel is also class c), counted over ordered neighbour
    pairs (i, j), j ∈ N(i), whose both ends are labeled (not ``ignore_index``)::

        E_c = #{(i, j): y_i = c, y_j = c} / #{(i, j): y_i = c, y_j ≠ ignore}

    Counts are accumulated over all batches, so a whole labeled split can be streamed (images of
    different sizes are fine; pairs never cross image borders).

    Args:
        labels: one (H, W) / (N, H, W) integer tensor or array, or an iterable of them, or of
            dataset samples / batches (mappings with a ``label`` key), e.g. a Dataset or
            DataLoader over the labeled split.
        num_classes: C; values must be in [0, C) or ``ignore_index``.
        ignore_index: label of unlabeled pixels (255).
        connectivity: 4 (the paper's definition) or 8.
        fallback: value for classes that never occur with a labeled neighbour; None (default)
            leaves them NaN, which :func:`refine_probs` rejects.

    Returns:
        (C,) float64 tensor of E_c in [0, 1] (NaN or ``fallback`` for unseen classes).

    Raises:
        ValueError: bad connectivity/num_classes/fallback, a non-integer or wrongly shaped
            batch, a label value outside [0, C) ∪ {ignore_index} (naming the batch and value),
            or no batch at all.
    """
    _check_connectivity(connectivity)
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if fallback is not None and not 0.0 <= fallback <= 1.0:
        raise ValueError(f"fallback prior must be in [0, 1], got {fallback}")
    same = torch.zeros(num_classes, dtype=torch.int64)
    total = torch.zeros(num_classes, dtype=torch.int64)
    seen_batch = False
    for index, batch in _label_batches(labels):
        seen_batch = True
        batch = batch.cpu()
        bad = (batch != ignore_index) & ((batch < 0) | (batch >= num_classes))
        if bad.any():
            value = batch[bad][0].item()
            raise ValueError(f"label batch {index} contains value {value}, expected trainIds in "
                             f"[0, {num_classes}) or ignore_index {ignore_index}")
        _, height, width = batch.shape
        for dy, dx in _HALF_OFFSETS[connectivity]:
            if dy >= height or abs(dx) >= width:
                continue
            a = batch[:, :height - dy, max(0, -dx):width - max(0, dx)]
            b = batch[:, dy:, max(0, dx):width + min(0, dx)]
            both = (a != ignore_index) & (b != ignore_index)
            a_valid, b_valid = a[both], b[both]
            equal = a_valid == b_valid
            # each unordered pair (a, b) is two ordered pairs: a's neighbour b, b's neighbour a
            same += 2 * torch.bincount(a_valid[equal], minlength=num_classes)
            total += torch.bincount(a_valid, minlength=num_classes)
            total += torch.bincount(b_valid, minlength=num_classes)
    if not seen_batch:
        raise ValueError("neighbour_prior got no label batch (empty labeled split?)")
    prior = same.double() / total.double()  # 0/0 -> NaN for classes never seen
    if fallback is not None:
        prior = torch.where(total > 0, prior, torch.full_like(prior, fallback))
    return prior
