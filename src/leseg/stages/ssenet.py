"""SSENet / AffinityNet pseudo-mask stages: CAMs → dense CRF seeds → random walk → evaluation.

Pipeline of Wang et al. (SSENet, arXiv 1909.03714) on AffinityNet (Ahn & Kwak, CVPR 2018);
see docs/REFERENCES.md. Each stage writes one file per image, atomically, and skips images already done
(:mod:`leseg.stages.runner`), so a stage can be interrupted and rerun.

Stages (Python API and command line ``python -m leseg.stages.ssenet <stage> ...``):

``cams``
    ``--ckpt`` an :class:`~leseg.methods.ssenet.SSENetCAM` checkpoint of ``train.py``; writes
    ``<out>/<name>.npz`` with ``cams`` (P, H, W) float16 — the multi-scale (1.0, 0.5, 1.5, 2.0) +
    flip CAMs of the P present classes, each max-normalised to [0, 1] — ``classes`` (P,) int64
    (0-based foreground indices) and ``labels`` (20,) uint8.
``crf``
    ``--cams`` the folder above; writes ``<out>/<name>.npz`` with ``la`` / ``ha`` (H, W) uint8 dense-CRF
    label maps for α = 4 / 24 (0 = background, c + 1 = class c), in ``--workers`` processes. Needs
    the optional extra ``pydensecrf2`` (``pip install '.[crf]'``). Train AffinityNet on them with
    ``data.crf_dir=<out>``.
``random_walk``
    ``--ckpt`` an :class:`~leseg.methods.affinitynet.AffinityNet` checkpoint and ``--cams``; writes
    ``<out>/<name>.png`` pseudo-masks (palette PNG, values 0..20) usable as ``data.label_dir=<out>``
    for ``method=supervised``.
``evaluate``
    ``--cams`` (CAM step: argmax over [0.2, CAM_c…]) or ``--masks`` (any folder of ``<name>.png``);
    prints and optionally writes (``--json``) the 21-class confusion-matrix metrics against the
    dataset's masks.
``audit``
    ``--crf`` and/or ``--ckpt`` (AffinityNet): the precision of AffinityNet's training labels and
    pair sets, and the learnt affinities of same- and different-class pairs, against the masks
    (:func:`audit_affinities`); ``--json`` writes them.

The same stages run with the stage configs of ``conf/stage/`` (the paper's values):
``python -m leseg.stages ssenet_cams ckpt_path=<file> stage.root=<VOC2012>`` and so on
(:mod:`leseg.stages.entry` calls :func:`run_stage` with the config's keys).

Every stage reads the images of ``--root`` (a VOC2012-layout folder) and ``--split``
(``ImageSets/Segmentation/<split>.txt``; the papers' protocol is VOC ``train``, 1,464 images);
image-level labels come from the masks (:mod:`leseg.data.image_labels`).

Whole pipeline (``conf/results/ssenet.yaml`` runs it for ``python -m leseg.results ssenet``)::

    python train.py experiment=ssenet-cam_cam-r18_synthetic-voc-128x128 seed=0
    python -m leseg.stages.ssenet cams --ckpt RUN/checkpoints/last.ckpt --root VOC --out W/cams
    python -m leseg.stages.ssenet crf --cams W/cams --root VOC --out W/crf --workers 2
    python train.py experiment=affinitynet_aff-r18_synthetic-voc-128x128 data.crf_dir=W/crf
    python -m leseg.stages.ssenet random_walk --ckpt AFF/checkpoints/last.ckpt --cams W/cams \\
        --root VOC --out W/pseudo
    python -m leseg.stages.ssenet evaluate --masks W/pseudo --root VOC
    python train.py experiment=supervised_deeplabv3plus-r18-d16_synthetic-voc-128x128 \\
        data.label_dir=W/pseudo
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from leseg.components.affinity import (
    RADIUS,
    affinity_label_pairs,
    affinity_labels,
    downsample_labels,
    gather_pairs,
    label_affinity,
)
from leseg.components.cam import BG_SCORE, CAM_SCALES, cam_prediction
from leseg.components.crf import crf_label_map
from leseg.components.random_walk import BETA, LOG_T, propagate_cams
from leseg.data.image_labels import NUM_FG_CLASSES, ImageLabelDataset, load_image_labels
from leseg.data.io import read_label
from leseg.data.labels import IGNORE_INDEX, VOC_INFO
from leseg.data.splits import read_split_file
from leseg.data.voc import VOCSegmentation, voc_split_file
from leseg.metrics.segmentation import confusion_matrix, metrics_from_confusion
from leseg.stages.runner import StageResult, run_items, save_npz, save_png
from leseg.utils.io import atomic_write_json

__all__ = ["STAGE_OPTIONS", "audit_affinities", "crf_affinities", "evaluate_cams",
           "evaluate_masks", "load_method", "main", "open_dataset", "read_cams", "read_crf",
           "run_cams", "run_crf", "run_random_walk", "run_stage"]

CRF_ALPHAS = (4.0, 24.0)
"""Low and high background powers of SSENet's repo (psa README: 4 and 32)."""


