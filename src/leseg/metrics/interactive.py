"""Interactive-segmentation protocol: NoC@85 / NoC@90 with RITM's click simulator.

**leseg extension — not part of S5.** S5 only reports the foreground IoU of the prediction and of
the suggestion (Magolor/S5); this module adds the standard interactive benchmark so S5-style
models can be compared with the literature (RITM ``isegm/inference/clicker.py``; Sofiiuk et al.,
"Reviving Iterative Training with Mask Guidance for Interactive Segmentation", 2021,
``isegm/inference/clicker.py`` and ``evaluation.py``).

Protocol for one object (:func:`noc`), starting from an empty prediction:

1. error regions FN = GT ∧ ¬pred and FP = ¬GT ∧ pred (ignored pixels excluded);
2. exact Euclidean distance transform of each, the image padded by 1 px so its border counts as
   boundary; already-clicked pixels get distance 0;
3. the click goes to the first (raster order) pixel of maximal distance in the region with the
   larger maximum — positive if FN's maximum is strictly larger, else negative;
4. the predictor gets all clicks so far and returns a probability map; pred = prob > 0.49;
5. IoU of pred with GT (ignored pixels excluded) is recorded; repeat up to ``max_clicks`` (20),
   stopping early once IoU >= the largest threshold.

NoC@τ is the first click count whose IoU reaches τ (``max_clicks`` if never); over objects the
mean is reported together with the number of objects that never reach τ (RITM's "NoC>20"
column; RITM's code counts NoC == max_clicks, which also includes objects reaching τ exactly at
the last click — :class:`NoCAggregator` counts only true failures).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from leseg.components.suggestions.click import encode_clicks
from leseg.components.suggestions.distance import distance_to_boundary

__all__ = [
    "Click",
    "NoCAggregator",
    "NoCResult",
    "clicks_to_maps",
    "foreground_iou",
    "next_click",
    "noc",
]


@dataclass(frozen=True)
class Click:
    """One simulated click: pixel (y, x) = (row, column); positive = on the object."""

    y: int
    x: int
    positive: bool


def _check_pair(pred: torch.Tensor, gt: torch.Tensor, ignore: torch.Tensor | None,
                who: str) -> torch.Tensor:
    """Validate (H, W) bool prediction / ground truth / ignore masks; return the valid-pixel mask."""
    for label, t in (("prediction", pred), ("ground truth", gt)):
        if not isinstance(t, torch.Tensor) or t.dtype != torch.bool or t.ndim != 2:
            got = (f"{t.dtype} {tuple(t.shape)}" if isinstance(t, torch.Tensor)
                   else type(t).__name__)
            raise ValueError(f"{who}: {label} must be an (H, W) bool tensor, got {got}")
    if pred.shape != gt.shape:
        raise ValueError(f"{who}: prediction {tuple(pred.shape)} and ground truth "
                         f"{tuple(gt.shape)} differ in shape")
    if ignore is None:
        return torch.ones_like(gt)
    if ignore.dtype != torch.bool or ignore.shape != gt.shape:
        raise ValueError(f"{who}: ignore mask must be bool {tuple(gt.shape)}, got {ignore.dtype} "
                         f"{tuple(ignore.shape)}")
    return ~ignore


def foreground_iou(pred: torch.Tensor, gt: torch.Tensor, ignore: torch.Tensor | None = None
                   ) -> float:
    """|pred ∧ gt| / |pred ∨ gt| over non-ignored pixels; 1.0 when both are empty there.

    Args:
        pred, gt: (H, W) bool. ignore: optional (H, W) bool, True = pixel not counted.
    """
    valid = _check_pair(pred, gt, ignore, "foreground_iou")
    inter = int((pred & gt & valid).sum())
    union = int(((pred | gt) & valid).sum())
    return inter / union if union else 1.0


def next_click(pred: torch.Tensor, gt: torch.Tensor, clicks: Sequence[Click] = (),
               ignore: torch.Tensor | None = None) -> Click:
    """RITM's next click for the current prediction (steps 1–3 of the module docstring).

    Args:
        pred: (H, W) bool current prediction. gt: (H, W) bool object mask.
        clicks: clicks made so far (their pixels cannot be chosen again).
        ignore: optional (H, W) bool, True = excluded from the error regions.

    Returns:
        :class:`Click` at the centre of the larger error region (ties: negative). When there is
        no error left, RITM's behaviour: a negative click at pixel (0, 0).
    """
    valid = _check_pair(pred, gt, ignore, "next_click")
    fn_dist = distance_to_boundary(gt & ~pred & valid)
    fp_dist = distance_to_boundary(~gt & pred & valid)
    if clicks:
        clicked = torch.zeros_like(gt)
        for c in clicks:
            clicked[c.y, c.x] = True
        fn_dist = fn_dist.masked_fill(clicked, 0.0)
        fp_dist = fp_dist.masked_fill(clicked, 0.0)
    fn_max, fp_max = float(fn_dist.max()), float(fp_dist.max())
    positive = fn_max > fp_max
    dist = fn_dist if positive else fp_dist
    flat = int(torch.argmax(dist))
    return Click(flat // gt.shape[1], flat % gt.shape[1], positive)


@dataclass
class NoCResult:
    """Outcome of :func:`noc` for one object.

    Attributes:
        ious: IoU after each click (length = clicks made, <= max_clicks).
        clicks: the simulated clicks in order.
        noc: {threshold: first click count reaching it, or max_clicks if never}.
        reached: {threshold: whether it was reached within max_clicks}.
    """

    ious: list[float] = field(default_factory=list)
    clicks: list[Click] = field(default_factory=list)
    noc: dict[float, int] = field(default_factory=dict)
    reached: dict[float, bool] = field(default_factory=dict)


def noc(predictor: Callable[[list[Click]], torch.Tensor], gt_mask: torch.Tensor,
        max_clicks: int = 20, thresholds: Sequence[float] = (0.85, 0.9),
        pred_threshold: float = 0.49, ignore_mask: torch.Tensor | None = None,
        stop_early: bool = True) -> NoCResult:
    """Run the RITM click protocol on one object (leseg extension, see the module docstring).

    Args:
        predictor: called with the list of all clicks so far (oldest first); returns the
            foreground probability map (H, W) float in [0, 1] (any device). Wrap a model with
            :func:`clicks_to_maps` to turn the clicks into input channels.
        gt_mask: (H, W) bool object mask with at least one (non-ignored) pixel.
        max_clicks: click budget (20).
        thresholds: IoU targets τ in (0, 1] (0.85, 0.9).
        pred_threshold: probability threshold of the prediction (RITM: 0.49).
        ignore_mask: optional (H, W) bool, True = pixel ignored by clicks and IoU.
        stop_early: stop once IoU >= max(thresholds) (RITM); False runs all ``max_clicks``.

    Returns:
        :class:`NoCResult`.

    Raises:
        ValueError: empty ground truth, bad thresholds / budget, or a predictor output of the
            wrong shape.
    """
    if max_clicks < 1:
        raise ValueError(f"noc: max_clicks must be >= 1, got {max_clicks}")
    thresholds = tuple(float(t) for t in thresholds)
    if not thresholds or not all(0.0 < t <= 1.0 for t in thresholds):
        raise ValueError(f"noc: thresholds must be IoU values in (0, 1], got {thresholds}")
    valid = _check_pair(gt_mask, gt_mask, ignore_mask, "noc")
    if not bool((gt_mask & valid).any()):
        raise ValueError("noc: the ground-truth object has no (non-ignored) pixel")
    result = NoCResult()
    pred = torch.zeros_like(gt_mask)
    for _ in range(max_clicks):
        result.clicks.append(next_click(pred, gt_mask, result.clicks, ignore_mask))
        probs = predictor(list(result.clicks))
        if not isinstance(probs, torch.Tensor) or tuple(probs.shape) != tuple(gt_mask.shape):
            got = tuple(probs.shape) if isinstance(probs, torch.Tensor) else type(probs).__name__
            raise ValueError(f"noc: predictor must return an (H, W) = {tuple(gt_mask.shape)} "
                             f"probability map, got {got}")
        pred = (probs > pred_threshold).to(gt_mask.device)
        result.ious.append(foreground_iou(pred, gt_mask, ignore_mask))
        if stop_early and result.ious[-1] >= max(thresholds):
            break
    for t in thresholds:
        hits = [k for k, iou in enumerate(result.ious) if iou >= t]
        result.reached[t] = bool(hits)
        result.noc[t] = hits[0] + 1 if hits else max_clicks
    return result


def clicks_to_maps(clicks: Sequence[Click], shape: tuple[int, int], radius: float = 5.0,
                   encoding: str = "disk", device: torch.device | str | None = None
                   ) -> torch.Tensor:
    """Encode clicks as (2, H, W) float32 (positive, negative) maps, RITM style.

    Same encodings as :func:`leseg.components.suggestions.encode_clicks` (disks of ``radius``
    px in {0, 1}, or distance maps tanh(2·d/radius)), for feeding a click-conditioned model.
    """
    pos = [(c.y, c.x) for c in clicks if c.positive]
    neg = [(c.y, c.x) for c in clicks if not c.positive]
    return torch.stack([encode_clicks(pos, shape, radius, encoding, device),
                        encode_clicks(neg, shape, radius, encoding, device)])


class NoCAggregator:
    """Mean NoC and failure counts over objects (leseg extension; plain Python, per process).

    Args:
        thresholds: IoU targets; must match those passed to :func:`noc`.
        max_clicks: the click budget used in :func:`noc` (reported as ``max_clicks``).

    ``compute()`` returns, for τ = 0.85 → ``"85"``:
    ``noc@85`` (mean NoC), ``noc_fail@85`` (objects never reaching τ), plus ``num_objects``.

    Raises:
        ValueError: ``update`` with a result lacking one of the thresholds; ``compute`` before
            any update.
    """

    def __init__(self, thresholds: Sequence[float] = (0.85, 0.9), max_clicks: int = 20) -> None:
        self.thresholds = tuple(float(t) for t in thresholds)
        self.max_clicks = int(max_clicks)
        self.reset()

    def reset(self) -> None:
        """Forget all objects."""
        self._noc: dict[float, list[int]] = {t: [] for t in self.thresholds}
        self._fail: dict[float, int] = dict.fromkeys(self.thresholds, 0)

    def update(self, result: NoCResult) -> None:
        """Add one object's :class:`NoCResult`."""
        missing = [t for t in self.thresholds if t not in result.noc]
        if missing:
            raise ValueError(f"NoCAggregator: result has no NoC for thresholds {missing}; run "
                             f"noc(..., thresholds={self.thresholds})")
        for t in self.thresholds:
            self._noc[t].append(result.noc[t])
            self._fail[t] += not result.reached[t]

    def compute(self) -> dict[str, float]:
        """``{"noc@85": mean, "noc_fail@85": count, ..., "num_objects": n}``."""
        n = len(self._noc[self.thresholds[0]]) if self.thresholds else 0
        if n == 0:
            raise ValueError("NoCAggregator: no objects were added")
        out: dict[str, float] = {}
        for t in self.thresholds:
            key = f"{round(t * 100):d}"
            out[f"noc@{key}"] = sum(self._noc[t]) / n
            out[f"noc_fail@{key}"] = float(self._fail[t])
        out["num_objects"] = float(n)
        return out
