"""Class activation maps: max normalisation, SSENet's scale-equivariance loss, multi-scale inference.

Sources: SSENet (Wang, Zhang, Kan, Shan, Chen, "Self-supervised Scale Equivariant Network for
Weakly Supervised Semantic Segmentation", arXiv 1909.03714, §3) and AffinityNet (Ahn & Kwak,
CVPR 2018, §3.1 and §4); reference values from ``YudeWang/SSENet-pytorch`` ``train_cls_ser.py`` /
``infer_cls_ser.py`` and ``jiwoon-ahn/psa`` ``infer_cls.py`` (see docs/REFERENCES.md).

Conventions: CAMs are float tensors (B, C, H, W) with C = 20 VOC foreground classes (no
background channel); image-level labels are multi-hot float tensors (B, C) in {0, 1}.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

__all__ = ["BG_SCORE", "CAM_SCALES", "EQ_SCALE", "aggregate_cams", "background_score",
           "cam_prediction", "classification_loss", "equivariance_loss", "max_normalize"]

EQ_SCALE = 0.3
"""SSENet's branch down-sampling rate (SSENet ``README.md`` / ``train_cls_ser.py``)."""
CAM_SCALES = (1.0, 0.5, 1.5, 2.0)
"""Scales of CAM inference, each with a horizontal flip (8 passes)."""
BG_SCORE = 0.2
"""Constant background score of the CAM-step prediction and of the random walk."""


def max_normalize(cam: torch.Tensor, labels: torch.Tensor | None = None,
                  eps: float = 1e-5) -> torch.Tensor:
    """SSENet's per-class max normalisation N(M)_c = ReLU(ReLU(M_c) − ε) / (max_xy ReLU(M_c) + ε).

    Args:
        cam: (B, C, H, W) float class maps (any sign).
        labels: optional (B, C) multi-hot; channels of absent classes (y_c = 0) are zeroed.
        eps: ε (1e-5 in the reference).

    Returns:
        (B, C, H, W) float in [0, 1), differentiable w.r.t. ``cam``.

    Raises:
        ValueError: ``cam`` not 4-D, or ``labels`` not (B, C).
    """
    if cam.ndim != 4:
        raise ValueError(f"max_normalize expects CAMs (B, C, H, W), got {tuple(cam.shape)}")
    pos = F.relu(cam)
    peak = pos.flatten(2).max(dim=2).values[..., None, None]
    out = F.relu(pos - eps) / (peak + eps)
    if labels is not None:
        if labels.shape != cam.shape[:2]:
            raise ValueError(f"labels {tuple(labels.shape)} do not match CAMs {tuple(cam.shape)}")
        out = out * labels.to(out.dtype)[..., None, None]
    return out


