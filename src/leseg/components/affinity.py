"""Pixel affinities of AffinityNet: pair sets, affinity labels from CRF maps, the 3-term loss.

Ahn & Kwak, "Learning Pixel-level Semantic Affinity with Image-level Supervision for Weakly
Supervised Semantic Segmentation" (CVPR 2018), §3.2–3.3; reference semantics from psa
``network/resnet38_aff.py``, ``voc12/data.py`` and ``train_aff.py`` (see docs/REFERENCES.md).

Grid conventions: feature maps and label maps live on the stride-8 grid (h, w); pixels are
indexed row-major, ``i = y·w + x``. The pair set of radius r uses the half-disk offsets
(0, 1..r−1) and (1..r−1, −(r−1)..r−1) with dy² + dx² < r² (34 offsets for r = 5); "from" pixels
are the cropped region rows [0, h−r+1), columns [r−1, w−r+1) so every partner is inside the grid.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["RADIUS", "affinity", "affinity_label_pairs", "affinity_labels", "affinity_loss",
           "downsample_labels", "gather_pairs", "label_affinity", "pair_indices", "pair_offsets"]

RADIUS = 5
IGNORE = 255


def pair_offsets(radius: int = RADIUS) -> list[tuple[int, int]]:
    """Half-disk offsets (dy, dx) of the pair set, in the reference's order.

    Returns:
        (0, 1..r−1) then, for dy = 1..r−1, (dy, dx) for dx = −(r−1)..r−1 with dy² + dx² < r².

    Raises:
        ValueError: radius < 2.
    """
    if radius < 2:
        raise ValueError(f"affinity radius must be ≥ 2, got {radius}")
    r = radius - 1
    offsets = [(0, dx) for dx in range(1, radius)]
    offsets += [(dy, dx) for dy in range(1, radius) for dx in range(-r, radius)
                if dy * dy + dx * dx < radius * radius]
    return offsets


def _crop(h: int, w: int, radius: int) -> tuple[int, int, int]:
    r = radius - 1
    ch, cw = h - r, w - 2 * r
    if ch < 1 or cw < 1:
        raise ValueError(f"grid {h}x{w} is too small for affinity radius {radius} "
                         f"(needs h ≥ {radius} and w ≥ {2 * r + 1})")
    return r, ch, cw


def pair_indices(h: int, w: int, radius: int = RADIUS) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat indices of the pairs on an (h, w) grid.

    Returns:
        ``from_idx`` (N,) int64 and ``to_idx`` (K, N) int64: pair (k, n) joins pixel
        ``from_idx[n]`` and ``to_idx[k, n]``; K = len(pair_offsets(radius)),
        N = (h − r + 1)(w − 2r + 2).

    Raises:
        ValueError: the grid is smaller than the pair window.
    """
    r, ch, cw = _crop(h, w, radius)
    grid = torch.arange(h * w).view(h, w)
    src = grid[:ch, r:r + cw].reshape(-1)
    dst = torch.stack([grid[dy:dy + ch, r + dx:r + dx + cw].reshape(-1)
                       for dy, dx in pair_offsets(radius)])
    return src, dst


def gather_pairs(x: torch.Tensor, radius: int = RADIUS) -> tuple[torch.Tensor, torch.Tensor]:
    """Values of ``x`` at the from-pixels and at their K partners (by slicing, no index tensors).

    Args:
        x: (B, C, h, w) tensor (features or labels with C = 1).

    Returns:
        ``src`` (B, C, 1, N) and ``dst`` (B, C, K, N), ordered as :func:`pair_indices`.
    """
    h, w = x.shape[-2:]
    r, ch, cw = _crop(h, w, radius)
    src = x[..., :ch, r:r + cw].flatten(-2).unsqueeze(-2)
    dst = torch.stack([x[..., dy:dy + ch, r + dx:r + dx + cw].flatten(-2)
                       for dy, dx in pair_offsets(radius)], dim=-2)
    return src, dst


def affinity(features: torch.Tensor, radius: int = RADIUS) -> torch.Tensor:
    """a_ij = exp(−mean_c |f_i,c − f_j,c|) for every pair of :func:`pair_indices`.

    Args:
        features: (B, D, h, w) float per-pixel features on the stride-8 grid.

    Returns:
        (B, K, N) float in (0, 1].
    """
    src, dst = gather_pairs(features, radius)
    return torch.exp(-(dst - src).abs().mean(dim=1))


