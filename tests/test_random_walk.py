"""The random walk on cases with a known answer (Ahn & Kwak, CVPR 2018, §3.4).

A 64x96 image on an 8x12 stride-8 grid: the object is the left half (grid columns 0-5), the
background the right half; ground-truth affinities are 1 inside each half and 0 across.
"""

from __future__ import annotations

import torch

from leseg.components.affinity import label_affinity, pair_offsets
from leseg.components.cam import cam_prediction
from leseg.components.random_walk import propagate_cams, random_walk
from leseg.metrics.segmentation import confusion_matrix, metrics_from_confusion

H, W, GH, GW = 64, 96, 8, 12


def _truth() -> tuple[torch.Tensor, torch.Tensor]:
    gt = torch.zeros(H, W, dtype=torch.long)
    gt[:, :48] = 1
    grid = torch.zeros(1, GH, GW, dtype=torch.long)
    grid[:, :, :6] = 1
    return gt, label_affinity(grid)[0]


def _miou(pred: torch.Tensor, gt: torch.Tensor) -> float:
    return float(metrics_from_confusion(confusion_matrix(pred, gt, 2))["mIoU"])


def test_label_affinity_is_one_inside_a_region_and_zero_across() -> None:
    labels = torch.tensor([[[0, 0, 1, 1, 1, 1, 255, 1, 1]] * 5])  # (1, 5, 9): radius 5 fits
    aff = label_affinity(labels)
    assert aff.shape == (1, 34, 1)  # 34 offsets; the one from-pixel is (0, 4)
    # the from-pixel (0, 4) has label 1: partners of label 1 are 1, label 0 or ignore are 0
    for k, (dy, dx) in enumerate(pair_offsets()):
        partner = labels[0, dy, 4 + dx].item()
        assert aff[0, k, 0].item() == (1.0 if partner == 1 else 0.0), (dy, dx)


def test_walk_repairs_a_cam_that_leaks_across_the_boundary() -> None:
    """CAM 0.9 on the object and 0.3 on the first 8 background columns (one grid column): the CAM
    step labels them object (0.3 > bg 0.2): mIoU (48/56 + 40/48)/2 = 84.5 %. The walk replaces
    each half by its degree-weighted mean (the stationary distribution of T; the cropped pair set
    of the reference gives the grid's border columns fewer pairs): 0.9 on the object, < 0.2 on the
    background. Only the bilinear blur of the stride-8 grid remains at the edge: with 0.9 → m
    against bg 0.2 the scores cross (0.7 / (0.9 − m)) of the way between the cell centres, i.e.
    columns 48-50 stay object → (48/51 + 45/48)/2 = 93.9 %."""
    gt, aff = _truth()
    cams = torch.zeros(1, H, W)
    cams[0, :, :48] = 0.9
    cams[0, :, 48:56] = 0.3
    before = _miou(cam_prediction(cams[None])[0], gt)
    assert abs(before - (48 / 56 + 40 / 48) / 2) < 1e-6
    stack = torch.stack([torch.full((GH, GW), 0.2), torch.zeros(GH, GW)])
    stack[1, :, :6], stack[1, :, 6] = 0.9, 0.3  # the CAMs average-pooled x8
    walked = random_walk(stack, aff, GH, GW)
    assert torch.allclose(walked[1, :, :6], torch.full((GH, 6), 0.9), atol=1e-4)
    linked = walked[1, :, 6:][walked[1, :, 6:] > 0]  # two corner cells are in no pair: 0 stays 0
    assert (linked < 0.2).all() and linked.max() - linked.min() < 1e-4
    mask = propagate_cams(cams, aff, (GH, GW))
    after = _miou(mask, gt)
    assert (mask != gt).any(dim=0).nonzero().flatten().tolist() == [48, 49, 50]
    assert abs(after - (48 / 51 + 45 / 48) / 2) < 1e-6 and after > before + 0.09


def test_walk_leaves_a_perfect_cam_perfect() -> None:
    """On the grid the walk keeps a perfect map exactly (each half averages to itself). At image
    resolution only the bilinear upsampling of the stride-8 grid moves the edge: with fg 1 → 0
    against the constant bg 0.2 the scores cross 0.8 of the way between the cell centres, so
    columns 48 and 49 (sampled at 5.5625 and 5.6875 on the grid) stay foreground."""
    gt, aff = _truth()
    scores = torch.zeros(2, GH, GW)
    scores[0] = 0.2
    scores[1, :, :6] = 1.0
    walked = random_walk(scores, aff, GH, GW)
    assert torch.equal(walked.argmax(dim=0), (torch.arange(GW) < 6).long().expand(GH, GW))
    assert torch.allclose(walked, scores, atol=1e-5)
    cams = (gt == 1).float()[None]
    assert _miou(cam_prediction(cams[None])[0], gt) == 1.0
    mask = propagate_cams(cams, aff, (GH, GW))
    assert (mask != gt).any(dim=0).nonzero().flatten().tolist() == [48, 49]


def test_ground_truth_affinities_of_a_mask_pad_pool_and_repair_the_leak() -> None:
    """The stage's ceiling (``stage.affinity=labels``): a 60x90 mask is padded with ignore to 64x96,
    pooled to the 8x12 grid by majority, and its affinities are those of ``_truth``'s grid except
    pairs reaching the padded cells; walking the leaky CAM with them raises its mIoU."""
    import numpy as np

    from leseg.stages.ssenet import ground_truth_affinities

    mask = np.zeros((60, 90), np.uint8)
    mask[:, :48] = 1
    mask[0, 0] = 255  # an ignored pixel does not change its cell's majority
    aff, grid = ground_truth_affinities(mask)
    assert grid == (GH, GW) and aff.shape == _truth()[1].shape
    padded = torch.zeros(1, GH, GW, dtype=torch.long)
    padded[:, :, :6] = 1
    assert torch.equal(aff, label_affinity(padded)[0])
    gt = torch.from_numpy(mask.astype(np.int64))
    cams = torch.zeros(1, 60, 90)
    cams[0, :, :48] = 0.9
    cams[0, :, 48:56] = 0.3
    before = _miou(cam_prediction(cams[None])[0], torch.where(gt == 255, 0, gt))
    after = _miou(propagate_cams(cams, aff, grid), torch.where(gt == 255, 0, gt))
    assert after > before + 0.05


def test_random_walk_stage_needs_a_checkpoint_or_the_label_ceiling(tmp_path) -> None:
    import pytest

    from leseg.stages.ssenet import run_stage

    with pytest.raises(ValueError, match="needs ckpt .*or affinity=labels"):
        run_stage("random_walk", root=tmp_path, cams=tmp_path, out=tmp_path / "o")
    with pytest.raises(ValueError, match=r"affinity must be one of \['net', 'labels', 'crf'\]"):
        run_stage("random_walk", root=tmp_path, cams=tmp_path, out=tmp_path / "o",
                  affinity="gt")
