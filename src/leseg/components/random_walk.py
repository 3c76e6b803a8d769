"""Random-walk propagation of CAMs with AffinityNet affinities (Ahn & Kwak, CVPR 2018, §3.4).

Reference procedure (psa ``infer_aff.py``): A = symmetric affinity matrix over the stride-8 grid with
the radius-5 pairs of :func:`leseg.components.affinity.pair_indices` plus the identity, raised
element-wise to β = 8; T = A with columns normalised to sum 1; T ← T^(2^log_t) by ``log_t`` = 8
squarings (t = 256 steps); propagated scores = vec(CAM) · T.

Pixels in no pair of the cropped pair set (row 0, columns < radius − 1: see
:mod:`leseg.components.affinity`) only have their self-loop and keep their own score, as in the
reference.

Two equivalent evaluations: **dense** (an (n, n) matrix, n = h·w, 8 matrix squarings; the
reference's way, fast for VOC-sized grids, memory 4·n² bytes) and **sparse** (the (n, n) matrix
kept sparse and applied 2^log_t times to the (C, n) score matrix: memory O(n·K), time linear in
the pixels per step, for large grids such as Cityscapes where n² does not fit). Both run on the
device of the inputs; on a CPU the sparse form is a ``scipy.sparse`` CSR matrix (its product is
several times faster than torch's CPU sparse kernels), elsewhere a torch COO tensor.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from leseg.components.affinity import RADIUS, pair_indices

__all__ = ["BETA", "LOG_T", "affinity_matrix", "propagate_cams", "random_walk",
           "transition_matrix"]

BETA = 8.0
LOG_T = 8
MAX_DENSE_PIXELS = 12000
"""On a GPU, grids up to this many stride-8 pixels use the dense evaluation (0.6 GB matrix)."""
MAX_DENSE_PIXELS_CPU = 3000
"""On a CPU grids up to this many pixels use the dense form. Chosen when the sparse form was torch
COO (0.94 s dense vs 1.0 s sparse at n = 2209, 7.0 s vs 2.4 s at n = 3969 on 2 cores); the scipy
CSR walk now overtakes the dense squarings already near n = 1000
(``benchmarks/results/ssenet_stages_cpu.md``), but the threshold is kept so that VOC-sized
pseudo-masks stay bit-identical to those made before; pass ``dense=False`` for the faster path."""


def _matrix_entries(aff: torch.Tensor, h: int, w: int, radius: int, beta: float
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(rows, cols, values) of A^∘β with unit diagonal: each pair (i, j) as (i, j) and (j, i),
    then the n self-loops; on ``aff``'s device.

    Raises:
        ValueError: ``aff`` does not have the (K, N) shape of the grid's pair set.
    """
    src, dst = pair_indices(h, w, radius)
    if aff.shape != dst.shape:
        raise ValueError(f"affinities {tuple(aff.shape)} do not match the {h}x{w} grid's pair set "
                         f"{tuple(dst.shape)} (radius {radius})")
    n, device = h * w, aff.device
    src = src.to(device).expand_as(dst).reshape(-1)
    dst = dst.to(device).reshape(-1)
    vals = aff.reshape(-1).pow(beta)
    diag = torch.arange(n, device=device)
    return (torch.cat([src, dst, diag]), torch.cat([dst, src, diag]),
            torch.cat([vals, vals, torch.ones(n, device=device, dtype=vals.dtype)]))