def classification_loss(cam: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Multilabel soft-margin loss on the global average of the (upsampled) class maps.

    L_cls = mean_c −[y_c log σ(s_c) + (1 − y_c) log σ(−s_c)], s = GAP(M), mean over the batch.

    Args:
        cam: (B, C, H, W) raw class maps; labels: (B, C) multi-hot float.

    Returns:
        Scalar float loss.
    """
    scores = cam.mean(dim=(2, 3))
    return F.multilabel_soft_margin_loss(scores, labels.to(scores.dtype))


def equivariance_loss(cam_small: torch.Tensor, cam_full: torch.Tensor,
                      labels: torch.Tensor) -> torch.Tensor:
    """SSENet's scale-equivariance loss L_eq (arXiv 1909.03714; ``train_cls_ser.py``).

    M_r = bilinear resize of ``cam_full`` to the size of ``cam_small`` (the CAMs of the input
    rescaled by 0.3); L_eq = mean over (batch, classes, pixels) of (N(M_s) − N(M_r))² with
    :func:`max_normalize` and absent classes zeroed. Gradients flow into both branches. The mean
    runs over all C channels, so its scale depends on the number of classes per image (reference
    behaviour, ``train_cls_ser.py``).

    Args:
        cam_small: (B, C, h, w) raw CAMs of the small input.
        cam_full: (B, C, H, W) raw CAMs of the full input.
        labels: (B, C) multi-hot.

    Returns:
        Scalar float loss ≥ 0.
    """
    resized = F.interpolate(cam_full, size=cam_small.shape[-2:], mode="bilinear",
                            align_corners=False)
    diff = max_normalize(cam_small, labels) - max_normalize(resized, labels)
    return diff.pow(2).mean()


def aggregate_cams(cam_fn: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor,
                   labels: torch.Tensor, scales: Sequence[float] = CAM_SCALES,
                   flip: bool = True, eps: float = 1e-5, batch_flips: bool = True) -> torch.Tensor:
    """Multi-scale + flip CAM inference with per-class max normalisation (``infer_cls_ser.py``).

    For each scale s (and its horizontal flip) the image is resized (bicubic; the reference
    resizes the PIL image bicubically before normalisation), ``ReLU(cam_fn(x_s))`` is upsampled
    bilinearly to (H, W), un-flipped and summed; absent classes are zeroed and each class map is
    divided by its spatial maximum (+ε). With ``batch_flips`` an image and its flip go through
    ``cam_fn`` as one batch of 2B (one forward pass per scale instead of two; the sum runs in the
    same order). Scales are not batched: their sizes differ, and padding them to one size would
    change the maps near the border.

    Args:
        cam_fn: maps images (B, 3, h, w) to raw class maps (B, C, h', w') (any resolution); it
            must treat the batch items independently (eval mode) for ``batch_flips``.
        image: (B, 3, H, W) float normalised images.
        labels: (B, C) multi-hot.
        scales: resize factors (1.0, 0.5, 1.5, 2.0).
        flip: also run the horizontally flipped image.
        batch_flips: run each scale's image and flip as one batch (False: two passes, half the
            activation memory).

    Returns:
        (B, C, H, W) float CAMs in [0, 1]; exactly 0 for absent classes.
    """
    height, width = image.shape[-2:]
    batch = image.shape[0]
    total = None

    def up(cam: torch.Tensor) -> torch.Tensor:
        return F.interpolate(F.relu(cam), size=(height, width), mode="bilinear",
                             align_corners=False)

    for scale in scales:
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        x = image if size == (height, width) else F.interpolate(
            image, size=size, mode="bicubic", align_corners=False)
        if flip and batch_flips:
            both = up(cam_fn(torch.cat([x, x.flip(-1)])))
            cams = [both[:batch], both[batch:].flip(-1)]
        else:
            cams = [up(cam_fn(x))] + ([up(cam_fn(x.flip(-1))).flip(-1)] if flip else [])
        for cam in cams:
            total = cam if total is None else total + cam
    total = total * labels.to(total.dtype)[..., None, None]
    peak = total.flatten(2).max(dim=2).values[..., None, None]
    return total / (peak + eps)


def background_score(cams: torch.Tensor, alpha: float) -> torch.Tensor:
    """AffinityNet's background score bg = (1 − max_c CAM_c)^α (psa ``infer_cls.py``).

    Args:
        cams: (..., C, H, W) normalised CAMs in [0, 1]; alpha: power (4 = "la", 24 = "ha").

    Returns:
        (..., 1, H, W) float in [0, 1].
    """
    return (1.0 - cams.amax(dim=-3, keepdim=True)).clamp_min(0).pow(alpha)


def cam_prediction(cams: torch.Tensor, bg_score: float = BG_SCORE) -> torch.Tensor:
    """CAM-step segmentation: argmax over [bg_score, CAM_1, …, CAM_C].

    Args:
        cams: (B, C, H, W) normalised CAMs in [0, 1].
        bg_score: constant background score (0.2).

    Returns:
        (B, H, W) int64 class indices 0..C (0 = background).
    """
    bg = torch.full_like(cams[:, :1], bg_score)
    return torch.cat([bg, cams], dim=1).argmax(dim=1)
