"""Fully connected CRF on CAM scores (Krähenbühl & Koltun, NeurIPS 2011), AffinityNet's seeds.

Runs the mean-field inference of the optional package ``pydensecrf2`` (imports as
``pydensecrf``; install with ``pip install '.[crf]'`` or ``pip install pydensecrf2``)
with the reference parameters (psa ``tool/imutils.py`` ``crf_inference``): 10
iterations, Gaussian kernel sxy 3 / compat 3, bilateral kernel sxy 80 / srgb 13 / compat 10,
unary = −log(score) (scores clipped at 1e-5, not renormalised).
"""

from __future__ import annotations

import numpy as np

__all__ = ["CRF_PARAMS", "crf_available", "crf_label_map", "dense_crf"]

CRF_PARAMS = {"iterations": 10, "gauss_sxy": 3.0, "gauss_compat": 3.0, "bi_sxy": 80.0,
              "bi_srgb": 13.0, "bi_compat": 10.0}

_MISSING = ("dense CRF needs the optional package pydensecrf2 (imports as `pydensecrf`); install "
            "the extra with `pip install '.[crf]'` (or `uv pip install pydensecrf2`, a C++ build "
            "of a few minutes)")


def _densecrf():
    try:
        import pydensecrf.densecrf as dcrf
    except ImportError as err:
        raise ImportError(_MISSING) from err
    return dcrf


def crf_available() -> bool:
    """True when ``pydensecrf2`` is importable."""
    try:
        _densecrf()
    except ImportError:
        return False
    return True


def dense_crf(image: np.ndarray, scores: np.ndarray, iterations: int = 10, gauss_sxy: float = 3.0,
              gauss_compat: float = 3.0, bi_sxy: float = 80.0, bi_srgb: float = 13.0,
              bi_compat: float = 10.0) -> np.ndarray:
    """Mean-field marginals of the dense CRF.

    Args:
        image: (H, W, 3) uint8 RGB image.
        scores: (C, H, W) float scores ≥ 0 (e.g. [bg, CAM_c…]); unary = −log(max(score, 1e-5)).
        iterations, gauss_*, bi_*: kernel parameters (reference values by default).

    Returns:
        (C, H, W) float32 marginals (each pixel sums to 1).

    Raises:
        ImportError: ``pydensecrf2`` is not installed (names the ``.[crf]`` extra).
        ValueError: shapes do not match.
    """
    dcrf = _densecrf()
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"dense_crf expects an (H, W, 3) uint8 image, got {image.shape} "
                         f"{image.dtype}")
    c, h, w = scores.shape
    if (h, w) != image.shape[:2]:
        raise ValueError(f"scores {scores.shape} do not match image {image.shape}")
    crf = dcrf.DenseCRF2D(w, h, c)
    unary = -np.log(np.clip(scores.astype(np.float32), 1e-5, None)).reshape(c, -1)
    crf.setUnaryEnergy(np.ascontiguousarray(unary, dtype=np.float32))
    crf.addPairwiseGaussian(sxy=gauss_sxy, compat=gauss_compat)
    crf.addPairwiseBilateral(sxy=bi_sxy, srgb=bi_srgb, rgbim=np.ascontiguousarray(image),
                             compat=bi_compat)
    q = crf.inference(int(iterations))
    return np.asarray(q, dtype=np.float32).reshape(c, h, w)


def crf_label_map(image: np.ndarray, cams: np.ndarray, labels: np.ndarray, alpha: float,
                  use_crf: bool = True, **params: float) -> np.ndarray:
    """AffinityNet seed map for one α: dense CRF on [bg, CAMs of present classes], argmax.

    bg = (1 − max_c CAM_c)^α (psa ``infer_cls.py``); as in the reference the CRF sees only the
    background and the classes present in the image.

    Args:
        image: (H, W, 3) uint8 RGB; cams: (C, H, W) float normalised CAMs in [0, 1];
        labels: (C,) multi-hot; alpha: 4 (low, "la") or 24 (high, "ha").
        use_crf: False = argmax of the unrefined scores [bg, CAMs] (a no-CRF ablation and the
            fallback when ``pydensecrf2`` is not installed; not the reference).

    Returns:
        (H, W) uint8 labels: 0 = background, c + 1 = class c.
    """
    present = np.flatnonzero(np.asarray(labels) > 0)
    cams = np.asarray(cams, dtype=np.float32)
    sel = cams[present]
    if len(present) == 0:
        return np.zeros(cams.shape[1:], dtype=np.uint8)
    bg = np.power(1.0 - sel.max(axis=0, keepdims=True), alpha)
    scores = np.concatenate([bg, sel])
    q = dense_crf(image, scores, **params) if use_crf else scores
    classes = np.concatenate([[0], present + 1])
    return classes[q.argmax(axis=0)].astype(np.uint8)