def open_dataset(root: str | os.PathLike, split: str = "train", label_subdir: str | None = None,
                 cache_dir: str | os.PathLike | None = None,
                 max_images: int | None = None) -> ImageLabelDataset:
    """VOC-layout images of ``split`` with masks and image-level labels, untransformed.

    Args:
        max_images: keep only the first N ids of the list (debug runs); None = all.

    Raises:
        FileNotFoundError: see :class:`~leseg.data.voc.VOCSegmentation`.
    """
    ids = source = None
    if max_images is not None:
        list_file = voc_split_file(root, split)
        ids, source = read_split_file(list_file)[:int(max_images)], str(list_file)
    base = VOCSegmentation(root, split=split, ids=ids, label_subdir=label_subdir,
                           ids_source=source)
    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"{Path(root).name}_{split}_{base.label_subdir}_cls_labels.npz"
    return ImageLabelDataset(base, load_image_labels(base, cache))


def load_method(ckpt_path: str | os.PathLike, device: str = "cpu") -> torch.nn.Module:
    """Rebuild a LightningModule from a ``train.py`` checkpoint (its stored config), in eval mode.

    Raises:
        FileNotFoundError / ValueError: see :func:`leseg.utils.checkpoint.load_method`.
    """
    from leseg.utils.checkpoint import load_method as load

    return load(ckpt_path, device=device).module


def _index(dataset: ImageLabelDataset) -> dict[str, int]:
    return {n: i for i, n in enumerate(dataset.names)}


def run_cams(model, dataset: ImageLabelDataset, out_dir: str | os.PathLike,
             scales: Sequence[float] = CAM_SCALES, flip: bool = True, device: str = "cpu",
             progress: bool = False) -> StageResult:
    """CAM stage: one ``<out_dir>/<name>.npz`` per image (see the module docstring).

    Args:
        model: :class:`~leseg.methods.ssenet.SSENetCAM` (anything with ``cams(images, labels,
            scales, flip)`` → (B, 20, H, W)).
        dataset: :func:`open_dataset` (untransformed images).
    """
    out = Path(out_dir)
    index = _index(dataset)
    model = model.to(device).eval()

    @torch.no_grad()
    def work(name: str) -> dict[str, np.ndarray]:
        sample = dataset[index[name]]
        labels = sample["class_labels"]
        cams = model.cams(sample["image"][None].to(device), labels[None].to(device), scales,
                          flip)[0]
        present = torch.nonzero(labels > 0).flatten()
        return {"cams": cams[present.to(cams.device)].cpu().numpy().astype(np.float16),
                "classes": present.numpy().astype(np.int64),
                "labels": labels.numpy().astype(np.uint8)}

    return run_items(dataset.names, lambda n: out / f"{n}.npz", work, save_npz,
                     progress=progress, desc="cams")


