"""IoU after each simulated click, per object size, of an S5 click checkpoint (leseg extension).

NoC@85/90 (RITM's protocol, :mod:`leseg.metrics.interactive`) says how many clicks an object
needs, but at the 20-click cap it cannot tell a model that ignores its clicks from objects no model
could reach 85 % on at that resolution. This stage runs the same simulator on the first ``images``
validation frames of the checkpoint's own DataModule (its binarised target and fixed non-click
channels) with ``stop_early=False``, so every object gets all ``max_clicks`` clicks, and reports
the mean IoU after k clicks (mIoU@k, the curve interactive-segmentation papers plot beside NoC),
overall and per target-size bin, and NoC over those frames::

    python -m leseg.stages s5_noc_curve ckpt_path=<s5 click run>/checkpoints/<best>.ckpt \\
        [stage.images=20] [stage.size_bins=[1000,4000]]

Writes ``<run dir>/noc_curve.json`` (``stage.json``) and returns the summary.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch

from leseg.utils.io import atomic_write_json

__all__ = ["noc_curve", "summarise_curves"]


def summarise_curves(ious: Sequence[Sequence[float]], sizes: Sequence[int],
                     size_bins: Sequence[int] = (1000, 4000),
                     thresholds: Sequence[float] = (0.85, 0.9),
                     ks: Sequence[int] = (1, 2, 3, 5, 10, 20)) -> dict[str, Any]:
    """Mean IoU after k clicks and NoC, over all objects and per target-size bin.

    Args:
        ious: per object, the IoU after clicks 1..K (all the same length K).
        sizes: per object, its foreground pixel count (at the label's resolution).
        size_bins: ascending pixel-count edges: bins [0, e1), [e1, e2), ..., [e_last, inf).
        thresholds: IoU targets of NoC; an object that never reaches one counts K clicks.
        ks: click counts k (<= K) at which mIoU@k is reported.

    Returns:
        ``{"objects", "max_clicks", "all": part, "bins": {"<lo>-<hi>": part}}`` with each part
        ``{"objects", "mIoU@k": {k: mean}, "NoC@85": mean, "NoC_fail@85": count, ...}`` (bins
        without objects are left out).

    Raises:
        ValueError: no objects, unequal lengths, or a k beyond K.
    """
    if not ious or len(ious) != len(sizes):
        raise ValueError(f"summarise_curves: need one IoU list per object size, got {len(ious)} "
                         f"lists and {len(sizes)} sizes")
    a = np.asarray(ious, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError("summarise_curves: every object needs the same number of clicks")
    k_max = a.shape[1]
    if max(ks) > k_max:
        raise ValueError(f"summarise_curves: k = {max(ks)} beyond the {k_max} clicks made")
    sizes = np.asarray(sizes)

    def part(rows: np.ndarray) -> dict[str, Any]:
        out: dict[str, Any] = {"objects": int(len(rows)),
                               "mIoU@k": {int(k): float(rows[:, k - 1].mean()) for k in ks}}
        for t in thresholds:
            hit = rows >= t
            first = np.where(hit.any(1), hit.argmax(1) + 1, k_max)
            name = f"{round(t * 100):d}"
            out[f"NoC@{name}"] = float(first.mean())
            out[f"NoC_fail@{name}"] = int((~hit.any(1)).sum())
        return out

    edges = [0, *[int(e) for e in size_bins], None]
    bins = {}
    for lo, hi in zip(edges[:-1], edges[1:]):
        keep = (sizes >= lo) & (sizes < hi if hi is not None else True)
        if keep.any():
            bins[f"{lo}-{hi if hi is not None else 'inf'}"] = part(a[keep])
    return {"objects": int(len(a)), "max_clicks": int(k_max), "all": part(a), "bins": bins}


def noc_curve(ckpt: str | Path, images: int = 20, max_clicks: int = 20,
              size_bins: Sequence[int] = (1000, 4000), device: str | None = None,
              json: str | Path | None = None) -> dict[str, Any]:
    """Run the click simulator to ``max_clicks`` on the first ``images`` validation frames.

    Args:
        ckpt: an S5 checkpoint whose suggestion has a click part (``method.suggestion``).
        images: validation frames (first in loader order; one binarised target each).
        max_clicks: clicks per object (20, RITM's cap), all of them made.
        size_bins: pixel-count edges of the size bins (see :func:`summarise_curves`).
        device: None = cuda when available.
        json: write the summary (with the per-object curves) there, atomically.

    Returns:
        :func:`summarise_curves`'s summary, plus ``"curves"``: per object its name, size and IoUs.

    Raises:
        ValueError: the checkpoint's method has no click suggestion (names the file).
    """
    from leseg.utils.checkpoint import load_method

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    loaded = load_method(ckpt, device=device)
    module, cfg = loaded.module, loaded.config
    if not getattr(module, "has_clicks", False):
        raise ValueError(f"s5_noc_curve: {ckpt} is not an S5 model with click suggestions")
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.setup("validate")
    curves: list[dict[str, Any]] = []
    with torch.no_grad():
        for batch in datamodule.val_dataloader():
            for i in range(batch["label"].shape[0]):
                if len(curves) >= images:
                    break
                label = batch["label"][i].to(device)
                image = batch["image"][i].to(device)
                result = module.noc_object(image, label, str(batch["name"][i]),
                                           max_clicks=max_clicks, stop_early=False)
                curves.append({"name": str(batch["name"][i]), "size": int((label == 1).sum()),
                               "ious": [float(v) for v in result.ious]})
            if len(curves) >= images:
                break
    summary = summarise_curves([c["ious"] for c in curves], [c["size"] for c in curves],
                               size_bins, module.noc_thresholds,
                               [k for k in (1, 2, 3, 5, 10, 20) if k <= max_clicks])
    summary["curves"] = curves
    if json:
        atomic_write_json(json, summary)
    return {k: v for k, v in summary.items() if k != "curves"}