def affinity_matrix(aff: torch.Tensor, h: int, w: int, radius: int = RADIUS, beta: float = BETA,
                    dense: bool = True) -> torch.Tensor:
    """The symmetric (n, n) affinity matrix A^∘β with unit diagonal, n = h·w.

    Args:
        aff: (K, N) pair affinities in [0, 1] ordered as :func:`pair_indices` (h, w, radius).
        beta: element-wise power β (8).
        dense: return a dense tensor, else a coalesced sparse COO tensor.

    Returns:
        (n, n) float tensor on ``aff``'s device.

    Raises:
        ValueError: ``aff`` does not have the (K, N) shape of the grid's pair set.
    """
    rows, cols, values = _matrix_entries(aff, h, w, radius, beta)
    n, device = h * w, aff.device
    if dense:
        mat = torch.zeros(n, n, device=device, dtype=values.dtype)
        mat.index_put_((rows, cols), values, accumulate=True)
        return mat
    return torch.sparse_coo_tensor(torch.stack([rows, cols]), values, (n, n),
                                   check_invariants=False).coalesce()


def transition_matrix(mat: torch.Tensor) -> torch.Tensor:
    """Column-normalise: T_ij = A_ij / Σ_k A_kj (each column sums to 1). Dense or sparse COO."""
    if mat.is_sparse:
        mat = mat.coalesce()
        idx, val = mat.indices(), mat.values()
        colsum = torch.zeros(mat.shape[1], device=val.device, dtype=val.dtype)
        colsum.index_add_(0, idx[1], val)
        return torch.sparse_coo_tensor(idx, val / colsum[idx[1]], mat.shape,
                                       check_invariants=False).coalesce()
    return mat / mat.sum(dim=0, keepdim=True)


def random_walk(scores: torch.Tensor, aff: torch.Tensor, h: int, w: int, radius: int = RADIUS,
                beta: float = BETA, log_t: int = LOG_T, dense: bool | None = None) -> torch.Tensor:
    """Propagate score maps with t = 2^log_t random-walk steps.

    Args:
        scores: (C, h, w) float score maps on the stride-8 grid (e.g. [bg 0.2, CAM_1..CAM_20]).
        aff: (K, N) pair affinities of that grid (:func:`leseg.components.affinity.affinity`).
        beta, log_t: affinity power (8) and log2 of the number of steps (8 → 256).
        dense: force the dense (True) or sparse (False) evaluation; None = dense when
            h·w ≤ :data:`MAX_DENSE_PIXELS` on a GPU, ≤ :data:`MAX_DENSE_PIXELS_CPU` on a CPU.

    Returns:
        (C, h, w) float propagated scores, vec(scores) · T^(2^log_t).
    """
    n = h * w
    if dense is None:
        dense = n <= (MAX_DENSE_PIXELS if aff.is_cuda else MAX_DENSE_PIXELS_CPU)
    if not dense and aff.device.type == "cpu":
        trans_t = _transition_t_scipy(aff, h, w, radius, beta)
        out = torch.from_numpy(_walk_scipy(trans_t, scores.reshape(scores.shape[0], n),
                                           2 ** log_t))
        return out.reshape(scores.shape[0], h, w)
    trans = transition_matrix(affinity_matrix(aff, h, w, radius, beta, dense=dense))
    vec = scores.reshape(scores.shape[0], n).to(trans.dtype)
    if dense:
        for _ in range(log_t):
            trans = trans @ trans
        out = vec @ trans
    else:
        trans_t = trans.t().coalesce()  # (vec · T)ᵀ = Tᵀ · vecᵀ
        out = vec.t()
        for _ in range(2 ** log_t):
            out = torch.sparse.mm(trans_t, out)
        out = out.t()
    return out.reshape(scores.shape[0], h, w)


def _transition_t_scipy(aff: torch.Tensor, h: int, w: int, radius: int, beta: float):
    """Tᵀ as a ``scipy.sparse`` CSR matrix (n, n), built on the CPU without torch's coalesce.

    A (:func:`affinity_matrix`) is symmetric, so Tᵀ_ij = T_ji = A_ij / Σ_k A_ki: the rows of A
    divided by its column sums. Same entries as ``transition_matrix(affinity_matrix(...)).t()``
    up to float rounding of the column sums.

    Raises:
        ValueError: ``aff`` does not have the (K, N) shape of the grid's pair set.
    """
    import numpy as np
    from scipy import sparse

    rows, cols, values = (t.detach().cpu().numpy()
                          for t in _matrix_entries(aff, h, w, radius, beta))
    n = h * w
    mat = sparse.coo_matrix((values, (rows, cols)), shape=(n, n)).tocsr()
    # (duplicates, none in the pair set, would be summed)
    colsum = np.asarray(mat.sum(axis=0), dtype=values.dtype).reshape(-1)
    rows = np.repeat(np.arange(n), np.diff(mat.indptr))
    mat.data /= colsum[rows]
    return mat