def downsample_labels(labels: torch.Tensor, factor: int = 8, num_classes: int = 21,
                      ignore_index: int = IGNORE) -> torch.Tensor:
    """Label maps to the stride-``factor`` grid: average-pool the one-hot maps, then argmax.

    Each ``factor`` × ``factor`` cell gets the **majority** of its (non-ignored) labels; ties go to
    the lowest class index. Cells with only ``ignore_index`` (padding) become ``ignore_index``.

    Deviation from the reference, kept on purpose: psa / SSENet-pytorch
    (``voc12/data.py::VOC12AffDataset``, ``imutils.AvgPool2d(8)``) average-pool the CRF *score*
    maps (marginals) and take the argmax of the pooled scores. That is not the same: a cell with
    three pixels of class 1 at score 0.6 (background 0.4) and one background pixel at score 1.0
    pools to background 0.55 vs class 0.45 (background), while the majority of the labels is
    class 1. It differs only in cells that mix classes (object boundaries), since the 10-iteration
    dense-CRF marginals are nearly one-hot elsewhere. The reason: the CRF stage stores label maps
    (one uint8 PNG per image and α), not float score maps of every present class, which would be
    (1 + #classes) × H × W float32 per image and α (about 2 MB on a 500 × 375 VOC image with 1.5
    classes, against a few kB for the PNG).

    Args:
        labels: (B, H, W) int64 in 0..num_classes−1 or ``ignore_index``.

    Returns:
        (B, ⌈H/f⌉, ⌈W/f⌉) int64.
    """
    valid = labels != ignore_index
    onehot = F.one_hot(torch.where(valid, labels, 0), num_classes).permute(0, 3, 1, 2).float()
    onehot = onehot * valid[:, None].float()
    pooled = F.avg_pool2d(onehot, factor, factor, ceil_mode=True)
    out = pooled.argmax(dim=1)
    return torch.where(pooled.amax(dim=1) > 0, out, torch.full_like(out, ignore_index))


def affinity_labels(la: torch.Tensor, ha: torch.Tensor,
                    ignore_index: int = IGNORE) -> torch.Tensor:
    """Per-pixel affinity labels from the low-α and high-α CRF label maps (psa ``voc12/data.py``).

    label = la where la is a foreground class (confident foreground); ignore where la says
    background; then background (0) wherever ha says background (confident background, this rule
    wins); ignore where either map is ``ignore_index`` (no score / padding).

    Args:
        la: (..., h, w) int64 labels of the α = 4 CRF map (0 = background, 1..20, 255).
        ha: same shape, the α = 24 CRF map.

    Returns:
        (..., h, w) int64 in {0, 1..20, ignore_index}.
    """
    label = torch.where(la == 0, torch.full_like(la, ignore_index), la)
    label = torch.where(ha == 0, torch.zeros_like(label), label)
    return torch.where((la == ignore_index) | (ha == ignore_index),
                       torch.full_like(label, ignore_index), label)


def affinity_label_pairs(labels: torch.Tensor, radius: int = RADIUS,
                         ignore_index: int = IGNORE) -> tuple[torch.Tensor, ...]:
    """The three pair sets of AffinityNet on the stride-8 grid.

    Args:
        labels: (B, h, w) int64 affinity labels from :func:`affinity_labels`.

    Returns:
        ``bg_pos``, ``fg_pos``, ``neg``: (B, K, N) float {0, 1} masks: both pixels background; both
        the same foreground class; different classes, both confident. Pairs touching an ignored
        pixel are in no set.
    """
    src, dst = gather_pairs(labels[:, None], radius)
    src, dst = src[:, 0], dst[:, 0]
    confident = (src != ignore_index) & (dst != ignore_index)
    same = src == dst
    bg_pos = same & (src == 0)
    fg_pos = same & (src != 0) & confident
    neg = ~same & confident
    return bg_pos.float(), fg_pos.float(), neg.float()


def affinity_loss(aff: torch.Tensor, bg_pos: torch.Tensor, fg_pos: torch.Tensor,
                  neg: torch.Tensor, eps: float = 1e-5) -> dict[str, torch.Tensor]:
    """L = ¼·mean_{P_bg+}(−log a) + ¼·mean_{P_fg+}(−log a) + ½·mean_{P−}(−log(1 − a)).

    Each mean is over its own pair count (+ε, so an empty set contributes 0), ε = 1e-5 inside the
    logs (Ahn & Kwak, Eq. 5–7; psa ``train_aff.py``).

    Args:
        aff: (B, K, N) affinities in (0, 1]; masks: (B, K, N) float {0, 1}.

    Returns:
        dict with ``loss`` (scalar) and the parts ``bg``, ``fg``, ``neg``.
    """
    bg = (-torch.log(aff + eps) * bg_pos).sum() / (bg_pos.sum() + eps)
    fg = (-torch.log(aff + eps) * fg_pos).sum() / (fg_pos.sum() + eps)
    ng = (-torch.log(1.0 + eps - aff) * neg).sum() / (neg.sum() + eps)
    return {"loss": bg / 4 + fg / 4 + ng / 2, "bg": bg, "fg": fg, "neg": ng}


def label_affinity(labels: torch.Tensor, radius: int = RADIUS,
                   ignore_index: int = IGNORE) -> torch.Tensor:
    """Ground-truth affinities: 1 for a pair of pixels with the same label, 0 otherwise.

    The ceiling of learnt affinities in the random walk (Ahn & Kwak, CVPR 2018, §3.4 propagates
    with predicted a_ij; with these it propagates exactly inside ground-truth regions). Pairs
    touching ``ignore_index`` get 0 (the pixel keeps its own score and spreads nothing).

    Args:
        labels: (B, h, w) int64 label maps on the stride-8 grid (e.g. :func:`downsample_labels`).

    Returns:
        (B, K, N) float in {0, 1}, ordered as :func:`pair_indices`.
    """
    src, dst = gather_pairs(labels[:, None], radius)
    src, dst = src[:, 0], dst[:, 0]
    return ((src == dst) & (src != ignore_index) & (dst != ignore_index)).float()