def read_cams(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Full CAM stack of a ``cams`` file: (20, H, W) float32 (absent classes 0) and (20,) labels.

    Raises:
        ValueError: unreadable or malformed file (names it).
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            cams, classes, labels = data["cams"], data["classes"], data["labels"]
    except Exception as err:
        raise ValueError(f"CAM file {path} cannot be read (expected an .npz with cams, classes, "
                         f"labels; rerun the cams stage after deleting it): {err}") from err
    full = np.zeros((NUM_FG_CLASSES, *cams.shape[1:]), dtype=np.float32)
    full[classes] = cams.astype(np.float32)
    return full, labels


def _cam_file(cam_dir: Path, name: str) -> Path:
    path = cam_dir / f"{name}.npz"
    if not path.is_file():
        raise FileNotFoundError(f"CAM file {path} not found; run the cams stage for this split "
                                f"first")
    return path


def run_crf(dataset: ImageLabelDataset, cam_dir: str | os.PathLike, out_dir: str | os.PathLike,
            alphas: Sequence[float] = CRF_ALPHAS, workers: int = 0, use_crf: bool = True,
            progress: bool = False) -> StageResult:
    """CRF stage: ``<out_dir>/<name>.npz`` with ``la`` (α = alphas[0]) and ``ha`` (alphas[1]).

    ``use_crf=False`` writes the argmax of the unrefined [bg^α, CAMs] instead (no-CRF ablation /
    fallback without ``pydensecrf2``; not the reference).

    Raises:
        ImportError: ``pydensecrf2`` missing (names the ``.[crf]`` extra) with ``use_crf``.
        FileNotFoundError: a CAM file is missing (names it).
    """
    from leseg.components.crf import _densecrf

    if use_crf:
        _densecrf()  # fail before forking workers when the package is missing
    cam_dir, out = Path(cam_dir), Path(out_dir)
    index = _index(dataset)
    lo, hi = alphas

    def work(name: str) -> dict[str, np.ndarray]:
        image, _ = dataset.base.load(index[name])
        cams, labels = read_cams(_cam_file(cam_dir, name))
        if cams.shape[1:] != image.shape[:2]:
            raise ValueError(f"CAM file {cam_dir / name}.npz is {cams.shape[1:]}, image is "
                             f"{image.shape[:2]}")
        return {"la": crf_label_map(image, cams, labels, lo, use_crf),
                "ha": crf_label_map(image, cams, labels, hi, use_crf)}

    return run_items(dataset.names, lambda n: out / f"{n}.npz", work, save_npz,
                     workers=workers, progress=progress, desc="crf")


AFFINITY_SOURCES = ("net", "labels", "crf")
"""Where the random walk's affinities come from: the AffinityNet checkpoint; the ground-truth
masks (1 inside a region, 0 across: the ceiling a learnt affinity can reach); or AffinityNet's own
training labels from the CRF maps (1 between cells of the same confident label, 0 otherwise: what a
net that fitted its labels exactly would give, where they are known)."""


def _padded_to_8(height: int, width: int) -> tuple[int, int]:
    """(H, W) rounded up to multiples of 8: the padded size whose stride-8 grid the walk uses."""
    return -(-height // 8) * 8, -(-width // 8) * 8


def ground_truth_affinities(label: np.ndarray, radius: int = RADIUS,
                            num_classes: int = VOC_INFO.num_classes
                            ) -> tuple[torch.Tensor, tuple[int, int]]:
    """Affinities (K, N) of the stride-8 grid from a ground-truth mask, and the grid.

    The mask (H, W) uint8 (0..20, 255 ignored) is padded with ignore to a multiple of 8, pooled to
    the grid by majority (:func:`~leseg.components.affinity.downsample_labels`, as AffinityNet's
    training labels) and every radius pair gets 1 when both cells have the same class, else 0
    (:func:`~leseg.components.affinity.label_affinity`; pairs touching ignore get 0).
    """
    grid_labels = _grid_labels(label, num_classes)
    return label_affinity(grid_labels, radius, IGNORE_INDEX)[0], tuple(grid_labels.shape[-2:])


def _grid_labels(label: np.ndarray, num_classes: int = VOC_INFO.num_classes) -> torch.Tensor:
    """A (H, W) label map padded with ignore to a multiple of 8 and majority-pooled to the
    stride-8 grid: (1, ⌈H/8⌉, ⌈W/8⌉) int64 (0..20, 255)."""
    height, width = label.shape
    ph, pw = _padded_to_8(height, width)
    labels = torch.from_numpy(label.astype(np.int64))[None]
    labels = F.pad(labels, (0, pw - width, 0, ph - height), value=IGNORE_INDEX)
    return downsample_labels(labels, 8, num_classes, IGNORE_INDEX)


def read_crf(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """The ``la`` (α = 4) and ``ha`` (α = 24) label maps (H, W) uint8 of a ``crf`` stage file.

    Raises:
        FileNotFoundError: the file is missing (names it and the stage that writes it).
        ValueError: unreadable or without ``la`` / ``ha`` (names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CRF file {path} not found; run the crf stage for this split "
                                f"first")
    try:
        with np.load(path, allow_pickle=False) as data:
            return data["la"], data["ha"]
    except Exception as err:
        raise ValueError(f"CRF file {path} cannot be read (expected an .npz with la, ha): "
                         f"{err}") from err


def crf_affinities(la: np.ndarray, ha: np.ndarray, radius: int = RADIUS
                   ) -> tuple[torch.Tensor, tuple[int, int]]:
    """AffinityNet's training labels as affinities (K, N) of the stride-8 grid, and the grid.

    Both CRF maps are pooled to the grid as in training (:func:`_grid_labels`), combined into
    affinity labels (:func:`~leseg.components.affinity.affinity_labels`: confident foreground from
    ``la``, confident background from ``ha``, the rest ignored) and every radius pair gets 1 when
    both cells carry the same confident label, else 0 (a pair touching an ignored cell gets 0).
    """
    labels = affinity_labels(_grid_labels(la), _grid_labels(ha), IGNORE_INDEX)
    return label_affinity(labels, radius, IGNORE_INDEX)[0], tuple(labels.shape[-2:])


def run_random_walk(model, dataset: ImageLabelDataset, cam_dir: str | os.PathLike,
                    out_dir: str | os.PathLike, beta: float = BETA, log_t: int = LOG_T,
                    bg_score: float = BG_SCORE, device: str = "cpu", dense: bool | None = None,
                    progress: bool = False, crf_dir: str | os.PathLike | None = None,
                    bg_alpha: float | None = None) -> StageResult:
    """Random-walk stage: ``<out_dir>/<name>.png`` pseudo-masks (VOC palette, values 0..20).

    The normalised image is zero-padded to a multiple of 8, AffinityNet gives the pair affinities
    of its stride-8 grid, and :func:`~leseg.components.random_walk.propagate_cams` propagates
    [bg_score, CAMs] (psa ``infer_aff.py``). Runs on ``device`` (a GPU when given).

    Args:
        model: :class:`~leseg.methods.affinitynet.AffinityNet` (``pair_affinities``), or None
            for the ground-truth affinities of each image's mask (:func:`ground_truth_affinities`,
            radius 5): the walk's ceiling.
        crf_dir: with ``model=None``, walk with the CRF training labels of ``<crf_dir>/<name>.npz``
            instead of the ground truth (:func:`crf_affinities`).
        bg_alpha: None = the constant background ``bg_score`` (SSENet); a number = psa's
            per-pixel (1 − max CAM)^bg_alpha (see :func:`~leseg.components.random_walk.propagate_cams`).
    """
    cam_dir, out = Path(cam_dir), Path(out_dir)
    index = _index(dataset)
    if model is not None:
        model = model.to(device).eval()
    radius = RADIUS if model is None else model.radius
    palette = VOC_INFO.palette

    @torch.no_grad()
    def work(name: str) -> tuple[np.ndarray, np.ndarray]:
        if model is None and crf_dir is not None:
            aff, grid = crf_affinities(*read_crf(Path(crf_dir) / f"{name}.npz"), radius)
            aff = aff.to(device)
        elif model is None:
            _, label = dataset.base.load(index[name])
            aff, grid = ground_truth_affinities(label, radius)
            aff = aff.to(device)
        else:
            image = dataset[index[name]]["image"][None].to(device)
            height, width = image.shape[-2:]
            ph, pw = _padded_to_8(height, width)
            aff, grid = model.pair_affinities(F.pad(image, (0, pw - width, 0, ph - height)))
            aff = aff[0]
        cams, _ = read_cams(_cam_file(cam_dir, name))
        mask = propagate_cams(torch.from_numpy(cams).to(device), aff, grid, bg_score,
                              radius, beta, log_t, dense, bg_alpha)
        return mask.cpu().numpy().astype(np.uint8), palette

    return run_items(dataset.names, lambda n: out / f"{n}.png", work, save_png,
                     progress=progress, desc="random walk")


AUDIT_BINS = 1000
"""Histogram bins over [0, 1] of the affinity audit (its AUC is exact up to ties within a bin)."""


def _true_pairs(gt_grid: torch.Tensor, radius: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(K, N) bool masks of the ground-truth same-class and different-class pairs (both valid)."""
    src, dst = gather_pairs(gt_grid[:, None], radius)
    src, dst = src[0, 0], dst[0, 0]
    valid = (src != IGNORE_INDEX) & (dst != IGNORE_INDEX)
    return valid & (src == dst), valid & (src != dst)


def _auc(pos_hist: np.ndarray, neg_hist: np.ndarray) -> float:
    """P(a positive ranks above a negative) + ½ P(tie), from two histograms on the same bins."""
    npos, nneg = pos_hist.sum(), neg_hist.sum()
    if npos == 0 or nneg == 0:
        return float("nan")
    below = np.cumsum(neg_hist) - neg_hist  # negatives in lower bins
    return float((pos_hist * (below + 0.5 * neg_hist)).sum() / (npos * nneg))


def audit_affinities(dataset: ImageLabelDataset, crf_dir: str | os.PathLike | None = None,
                     model=None, beta: float = BETA, device: str = "cpu") -> dict[str, Any]:
    """What AffinityNet learns from and what it learnt, against the ground-truth masks.

    On the stride-8 grid (masks padded with ignore to a multiple of 8 and majority-pooled, as in
    training) and the radius-5 pair set (Ahn & Kwak, CVPR 2018, §3.2–3.3):

    ``crf`` (with ``crf_dir``): the training labels. ``cells``: shares of grid cells that are
    confident foreground / confident background / ignored and the precision of the first two
    (label = true class of the cell); ``pixels``: precision of ``la``'s foreground and ``ha``'s
    background at full resolution; ``pairs``: size and precision of P_bg+ and P_fg+ (pairs of the
    same true class) and P− (pairs of different true classes), and the recall of P− (share of the
    true different-class pairs that P− contains).

    ``net`` (with ``model``): the learnt affinities a_ij of the same-class and different-class
    true pairs: mean a, mean a^β (what the walk uses), share of different-class pairs with
    a^β > 0.5 (``diff_leak``: the walk crosses those boundaries), share of same-class pairs with
    a^β < 0.5 (``same_cut``), and the AUC (P(a same-class pair has a higher affinity than a
    different-class one), 0.5 = chance).

    Args:
        dataset: :func:`open_dataset` (images and masks; use a held-out split for ``net``).
        crf_dir: the ``crf`` stage's folder for the same images, or None.
        model: an :class:`~leseg.methods.affinitynet.AffinityNet`, or None.
        beta: the walk's power β (8).

    Returns:
        dict with ``num_images`` and the ``crf`` / ``net`` parts given.

    Raises:
        ValueError: neither ``crf_dir`` nor ``model``; a CRF map whose size is not the image's.
        FileNotFoundError: a CRF file is missing (names it).
    """
    if crf_dir is None and model is None:
        raise ValueError("affinity audit needs crf (the crf stage's folder) and/or ckpt (an "
                         "AffinityNet checkpoint)")
    if model is not None:
        model = model.to(device).eval()
    radius = RADIUS if model is None else model.radius
    keys = ("cells", "fg", "fg_ok", "bg", "bg_ok", "la_fg", "la_fg_ok", "ha_bg", "ha_bg_ok",
            "bg_pos", "bg_pos_ok", "fg_pos", "fg_pos_ok", "neg", "neg_ok", "true_diff")
    c = dict.fromkeys(keys, 0)
    same_hist = np.zeros(AUDIT_BINS, np.int64)
    diff_hist = np.zeros(AUDIT_BINS, np.int64)
    sums = {"same_a": 0.0, "same_ab": 0.0, "diff_a": 0.0, "diff_ab": 0.0, "diff_leak": 0,
            "same_cut": 0}
    for i, name in enumerate(dataset.names):
        _, gt = dataset.base.load(i)
        gt_grid = _grid_labels(gt)
        same, diff = _true_pairs(gt_grid, radius)
        if crf_dir is not None:
            la, ha = read_crf(Path(crf_dir) / f"{name}.npz")
            if la.shape != gt.shape or ha.shape != gt.shape:
                raise ValueError(f"CRF file {Path(crf_dir) / name}.npz is {la.shape}, the mask "
                                 f"is {gt.shape}")
            valid = gt != IGNORE_INDEX
            c["la_fg"] += int(((la != 0) & valid).sum())
            c["la_fg_ok"] += int(((la != 0) & (la == gt)).sum())
            c["ha_bg"] += int(((ha == 0) & valid).sum())
            c["ha_bg_ok"] += int(((ha == 0) & (gt == 0)).sum())
            labels = affinity_labels(_grid_labels(la), _grid_labels(ha), IGNORE_INDEX)
            known = gt_grid != IGNORE_INDEX
            fg = (labels != 0) & (labels != IGNORE_INDEX) & known
            bg = (labels == 0) & known
            c["cells"] += int(known.sum())
            c["fg"] += int(fg.sum())
            c["fg_ok"] += int((fg & (labels == gt_grid)).sum())
            c["bg"] += int(bg.sum())
            c["bg_ok"] += int((bg & (gt_grid == 0)).sum())
            bg_pos, fg_pos, neg = (m[0].bool() for m in affinity_label_pairs(labels, radius))
            for key, m, ok in (("bg_pos", bg_pos, same), ("fg_pos", fg_pos, same),
                               ("neg", neg, diff)):
                m = m & (same | diff)
                c[key] += int(m.sum())
                c[f"{key}_ok"] += int((m & ok).sum())
            c["true_diff"] += int(diff.sum())
        if model is not None:
            image = dataset[i]["image"][None].to(device)
            height, width = image.shape[-2:]
            ph, pw = _padded_to_8(height, width)
            with torch.no_grad():
                aff, grid = model.pair_affinities(F.pad(image, (0, pw - width, 0, ph - height)))
            if tuple(grid) != tuple(gt_grid.shape[-2:]):
                raise ValueError(f"{name}: affinity grid {tuple(grid)} is not the mask's "
                                 f"{tuple(gt_grid.shape[-2:])}")
            a = aff[0].double().cpu()
            ab = a.pow(beta)
            for part, m in (("same", same), ("diff", diff)):
                sums[f"{part}_a"] += float(a[m].sum())
                sums[f"{part}_ab"] += float(ab[m].sum())
            sums["diff_leak"] += int((ab[diff] > 0.5).sum())
            sums["same_cut"] += int((ab[same] < 0.5).sum())
            bins = np.linspace(0.0, 1.0, AUDIT_BINS + 1)
            same_hist += np.histogram(a[same].numpy(), bins)[0]
            diff_hist += np.histogram(a[diff].numpy(), bins)[0]

    def share(num: int, den: int) -> float:
        return num / den if den else float("nan")

    result: dict[str, Any] = {"num_images": len(dataset), "radius": radius, "beta": beta}
    if crf_dir is not None:
        result["crf"] = {
            "cells": {"fg": share(c["fg"], c["cells"]), "bg": share(c["bg"], c["cells"]),
                      "ignored": share(c["cells"] - c["fg"] - c["bg"], c["cells"]),
                      "fg_precision": share(c["fg_ok"], c["fg"]),
                      "bg_precision": share(c["bg_ok"], c["bg"])},
            "pixels": {"la_fg_precision": share(c["la_fg_ok"], c["la_fg"]),
                       "ha_bg_precision": share(c["ha_bg_ok"], c["ha_bg"])},
            "pairs": {"bg_pos": {"count": c["bg_pos"],
                                 "precision": share(c["bg_pos_ok"], c["bg_pos"])},
                      "fg_pos": {"count": c["fg_pos"],
                                 "precision": share(c["fg_pos_ok"], c["fg_pos"])},
                      "neg": {"count": c["neg"], "precision": share(c["neg_ok"], c["neg"]),
                              "recall": share(c["neg_ok"], c["true_diff"])}}}
    if model is not None:
        n_same, n_diff = int(same_hist.sum()), int(diff_hist.sum())
        result["net"] = {
            "same": {"count": n_same, "mean_aff": share(sums["same_a"], n_same),
                     "mean_aff_beta": share(sums["same_ab"], n_same)},
            "diff": {"count": n_diff, "mean_aff": share(sums["diff_a"], n_diff),
                     "mean_aff_beta": share(sums["diff_ab"], n_diff)},
            "diff_leak": share(sums["diff_leak"], n_diff),
            "same_cut": share(sums["same_cut"], n_same),
            "auc": _auc(same_hist, diff_hist)}
    return result


def _evaluate(dataset: ImageLabelDataset, predict) -> dict[str, Any]:
    k = VOC_INFO.num_classes
    confmat = torch.zeros(k, k, dtype=torch.long)
    for i, name in enumerate(dataset.names):
        _, gt = dataset.base.load(i)
        pred = predict(name)
        if pred.shape != gt.shape:
            raise ValueError(f"prediction for {name} is {pred.shape}, mask is {gt.shape}")
        confmat += confusion_matrix(torch.from_numpy(pred.astype(np.int64)),
                                    torch.from_numpy(gt.astype(np.int64)), k, IGNORE_INDEX)
    result = metrics_from_confusion(confmat)
    iou = result["IoU"].tolist()
    return {"mIoU": float(result["mIoU"]), "aAcc": float(result["aAcc"]),
            "mIoU_21_plain": float(np.nan_to_num(np.array(iou)).mean()),
            "IoU": dict(zip(VOC_INFO.class_names, iou)), "num_images": len(dataset)}


def evaluate_cams(dataset: ImageLabelDataset, cam_dir: str | os.PathLike,
                  bg_score: float = BG_SCORE) -> dict[str, Any]:
    """CAM-step metrics: argmax([bg_score, CAM_c…]) against the dataset masks, 21 classes.

    Returns:
        ``mIoU`` (mean over classes present in ground truth or prediction, leseg's metric),
        ``mIoU_21_plain`` (plain mean over all 21 classes, absent ones counting 0: SSENet's
        ``evaluation.py``), ``aAcc``, per-class ``IoU``, ``num_images``.
    """
    cam_dir = Path(cam_dir)

    def predict(name: str) -> np.ndarray:
        cams, _ = read_cams(_cam_file(cam_dir, name))
        return cam_prediction(torch.from_numpy(cams)[None], bg_score)[0].numpy()

    return _evaluate(dataset, predict)


def evaluate_masks(dataset: ImageLabelDataset, mask_dir: str | os.PathLike) -> dict[str, Any]:
    """Metrics of ``<mask_dir>/<name>.png`` pseudo-masks (see :func:`evaluate_cams`).

    Raises:
        FileNotFoundError: a mask is missing (names it).
    """
    mask_dir = Path(mask_dir)
    return _evaluate(dataset, lambda name: read_label(mask_dir / f"{name}.png"))


# ---------------------------------------------------------------------------------- CLI
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m leseg.stages.ssenet", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="stage", required=True)

    def common(s: argparse.ArgumentParser) -> None:
        s.add_argument("--root", required=True, help="VOC2012-layout folder")
        s.add_argument("--split", default="train", help="id list (default: train)")
        s.add_argument("--label-subdir", default=None, help="mask folder (default: VOC rule)")
        s.add_argument("--cache-dir", default=None, help="image-label cache folder")
        s.add_argument("--max-images", type=int, default=None,
                       help="only the first N ids of the split (debug runs)")
        s.add_argument("--progress", action="store_true")

    s = sub.add_parser("cams", help="multi-scale + flip CAMs of an SSENetCAM checkpoint")
    common(s)
    s.add_argument("--ckpt", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--scales", type=float, nargs="+", default=list(CAM_SCALES))
    s.add_argument("--no-flip", action="store_true")
    s.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")

    s = sub.add_parser("crf", help="dense-CRF label maps for alpha low/high")
    common(s)
    s.add_argument("--cams", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--alphas", type=float, nargs=2, default=list(CRF_ALPHAS))
    s.add_argument("--workers", type=int, default=0)
    s.add_argument("--no-crf", action="store_true",
                   help="argmax of the unrefined scores (ablation / no pydensecrf2)")

    s = sub.add_parser("random_walk", help="AffinityNet random walk -> pseudo-mask PNGs")
    common(s)
    s.add_argument("--ckpt", default=None, help="AffinityNet checkpoint (affinity net)")
    s.add_argument("--affinity", choices=AFFINITY_SOURCES, default="net",
                   help="labels: ground-truth affinities, the walk's ceiling (no --ckpt); crf: "
                        "AffinityNet's training labels (--crf)")
    s.add_argument("--crf", default=None, help="the crf stage's folder (with --affinity crf)")
    s.add_argument("--cams", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--beta", type=float, default=BETA)
    s.add_argument("--log-t", type=int, default=LOG_T)
    s.add_argument("--bg", type=float, default=BG_SCORE)
    s.add_argument("--bg-alpha", type=float, default=None,
                   help="background (1 - max CAM)^alpha per pixel (psa: 16) instead of --bg")
    s.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")

    s = sub.add_parser("evaluate", help="21-class mIoU of CAM-step or pseudo-mask predictions")
    common(s)
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--cams")
    g.add_argument("--masks")
    s.add_argument("--bg", type=float, default=BG_SCORE)
    s.add_argument("--json", default=None, help="write the metrics here (atomically)")

    s = sub.add_parser("audit", help="CRF training labels and learnt affinities vs the masks")
    common(s)
    s.add_argument("--crf", default=None, help="the crf stage's folder")
    s.add_argument("--ckpt", default=None, help="AffinityNet checkpoint")
    s.add_argument("--beta", type=float, default=BETA)
    s.add_argument("--json", default=None, help="write the figures here (atomically)")
    s.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return p


_REQUIRED = object()
STAGE_OPTIONS: dict[str, dict[str, Any]] = {
    "cams": {"ckpt": _REQUIRED, "out": _REQUIRED, "scales": list(CAM_SCALES), "no_flip": False,
             "device": None},
    "crf": {"cams": _REQUIRED, "out": _REQUIRED, "alphas": list(CRF_ALPHAS), "workers": 0,
            "no_crf": False},
    "random_walk": {"ckpt": None, "cams": _REQUIRED, "out": _REQUIRED, "beta": BETA,
                    "log_t": LOG_T, "bg": BG_SCORE, "device": None, "affinity": "net",
                    "crf": None, "bg_alpha": None},
    "evaluate": {"cams": None, "masks": None, "bg": BG_SCORE, "json": None},
    "audit": {"crf": None, "ckpt": None, "beta": BETA, "json": None, "device": None},
}
"""Options of each stage beyond the dataset ones, with their defaults (those of the command line;
``device`` None = cuda when available)."""


def run_stage(name: str, root: str | os.PathLike, split: str = "train",
              label_subdir: str | None = None, cache_dir: str | os.PathLike | None = None,
              max_images: int | None = None, progress: bool = False,
              **options: Any) -> dict[str, Any]:
    """Run one stage by name with keyword options: what the command line and the stage configs
    (``conf/stage/ssenet_*.yaml``, ``python -m leseg.stages ssenet_<name> ...``) call.

    Args:
        name: ``cams`` | ``crf`` | ``random_walk`` | ``evaluate`` | ``audit``.
        root, split, label_subdir, cache_dir, max_images, progress: the dataset (:func:`open_dataset`).
        options: the stage's options (:data:`STAGE_OPTIONS`; the command line's flags with ``_``,
            e.g. ``no_flip``, ``log_t``); None takes the default.

    Returns:
        The stage's summary: ``{"stage", "done", "skipped"}`` (file counts), or for ``evaluate``
        the metrics of :func:`evaluate_cams` / :func:`evaluate_masks`, for ``audit`` the figures
        of :func:`audit_affinities`.

    Raises:
        ValueError: unknown stage or option, a missing required option, for ``evaluate`` not
            exactly one of ``cams`` / ``masks`` (names them), for ``random_walk`` an unknown
            ``affinity``, ``affinity=net`` without ``ckpt`` or ``affinity=crf`` without ``crf``,
            for ``audit`` neither ``crf`` nor ``ckpt``.
    """
    if name not in STAGE_OPTIONS:
        raise ValueError(f"unknown SSENet stage {name!r}; expected one of {list(STAGE_OPTIONS)}")
    known = STAGE_OPTIONS[name]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(f"stage {name}: unknown option(s) {unknown}; expected {sorted(known)}")
    opt = {k: (d if options.get(k) is None else options[k]) for k, d in known.items()}
    missing = [k for k, v in opt.items() if v is _REQUIRED]
    if missing:
        raise ValueError(f"stage {name} needs {missing} (e.g. stage.{missing[0]}=<path>)")
    if name == "evaluate" and (opt["cams"] is None) == (opt["masks"] is None):
        raise ValueError("stage evaluate needs exactly one of cams (CAM-step prediction) or "
                         "masks (a pseudo-mask folder)")
    if name == "random_walk":
        if opt["affinity"] not in AFFINITY_SOURCES:
            raise ValueError(f"stage random_walk: affinity must be one of {list(AFFINITY_SOURCES)}"
                             f", got {opt['affinity']!r}")
        if opt["affinity"] == "net" and not opt["ckpt"]:
            raise ValueError("stage random_walk needs ckpt (the AffinityNet checkpoint, "
                             "ckpt_path=<file>), or affinity=labels for the ground-truth ceiling")
        if opt["affinity"] == "crf" and not opt["crf"]:
            raise ValueError("stage random_walk with affinity=crf needs crf (the crf stage's "
                             "folder, stage.crf=<dir>)")
    if name == "audit" and not (opt["crf"] or opt["ckpt"]):
        raise ValueError("stage audit needs crf (the crf stage's folder, stage.crf=<dir>) and/or "
                         "ckpt (an AffinityNet checkpoint, ckpt_path=<file>)")
    device = opt.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
    dataset = open_dataset(root, split, label_subdir, cache_dir, max_images)
    if name == "cams":
        r = run_cams(load_method(opt["ckpt"], device), dataset, opt["out"],
                     [float(s) for s in opt["scales"]], not opt["no_flip"], device, progress)
    elif name == "crf":
        r = run_crf(dataset, opt["cams"], opt["out"], [float(a) for a in opt["alphas"]],
                    int(opt["workers"]), not opt["no_crf"], progress)
    elif name == "random_walk":
        model = load_method(opt["ckpt"], device) if opt["affinity"] == "net" else None
        r = run_random_walk(model, dataset, opt["cams"], opt["out"],
                            float(opt["beta"]), int(opt["log_t"]), float(opt["bg"]), device,
                            progress=progress,
                            crf_dir=opt["crf"] if opt["affinity"] == "crf" else None,
                            bg_alpha=None if opt["bg_alpha"] is None else float(opt["bg_alpha"]))
    elif name == "audit":
        model = load_method(opt["ckpt"], device) if opt["ckpt"] else None
        figures = audit_affinities(dataset, opt["crf"], model, float(opt["beta"]), device)
        if opt["json"]:
            atomic_write_json(opt["json"], figures)
        print(json.dumps(figures))
        return figures
    else:
        metrics = (evaluate_cams(dataset, opt["cams"], float(opt["bg"])) if opt["cams"]
                   else evaluate_masks(dataset, opt["masks"]))
        if opt["json"]:
            atomic_write_json(opt["json"], metrics)
        print(json.dumps({k: v for k, v in metrics.items() if k != "IoU"}))
        return metrics
    summary = {"stage": name, "done": len(r.done), "skipped": len(r.skipped)}
    print(json.dumps(summary))
    return summary


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Command-line entry point (see the module docstring); returns the stage's summary."""
    options = vars(_parser().parse_args(argv))
    return run_stage(options.pop("stage"), **options)


if __name__ == "__main__":
    main(sys.argv[1:])