def _walk_scipy(trans_t, vec: torch.Tensor, steps: int):
    """``steps`` products ``Tᵀ · v`` on the CPU with ``scipy.sparse`` (CSR × dense).

    A sparse matrix–vector product per step is linear in the pixels (O(nnz) = O(n · pairs)); the
    dense form's squarings fill the matrix in (O(n²) memory, O(n³) time). torch's CPU sparse
    product (COO or CSR) takes several times longer than scipy's CSR kernel for this
    (n, n) × (n, C) case (``benchmarks/ssenet_stages.py``); both compute the same sums, so results
    agree to float32 rounding.

    Args:
        trans_t: (n, n) scipy CSR Tᵀ. vec: (C, n) scores (tensor). steps: number of products.

    Returns:
        (C, n) float numpy array of ``trans_t``'s dtype.
    """
    import numpy as np

    out = np.ascontiguousarray(vec.detach().to(torch.float32).numpy().T.astype(trans_t.dtype))
    for _ in range(steps):
        out = trans_t @ out
    return np.ascontiguousarray(out.T)


def propagate_cams(cams: torch.Tensor, aff: torch.Tensor, grid: tuple[int, int],
                   bg_score: float = 0.2, radius: int = RADIUS, beta: float = BETA,
                   log_t: int = LOG_T, dense: bool | None = None,
                   bg_alpha: float | None = None) -> torch.Tensor:
    """Random-walk pseudo-mask of one image (psa ``infer_aff.py``).

    The score stack [bg, CAM_1..CAM_C] at full resolution is zero-padded to the padded
    image size (8·grid), average-pooled ×8, propagated by :func:`random_walk`, upsampled
    bilinearly to the padded size, cropped to (H, W) and arg-maxed.

    Args:
        cams: (C, H, W) normalised CAMs in [0, 1] (absent classes 0).
        aff: (K, N) affinities of the padded image's stride-8 grid ``grid`` = (⌈H/8⌉, ⌈W/8⌉).
        bg_score: the constant background score (SSENet-pytorch ``infer_aff.py``: 0.2).
        bg_alpha: when given, the background is per pixel bg = (1 − max_c CAM_c)^bg_alpha
            instead (psa ``infer_aff.py``, ``--alpha 16``; the CRF stage's form).

    Returns:
        (H, W) int64 pseudo-mask, 0 = background, 1..C classes.
    """
    height, width = cams.shape[-2:]
    gh, gw = grid
    if gh * 8 < height or gw * 8 < width:
        raise ValueError(f"grid {grid} does not cover CAMs of size {height}x{width}")
    if bg_alpha is None:
        bg = torch.full_like(cams[:1], bg_score)
    else:
        bg = (1.0 - cams.amax(dim=0, keepdim=True)).clamp(min=0.0).pow(bg_alpha)
    stack = torch.cat([bg, cams], dim=0)
    stack = F.pad(stack, (0, gw * 8 - width, 0, gh * 8 - height))
    pooled = F.avg_pool2d(stack[None], 8, 8)[0]
    walked = random_walk(pooled, aff, gh, gw, radius, beta, log_t, dense)
    up = F.interpolate(walked[None], size=(gh * 8, gw * 8), mode="bilinear",
                       align_corners=False)[0]
    return up[:, :height, :width].argmax(dim=0)
