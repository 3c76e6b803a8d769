"""SSENet / AffinityNet: CAM normalisation and L_eq, affinity labels and pairs, random walk, dense
CRF, image-level labels, models, methods, resumable stages and the pipeline on real VOC frames."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from leseg.components.affinity import (
    affinity,
    affinity_label_pairs,
    affinity_labels,
    affinity_loss,
    downsample_labels,
    gather_pairs,
    pair_indices,
    pair_offsets,
)
from leseg.components.cam import (
    aggregate_cams,
    background_score,
    cam_prediction,
    classification_loss,
    equivariance_loss,
    max_normalize,
)
from leseg.components.crf import crf_available, crf_label_map, dense_crf
from leseg.components.random_walk import (
    affinity_matrix,
    propagate_cams,
    random_walk,
    transition_matrix,
)
from leseg.data.image_labels import ImageLabelDataModule, image_label_from_mask, load_image_labels
from leseg.data.voc import VOCSegmentation
from leseg.methods.affinitynet import AffinityNet
from leseg.methods.optim import four_param_groups
from leseg.methods.ssenet import SSENetCAM
from leseg.models.heads.affinity import AffinityNetModel
from leseg.models.heads.cam import CAMNet
from leseg.models.resnet38 import ResNet38, TimmCAMTrunk
from leseg.stages import ssenet as stages
from leseg.stages.runner import run_items, save_npz

from conftest import REPO, compose_cfg, sample_data

EPS = 1e-5


# ------------------------------------------------------------------------------ CAM maths
def test_max_normalize_on_a_hand_made_cam() -> None:
    cam = torch.tensor([[[[-1.0, 2.0, 4.0]], [[1.0, 1.0, 1.0]]]])  # (1, 2, 1, 3)
    out = max_normalize(cam, torch.tensor([[1.0, 0.0]]))
    expected = torch.tensor([0.0, (2 - EPS) / (4 + EPS), (4 - EPS) / (4 + EPS)])
    assert torch.allclose(out[0, 0, 0], expected)
    assert torch.equal(out[0, 1], torch.zeros(1, 3))  # absent class zeroed
    assert torch.allclose(max_normalize(cam)[0, 1, 0], torch.full((3,), (1 - EPS) / (1 + EPS)))


def test_equivariance_loss_on_a_hand_made_cam() -> None:
    # full CAM: rows [0 0 4 4] -> bilinear 0.5x (align_corners=False) gives [0, 4]: N = [0, ~1];
    # small CAM [2, 2]: N = [~1, ~1]  -> squared differences [1, 0] on the present class.
    full = torch.tensor([[0.0, 0.0, 4.0, 4.0]] * 2)[None, None].repeat(1, 2, 1, 1)
    full.requires_grad_(True)
    small = torch.full((1, 2, 1, 2), 2.0, requires_grad=True)
    labels = torch.tensor([[1.0, 0.0]])  # the second channel is absent: zeros in both
    loss = equivariance_loss(small, full, labels)
    n = (4 - EPS) / (4 + EPS)
    m = (2 - EPS) / (2 + EPS)
    assert loss.item() == pytest.approx(((m - 0) ** 2 + (m - n) ** 2) / 4, rel=1e-6)
    loss.backward()  # gradients reach both branches
    assert small.grad.abs().sum() > 0 and full.grad.abs().sum() > 0
    both = equivariance_loss(small.detach(), full.detach(), torch.ones(1, 2))
    assert both.item() == pytest.approx(2 * loss.item(), rel=1e-6)  # mean over all 20 channels


def test_classification_loss_is_soft_margin_on_gap() -> None:
    cam = torch.zeros(1, 2, 4, 4)
    cam[:, 0] = 2.0  # GAP 2 for a present class, 0 for an absent one
    y = torch.tensor([[1.0, 0.0]])
    expected = (math.log1p(math.exp(-2.0)) + math.log(2.0)) / 2
    assert classification_loss(cam, y).item() == pytest.approx(expected, rel=1e-6)


def test_aggregate_cams_normalises_zeroes_absent_and_unflips() -> None:
    torch.manual_seed(0)
    image = torch.randn(1, 3, 8, 12)
    ramp = torch.linspace(0, 1, 12).expand(1, 1, 8, 12)

    def cam_fn(x: torch.Tensor) -> torch.Tensor:  # a left-to-right ramp whatever the input
        base = torch.nn.functional.interpolate(ramp.expand(x.shape[0], -1, -1, -1),
                                               size=x.shape[-2:], mode="bilinear")
        return torch.cat([base, -base, 3 * base], dim=1)

    labels = torch.tensor([[1.0, 1.0, 0.0]])
    out = aggregate_cams(cam_fn, image, labels, scales=(1.0,), flip=False)
    assert torch.allclose(out[0, 0], ramp[0, 0] / (1 + EPS))
    assert torch.equal(out[0, 1], torch.zeros(8, 12)) and torch.equal(out[0, 2], torch.zeros(8, 12))
    flipped = aggregate_cams(cam_fn, image, labels, scales=(1.0,), flip=True)
    # the flipped pass sees a ramp too, un-flipped it becomes the mirrored ramp: sum is constant
    row = flipped[0, 0, 0]
    assert torch.allclose(row, torch.full_like(row, row[0]), atol=1e-5)
    assert flipped.max() <= 1.0 and flipped.min() >= 0.0


def test_cam_prediction_uses_background_score_02() -> None:
    cams = torch.tensor([[[[0.1, 0.5]], [[0.15, 0.7]]]])  # (1, 2, 1, 2)
    assert cam_prediction(cams).tolist() == [[[0, 2]]]
    assert background_score(cams, 4.0)[0, 0, 0, 1].item() == pytest.approx(0.3 ** 4)


# ------------------------------------------------------------------------- affinity
def test_pair_offsets_and_indices_on_a_tiny_grid() -> None:
    offsets = pair_offsets(5)
    assert len(offsets) == 34 and len(set(offsets)) == 34
    both = set(offsets) | {(-dy, -dx) for dy, dx in offsets}
    disk = {(dy, dx) for dy in range(-4, 5) for dx in range(-4, 5) if 0 < dy * dy + dx * dx < 25}
    assert both == disk  # half-disk: every neighbour in the radius exactly once, up to direction
    src, dst = pair_indices(5, 9, 5)  # one from-pixel: (0, 4)
    assert src.tolist() == [4]
    assert sorted(dst[:, 0].tolist()) == sorted(dy * 9 + 4 + dx for dy, dx in offsets)
    src, dst = pair_indices(7, 11, 5)
    assert src.numel() == 3 * 3 and dst.shape == (34, 9)
    grid = torch.arange(77.0).view(1, 1, 7, 11)
    gsrc, gdst = gather_pairs(grid, 5)
    assert torch.equal(gsrc[0, 0, 0].long(), src) and torch.equal(gdst[0, 0].long(), dst)
    with pytest.raises(ValueError, match="too small"):
        pair_indices(4, 9, 5)


def test_affinity_labels_from_low_and_high_alpha_maps() -> None:
    la = torch.tensor([[0, 1, 1], [0, 2, 255], [3, 3, 0]])
    ha = torch.tensor([[0, 0, 1], [1, 2, 2], [3, 255, 3]])
    expected = [[0, 0, 1], [255, 2, 255], [3, 255, 255]]
    # (0,1): la says fg but ha says bg -> bg wins; (1,0): la bg, ha fg -> unconfident;
    # padding in either map -> ignored
    assert affinity_labels(la, ha).tolist() == expected


def test_pair_sets_match_a_brute_force_count() -> None:
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (1, 6, 10), generator=gen)
    labels[0, 2, 3] = 255
    bg, fg, neg = affinity_label_pairs(labels, 5)
    src, dst = pair_indices(6, 10, 5)
    flat = labels.flatten()
    counts = [0, 0, 0]
    for n in range(src.numel()):
        for k in range(dst.shape[0]):
            a, b = int(flat[src[n]]), int(flat[dst[k, n]])
            if 255 in (a, b):
                continue
            counts[0 if a == b == 0 else 1 if a == b else 2] += 1
    assert [int(bg.sum()), int(fg.sum()), int(neg.sum())] == counts
    assert int((bg + fg + neg).max()) == 1  # the sets are disjoint


def test_affinity_and_loss_hand_computed() -> None:
    feats = torch.zeros(1, 2, 5, 9)
    feats[0, :, :, 6:] = 1.0  # right part differs by 1 in every channel
    aff = affinity(feats, 5)
    _, dst = pair_indices(5, 9, 5)
    cross = (dst[:, 0] % 9) >= 6  # the one from-pixel (0,4) sits in the left part
    assert torch.allclose(aff[0, cross, 0], torch.full((int(cross.sum()),), math.exp(-1.0)))
    assert torch.allclose(aff[0, ~cross, 0], torch.ones(int((~cross).sum())))
    a = torch.tensor([[[0.5, 0.9, 0.2]]])
    bg, fg, neg = (torch.tensor([[[1.0, 0, 0]]]), torch.tensor([[[0, 1.0, 0]]]),
                   torch.tensor([[[0, 0, 1.0]]]))
    out = affinity_loss(a, bg, fg, neg)
    expected = -math.log(0.5 + EPS) / 4 - math.log(0.9 + EPS) / 4 - math.log(0.8 + EPS) / 2
    assert out["loss"].item() == pytest.approx(expected, rel=1e-4)


def test_downsample_labels_majority_and_padding() -> None:
    lab = torch.full((1, 16, 24), 255)
    lab[0, :, :8] = 1
    lab[0, :, 8:16] = 2
    lab[0, :3, 8:16] = 3  # minority (3 of 8 rows) inside the middle cell
    lab[0, 8:, 8:16] = 4
    assert downsample_labels(lab, 8, 21).tolist() == [[[1, 2, 255], [1, 4, 255]]]


def test_downsample_labels_is_the_label_majority_not_the_pooled_crf_scores() -> None:
    # one 2x2 cell: three pixels of class 1 at CRF score 0.6 (background 0.4), one background
    # pixel at score 1.0. Pooled scores (the reference): bg (3 * 0.4 + 1) / 4 = 0.55 > 0.45, so
    # background; the majority of the labels (leseg, documented deviation): class 1.
    scores = torch.tensor([[[0.4, 0.4], [0.4, 1.0]], [[0.6, 0.6], [0.6, 0.0]]])  # (2, 2, 2)
    labels = scores.argmax(0)[None]
    assert labels.tolist() == [[[1, 1], [1, 0]]]
    pooled = F.avg_pool2d(scores[None], 2)[0, :, 0, 0]
    assert pooled.tolist() == pytest.approx([0.55, 0.45]) and int(pooled.argmax()) == 0
    assert downsample_labels(labels, 2, 2).tolist() == [[[1]]]
    # a tie goes to the lower class; an all-ignore cell stays ignored
    tie = torch.tensor([[[0, 1, 255, 255], [0, 1, 255, 255]]])
    assert downsample_labels(tie, 2, 2).tolist() == [[[0, 255]]]


# ------------------------------------------------------------------------- random walk
def _two_region_affinity(h: int = 6, w: int = 12) -> torch.Tensor:
    region = torch.zeros(h, w, dtype=torch.long)
    region[:, w // 2:] = 1
    src, dst = pair_indices(h, w, 5)
    flat = region.flatten()
    return (flat[src][None] == flat[dst]).float() * 0.9  # 0.9 inside a region, 0 across


def test_transition_matrix_is_column_stochastic() -> None:
    aff = _two_region_affinity()
    for dense in (True, False):
        a = affinity_matrix(aff, 6, 12, 5, beta=8, dense=dense)
        t = transition_matrix(a)
        a, t = (a, t) if dense else (a.to_dense(), t.to_dense())
        assert torch.equal(a, a.T) and torch.equal(a.diagonal(), torch.ones(72))
        assert a.max() == 1 and a[a < 1].max() == pytest.approx(0.9 ** 8)  # affinity^beta
        assert torch.allclose(t.sum(dim=0), torch.ones(72), atol=1e-6)


def test_random_walk_spreads_inside_a_region_not_across_a_zero_boundary() -> None:
    aff = _two_region_affinity()
    scores = torch.zeros(2, 6, 12)
    scores[1, 2, 1] = 1.0  # one seed pixel in the left region
    # as in the reference, a few corner pixels are in no pair (row 0, columns < r - 1): they
    # keep their own score
    linked = (affinity_matrix(aff, 6, 12).sum(dim=0) > 1).view(6, 12)
    assert linked[:, :6].sum() >= 25
    for dense in (True, False):
        out = random_walk(scores, aff, 6, 12, beta=8, log_t=8, dense=dense)
        assert (out[1, :, :6][linked[:, :6]] > 1e-4).all()  # spread over the left region
        assert torch.equal(out[1, :, 6:], torch.zeros(6, 6))  # nothing crossed the boundary
        assert torch.allclose(out[0], torch.zeros(6, 12))
    ones = random_walk(torch.ones(1, 6, 12), aff, 6, 12)  # averages keep constants
    assert torch.allclose(ones, torch.ones(1, 6, 12), atol=1e-5)
    dense = random_walk(scores, aff, 6, 12, dense=True)
    assert torch.allclose(dense, random_walk(scores, aff, 6, 12, dense=False), atol=1e-5)


def test_propagate_cams_gives_a_pseudo_mask_of_the_seeded_region() -> None:
    aff = _two_region_affinity()
    cams = torch.zeros(20, 45, 90)  # 45x90 image -> padded 48x96 -> 6x12 grid
    cams[6, :, :30] = 1.0           # class 7 on 30 of the 48 columns of the left region
    mask = propagate_cams(cams, aff, (6, 12))
    assert mask.shape == (45, 90)
    assert set(mask.unique().tolist()) == {0, 7}
    assert (cam_prediction(cams[None])[0, :, 34:40] == 0).all()  # not covered by the CAM ...
    assert (mask[:, :40] == 7).all()               # ... but reached by the walk inside the region
    assert (mask[:, 56:] == 0).all()               # and nothing crosses the zero-affinity edge


def test_psa_background_alpha_lets_a_weak_cam_win_where_02_loses() -> None:
    """bg_alpha: background (1 − max CAM)^α per pixel (psa ``infer_aff.py``) instead of 0.2. With
    zero affinities the walk is the identity, so the mask is the argmax of the pooled stack: a
    uniform CAM of 0.15 loses to 0.2 but beats (1 − 0.15)^16 = 0.0743; a CAM of 0.05 loses to
    0.95^16 = 0.440 as well."""
    aff = torch.zeros_like(_two_region_affinity())
    cams = torch.zeros(20, 48, 96)
    cams[2, :, :48] = 0.15
    cams[2, :, 48:] = 0.05
    assert (propagate_cams(cams, aff, (6, 12)) == 0).all()
    mask = propagate_cams(cams, aff, (6, 12), bg_alpha=16)
    # (the bilinear upsampling moves the edge between the two middle cells)
    assert (mask[:, :40] == 3).all() and (mask[:, 56:] == 0).all()
    assert 0.85 ** 16 < 0.15 < 0.95 ** 16  # the hand computation the assertions rest on


# ----------------------------------------------------------------------------- dense CRF
def test_dense_crf_refines_scores_to_image_edges() -> None:
    if not crf_available():
        pytest.skip("pydensecrf2 not installed (pip install '.[crf]')")
    image = np.zeros((24, 32, 3), dtype=np.uint8)
    image[:, 16:] = 255  # right half white
    cams = np.zeros((20, 24, 32), dtype=np.float32)
    cams[4, :, 12:] = 0.9  # a CAM leaking 4 px over the edge
    labels = np.zeros(20)
    labels[4] = 1
    la = crf_label_map(image, cams, labels, alpha=4)
    assert set(np.unique(la).tolist()) <= {0, 5}
    assert (la[:, 17:] == 5).all() and (la[:, :11] == 0).all()
    q = dense_crf(image, np.stack([np.full((24, 32), 0.5), cams[4] + 0.01]))
    assert np.allclose(q.sum(axis=0), 1.0, atol=1e-4)


def test_missing_crf_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pydensecrf", None)
    monkeypatch.setitem(sys.modules, "pydensecrf.densecrf", None)
    with pytest.raises(ImportError, match=r"\.\[crf\]"):
        dense_crf(np.zeros((4, 4, 3), np.uint8), np.ones((2, 4, 4), np.float32))


# ---------------------------------------------------------------------- image-level labels
def _tiny_voc(root: Path, masks: dict[str, np.ndarray]) -> Path:
    (root / "JPEGImages").mkdir(parents=True)
    (root / "SegmentationClass").mkdir()
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    for name, mask in masks.items():
        rgb = np.random.default_rng(0).integers(0, 255, (*mask.shape, 3), dtype=np.uint8)
        Image.fromarray(rgb).save(root / "JPEGImages" / f"{name}.jpg")
        Image.fromarray(mask.astype(np.uint8)).save(root / "SegmentationClass" / f"{name}.png")
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text("\n".join(masks) + "\n")
    return root


def test_image_labels_from_masks_are_cached_and_bad_masks_named(tmp_path: Path) -> None:
    mask = np.zeros((16, 24), np.uint8)
    mask[2:6, 2:6] = 15
    mask[8:, 8:] = 3
    mask[0, :] = 255
    root = _tiny_voc(tmp_path / "VOC2012", {"a": mask, "b": np.zeros((16, 24), np.uint8)})
    y = image_label_from_mask(mask)
    assert y.shape == (20,) and np.flatnonzero(y).tolist() == [2, 14]
    ds = VOCSegmentation(root, "train")
    cache = tmp_path / "cache" / "labels.npz"
    table = load_image_labels(ds, cache)
    assert cache.is_file() and not list(cache.parent.glob(".*tmp"))
    assert np.array_equal(table["a"], y) and table["b"].sum() == 0
    Image.fromarray(np.full((16, 24), 30, np.uint8)).save(root / "SegmentationClass" / "a.png")
    assert np.array_equal(load_image_labels(ds, cache)["a"], y)  # served from the cache
    with pytest.raises(ValueError, match=r"SegmentationClass/a\.png"):
        load_image_labels(ds, None)
    cache.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="labels.npz"):
        load_image_labels(ds, cache)


def test_image_label_datamodule_batches(data_dir: Path, tmp_path: Path) -> None:
    dm = ImageLabelDataModule(name="synthetic_voc", root=str(data_dir / "synthetic_voc" / "VOC2012"),
                              num_classes=21, train_transforms={"crop_size": [32, 32]},
                              batch_size=4, cache_dir=str(tmp_path / "cache"))
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 3, 32, 32)
    assert batch["class_labels"].shape == (4, 20) and batch["class_labels"].dtype == torch.float32
    for y, lab in zip(batch["class_labels"], batch["label"]):
        present = set(lab.unique().tolist()) - {0, 255}
        assert present <= {int(c) + 1 for c in torch.nonzero(y).flatten()}
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2  # train and val tables


# ------------------------------------------------------------------------------ models
def test_resnet38_stride_frozen_parts_and_weight_file(tmp_path: Path) -> None:
    net = ResNet38(width=1 / 16)
    taps = net.forward_taps(torch.randn(1, 3, 36, 44))
    assert [t.shape[1] for t in taps] == list(net.tap_channels)
    assert all(t.shape[-2:] == (5, 6) for t in taps)  # ceil(36/8), ceil(44/8)
    net.train()
    assert not net.bn7.training and net.b7.dropout_2b1.training
    assert not any(p.requires_grad for p in net.b2_1.parameters())
    assert net.b3.conv_branch2a.weight.requires_grad and not net.b3.bn_branch2a.weight.requires_grad
    path = tmp_path / "r38.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, path)
    other = ResNet38(width=1 / 16, weights=str(path))
    assert torch.equal(other.conv1a.weight, net.conv1a.weight)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        ResNet38(width=1 / 16, weights=str(tmp_path / "missing.pth"))
    with pytest.raises(ValueError, match="r38.pth"):
        ResNet38(width=1 / 8, weights=str(path))


def _cam_module(**kwargs) -> SSENetCAM:
    net = CAMNet(TimmCAMTrunk("resnet18", frozen_levels=0, freeze_bn=False), num_classes=21)
    return SSENetCAM(net, 21, **kwargs)


def test_ssenet_loss_terms_and_plain_cam_switch() -> None:
    torch.manual_seed(0)
    batch = {"image": torch.randn(2, 3, 64, 64),
             "class_labels": torch.tensor([[1.0] + [0.0] * 19, [0.0] * 5 + [1.0] + [0.0] * 14])}
    module = _cam_module().eval()  # no dropout: deterministic forward passes
    logged = {}
    module.log = lambda k, v, **kw: logged.__setitem__(k, v)
    module.log_dict = lambda d, **kw: logged.update(d)
    loss = module.training_step(batch, 0)
    assert loss.item() == pytest.approx(0.5 * logged["train/loss_cls"].item()
                                        + 0.5 * logged["train/loss_cls_small"].item()
                                        + logged["train/loss_eq"].item(), rel=1e-5)
    assert logged["train/loss_eq"].item() > 0
    plain = _cam_module(equivariance=False).eval()
    plain.load_state_dict(module.state_dict())
    plain.log, plain.log_dict = module.log, module.log_dict
    logged.clear()
    assert plain.training_step(batch, 0).item() == pytest.approx(
        logged["train/loss_cls"].item()) and "train/loss_eq" not in logged


def test_four_parameter_groups_put_weight_decay_in_its_slot() -> None:
    from leseg.methods.optim import build_four_group_optimizer

    net = CAMNet(ResNet38(width=1 / 16, freeze_bn=False), num_classes=21)  # BN biases train
    net.head.classifier.bias = torch.nn.Parameter(torch.zeros(20))  # give the head a bias too
    groups = {g["name"]: g for g in four_param_groups(net, ("head.",), 0.01, 5e-4)}
    assert [groups[n]["lr"] for n in ("pretrained_weight", "pretrained_bias", "new_weight",
                                      "new_bias")] == pytest.approx([0.01, 0.02, 0.1, 0.2])
    assert groups["pretrained_weight"]["weight_decay"] == 5e-4
    assert groups["new_bias"]["weight_decay"] == 0.0 and groups["pretrained_bias"]["weight_decay"] == 0
    frozen = {id(p) for p in net.backbone.b2.parameters()}
    assert not frozen & {id(p) for g in groups.values() for p in g["params"]}
    assert id(net.backbone.bn7.bias) in {id(p) for p in groups["pretrained_bias"]["params"]}
    bn_frozen = CAMNet(ResNet38(width=1 / 16), num_classes=21)  # reference: BN frozen, no biases
    assert [g["name"] for g in four_param_groups(bn_frozen, ("head.",), 0.01, 5e-4)] == [
        "pretrained_weight", "new_weight"]
    opt = build_four_group_optimizer(net, ("head.",), {"lr": 0.01, "momentum": 0.9,
                                                       "weight_decay": 5e-4})
    assert all(g["momentum"] == 0.9 for g in opt.param_groups)  # not the reference's 5e-4


def test_affinitynet_step_and_missing_crf_maps() -> None:
    torch.manual_seed(0)
    model = AffinityNet(AffinityNetModel(ResNet38(width=1 / 16)))
    la = torch.zeros(2, 48, 80, dtype=torch.long)
    la[:, 8:32, 8:32] = 3
    ha = la.clone()
    ha[:, 6:34, 6:34] = 3  # a ring that is fg under high alpha only: unconfident
    model.log = model.log_dict = lambda *a, **k: None
    loss = model.training_step({"image": torch.randn(2, 3, 48, 80), "crf_la": la, "crf_ha": ha}, 0)
    assert torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    assert model.net.head.fuse.weight.grad.abs().sum() > 0
    with pytest.raises(KeyError, match="data.crf_dir"):
        model.training_step({"image": torch.randn(1, 3, 48, 48)}, 0)


# ------------------------------------------------------------------------------ stages
def test_runner_skips_finished_items_and_never_leaves_partial_files(tmp_path: Path) -> None:
    calls = []

    def work(name: str) -> dict:
        calls.append(name)
        return {"x": np.full(3, len(name))}

    out = tmp_path / "out"
    first = run_items(["a", "bb"], lambda n: out / f"{n}.npz", work, save_npz)
    assert first.done == ["a", "bb"] and first.skipped == []
    again = run_items(["a", "bb", "ccc", "dddd"], lambda n: out / f"{n}.npz", work, save_npz,
                      workers=2)
    assert again.skipped == ["a", "bb"] and sorted(again.done) == ["ccc", "dddd"]
    assert calls == ["a", "bb"]  # the new items ran in the worker processes
    assert sorted(p.name for p in out.iterdir()) == ["a.npz", "bb.npz", "ccc.npz", "dddd.npz"]
    with np.load(out / "dddd.npz") as data:
        assert data["x"].tolist() == [4, 4, 4]


_INTERRUPTED = textwrap.dedent("""
    import signal, sys, time, numpy as np
    from pathlib import Path
    from leseg.stages.runner import run_items
    from leseg.utils.io import atomic_write
    # a job started in the background by a non-interactive shell inherits SIGINT ignored, and
    # Python then raises no KeyboardInterrupt: restore it so the test does not depend on the caller
    signal.signal(signal.SIGINT, signal.default_int_handler)
    out = Path(sys.argv[1])
    def slow_save(path, content):
        with atomic_write(path) as f:
            f.write(b"x" * 10)
            if path.name == "b.npz":
                print("writing", flush=True)
                time.sleep(60)   # killed here, mid-write
            f.write(b"y")
    run_items(["a", "b", "c"], lambda n: out / f"{n}.npz", lambda n: None, slow_save)
""")


@pytest.mark.slow
def test_cam_stage_interrupted_mid_write_leaves_no_partial_file(tmp_path: Path) -> None:
    out = tmp_path / "cams"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen([sys.executable, "-c", _INTERRUPTED, str(out)], env=env,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGINT)  # KeyboardInterrupt inside the atomic write
    proc.wait(timeout=180)  # generous: a loaded shared CPU delays the interpreter shutdown
    assert sorted(p.name for p in out.iterdir()) == ["a.npz"]  # no b.npz, no temporary left
    assert (out / "a.npz").read_bytes() == b"x" * 10 + b"y"


def _cam_stage(module, root: Path, out: Path, calls: list) -> stages.StageResult:
    original = type(module).cams

    def counting(images, labels, scales, flip):
        calls.append(images.shape)
        return original(module, images, labels, scales, flip)

    module.cams = counting
    ds = stages.open_dataset(root, "train")
    return stages.run_cams(module, ds, out, scales=(0.5,), flip=False)


def test_cam_stage_rerun_skips_finished_images(data_dir: Path, tmp_path: Path) -> None:
    root = data_dir / "synthetic_voc" / "VOC2012"
    module, calls = _cam_module(), []
    out = tmp_path / "cams"
    first = _cam_stage(module, root, out, calls)
    assert len(first.done) == 8 and len(calls) == 8
    cams, labels = stages.read_cams(out / f"{first.done[0]}.npz")
    assert cams.shape[0] == 20 and cams.max() <= 1.0 and (cams[labels == 0] == 0).all()
    (out / f"{first.done[3]}.npz").unlink()
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    second = _cam_stage(module, root, out, calls)
    assert second.done == [first.done[3]] and len(second.skipped) == 7 and len(calls) == 9
    assert all(before[n] == (out / n).stat().st_mtime_ns for n in before)


# --------------------------------------------------------------- pipeline on real VOC frames
def _overrides(tmp_path: Path, root: Path, method: str, model: str, out: str) -> list[str]:
    return ["data=voc_image_labels", f"model={model}", f"method={method}", "trainer=cpu",
            "logger=none", "~callbacks.progress_bar", "~callbacks.model_summary",
            "~callbacks.image_logger", "trainer.max_epochs=1", "trainer.limit_train_batches=1",
            "trainer.limit_val_batches=1", "trainer.num_sanity_val_steps=0",
            "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
            f"data.root={root}", "data.train_set=train", "data.batch_size=2",
            "data.num_workers=0", "data.persistent_workers=false", "data.pin_memory=false",
            "++data.max_val_samples=1", "data.train_transforms.crop_size=[96,96]",
            "data.train_transforms.scale_range=[0.3,0.4]", "test=false",
            "model.trunk._target_=leseg.models.resnet38.TimmCAMTrunk",
            "+model.trunk.name=resnet18", "~model.trunk.width", "~model.trunk.frozen",
            "+model.trunk.frozen_levels=0", "model.trunk.freeze_bn=false",
            "callbacks.model_checkpoint.monitor=null", "extras.print_config=false",
            f"paths.data_dir={tmp_path}"]


@pytest.mark.slow
@pytest.mark.sample_data
def test_pipeline_end_to_end_on_real_voc_sample_frames(tmp_path: Path) -> None:
    from leseg.data.datamodules import VOCDataModule
    from leseg.tasks.train import train

    root = sample_data("voc_sample", "VOC2012")
    cam_cfg = compose_cfg("train", _overrides(tmp_path, root, "ssenet", "cam_resnet38", "cam")
                          + ["method.val_scales=[0.25]"], tmp_path / "cam")
    metrics, objects = train(cam_cfg)
    assert objects["trainer"].global_step == 1 and 0.0 <= metrics["val/mIoU"] <= 1.0
    cam_ckpt = tmp_path / "cam" / "checkpoints" / "last.ckpt"
    common = ["--root", str(root), "--split", "train", "--cache-dir", str(tmp_path / "cache")]
    w = tmp_path / "work"
    # the offline stages run from their own entry with a stage config (conf/stage/ssenet_*.yaml)
    from leseg.stages.entry import run

    stage_common = [f"stage.root={root}", "stage.split=train", f"stage.cache_dir={tmp_path / 'cache'}",
                    "extras.print_config=false", f"paths.data_dir={tmp_path}"]
    summary = run(compose_cfg("stages", ["stage=ssenet_cams", f"ckpt_path={cam_ckpt}",
                                         f"stage.out={w / 'cams'}", "stage.scales=[0.25]",
                                         "stage.no_flip=true", "stage.device=cpu",
                                         *stage_common], tmp_path / "stage_cams"))
    assert summary["done"] == 4 and len(list((w / "cams").glob("*.npz"))) == 4
    saved = json.loads((tmp_path / "stage_cams" / "stage_summary.json").read_text())
    assert saved["result"] == summary
    crf = [] if crf_available() else ["stage.no_crf=true"]
    summary = run(compose_cfg("stages", ["stage=ssenet_crf", f"stage.cams={w / 'cams'}",
                                         f"stage.out={w / 'crf'}", *crf, *stage_common],
                              tmp_path / "stage_crf"))
    assert summary["done"] == 4
    aff_cfg = compose_cfg("train", _overrides(tmp_path, root, "affinitynet", "aff_resnet38", "aff")
                          + [f"data.crf_dir={w / 'crf'}", "trainer.limit_val_batches=0"],
                          tmp_path / "aff")
    _, objects = train(aff_cfg)
    assert objects["trainer"].global_step == 1
    aff_ckpt = tmp_path / "aff" / "checkpoints" / "last.ckpt"
    summary = run(compose_cfg("stages", ["stage=ssenet_random_walk", f"ckpt_path={aff_ckpt}",
                                         f"stage.cams={w / 'cams'}", f"stage.out={w / 'pseudo'}",
                                         "stage.device=cpu", "stage.log_t=4", *stage_common],
                              tmp_path / "stage_rw"))
    assert summary["done"] == 4
    # rerun: every image is found done (skip-if-done)
    summary = run(compose_cfg("stages", ["stage=ssenet_random_walk", f"ckpt_path={aff_ckpt}",
                                         f"stage.cams={w / 'cams'}", f"stage.out={w / 'pseudo'}",
                                         "stage.device=cpu", "stage.log_t=4", *stage_common],
                              tmp_path / "stage_rw2"))
    assert summary == {"stage": "random_walk", "done": 0, "skipped": 4}
    # the command line: python -m leseg.stages <stage> <overrides>
    env = {**os.environ, "LESEG_OUTPUT_DIR": str(tmp_path / "outputs")}
    proc = subprocess.run([sys.executable, "-m", "leseg.stages", "ssenet_evaluate",
                           f"stage.masks={w / 'pseudo'}", *stage_common],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = (tmp_path / "outputs" / "stages" / "ssenet_evaluate").iterdir()
    saved = json.loads((run_dir / "metrics.json").read_text())
    metrics = json.loads((run_dir / "stage_summary.json").read_text())["result"]
    assert saved["mIoU"] == pytest.approx(metrics["mIoU"]) and 0.0 <= saved["mIoU"] <= 1.0
    result = stages.main(["evaluate", *common, "--masks", str(w / "pseudo"),
                          "--json", str(w / "rw.json")])
    assert 0.0 <= result["mIoU"] <= 1.0 and (w / "rw.json").is_file()
    cam_result = stages.main(["evaluate", *common, "--cams", str(w / "cams")])
    assert 0.0 <= cam_result["mIoU"] <= 1.0
    for path in (w / "pseudo").iterdir():
        cams, labels = stages.read_cams(w / "cams" / f"{path.stem}.npz")
        values = set(np.unique(np.array(Image.open(path))).tolist())
        assert values <= {0} | {int(c) + 1 for c in np.flatnonzero(labels)}
    # the pseudo-masks are training labels of the supervised stage (data.label_dir)
    dm = VOCDataModule(name="voc", root=str(root), num_classes=21, label_dir=str(w / "pseudo"),
                       train_set="train")
    dm.setup("fit")
    assert dm.train_dataset[0]["label"].max() <= 20


def test_every_stage_config_calls_run_stage_with_its_command_line_options(tmp_path: Path) -> None:
    """A stage config's keys are the stage's command-line options; both reach run_stage."""
    sets = {"ssenet_cams": ["ckpt_path=c.ckpt"], "ssenet_crf": ["stage.cams=w/cams"],
            "ssenet_random_walk": ["ckpt_path=a.ckpt", "stage.cams=w/cams"],
            "ssenet_evaluate": ["stage.masks=w/pseudo"],
            "ssenet_audit": ["stage.crf=w/crf"]}
    dataset_keys = {"root", "split", "label_subdir", "cache_dir", "max_images", "progress"}
    for name, extra in sets.items():
        cfg = compose_cfg("stages", [f"stage={name}", *extra], tmp_path / name)
        assert cfg.stage._target_ == "leseg.stages.ssenet.run_stage"
        assert cfg.stage.root.endswith("VOCdevkit/VOC2012")
        options = set(cfg.stage) - {"_target_", "name"} - dataset_keys
        assert options == set(stages.STAGE_OPTIONS[cfg.stage.name])
        flags = ["--root", "r"] + (["--ckpt", "c"] if "ckpt" in options else []) + (
            ["--cams", "c"] if "cams" in options else []) + (
            ["--out", "o"] if "out" in options else [])
        args = vars(stages._parser().parse_args([cfg.stage.name, *flags]))
        assert set(args) - {"stage"} - dataset_keys == options
        if cfg.stage.name == "cams":  # the same defaults on both paths
            assert cfg.stage.scales == args["scales"] and cfg.stage.no_flip == args["no_flip"]
    # ckpt_path= travels into the stage
    cfg = compose_cfg("stages", ["stage=ssenet_cams", "ckpt_path=/x/c.ckpt"], tmp_path / "c")
    assert cfg.stage.ckpt == "/x/c.ckpt"


def test_run_stage_refuses_bad_options_before_reading_data(tmp_path: Path) -> None:
    root = tmp_path / "no_voc"
    with pytest.raises(ValueError, match="unknown SSENet stage 'cam'"):
        stages.run_stage("cam", root)
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['sclaes'\]"):
        stages.run_stage("cams", root, ckpt="c", out="o", sclaes=[1.0])
    with pytest.raises(ValueError, match=r"needs \['ckpt'\]"):
        stages.run_stage("cams", root, out="o")
    with pytest.raises(ValueError, match="exactly one of cams"):
        stages.run_stage("evaluate", root, cams="c", masks="m")
    with pytest.raises(ValueError, match="exactly one of cams"):
        stages.run_stage("evaluate", root)
    with pytest.raises(FileNotFoundError, match="no_voc"):  # valid options: the data is read
        stages.run_stage("evaluate", root, masks="m")


def test_stages_entry_names_the_known_stages() -> None:
    proc = subprocess.run([sys.executable, "-m", "leseg.stages", "ssenet_cam"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "unknown stage 'ssenet_cam'" in proc.stderr and "ssenet_cams" in proc.stderr


# ------------------------------------------------------------------- affinity audit (#18)
def _two_region_voc(root: Path) -> tuple[Path, np.ndarray]:
    """A 40x80 image: class 15 in the left 40 columns, background right; grid 5x10, the radius-5
    pair set has 2 from-pixels (0, 4) (class) and (0, 5) (background), 34 partners each."""
    mask = np.zeros((40, 80), np.uint8)
    mask[:, :40] = 15
    return _tiny_voc(root, {"a": mask}), mask


def _true_pair_counts() -> tuple[int, int]:
    """(same-class, different-class) pairs of the grid of :func:`_two_region_voc`, brute force."""
    same = diff = 0
    for x0 in (4, 5):
        for _dy, dx in pair_offsets(5):
            if (x0 < 5) == (x0 + dx < 5):
                same += 1
            else:
                diff += 1
    return same, diff


def test_audit_of_crf_labels_counts_precision_against_the_mask(tmp_path: Path) -> None:
    root, mask = _two_region_voc(tmp_path / "voc")
    same, diff = _true_pair_counts()
    ds = stages.open_dataset(root, "train")
    crf = tmp_path / "crf"
    save_npz(crf / "a.npz", {"la": mask, "ha": mask})  # labels equal to the truth
    out = stages.audit_affinities(ds, crf_dir=crf)["crf"]
    assert out["cells"] == {"fg": 0.5, "bg": 0.5, "ignored": 0.0, "fg_precision": 1.0,
                            "bg_precision": 1.0}
    assert out["pairs"]["neg"] == {"count": diff, "precision": 1.0, "recall": 1.0}
    assert out["pairs"]["fg_pos"]["precision"] == out["pairs"]["bg_pos"]["precision"] == 1.0
    # the high-alpha map calls the whole object background: every cell is "confident background",
    # every pair a positive background pair, and no negative pair is left
    save_npz(crf / "a.npz", {"la": mask, "ha": np.zeros_like(mask)})
    out = stages.audit_affinities(ds, crf_dir=crf)["crf"]
    assert out["cells"]["bg"] == 1.0 and out["cells"]["bg_precision"] == 0.5
    assert out["pixels"]["ha_bg_precision"] == 0.5
    assert out["pairs"]["bg_pos"] == {"count": same + diff, "precision": same / (same + diff)}
    assert out["pairs"]["neg"]["count"] == 0 and out["pairs"]["neg"]["recall"] == 0.0


class _FakeAffinityNet(torch.nn.Module):
    """Returns given pair affinities (1, K, N) on the 5x10 grid, whatever the image."""

    radius = 5

    def __init__(self, aff: torch.Tensor) -> None:
        super().__init__()
        self.aff = aff

    def pair_affinities(self, images: torch.Tensor):
        assert images.shape[-2:] == (40, 80)
        return self.aff[None], (5, 10)


def test_audit_of_learnt_affinities_separates_a_perfect_from_an_inverted_net(
        tmp_path: Path) -> None:
    root, mask = _two_region_voc(tmp_path / "voc")
    ds = stages.open_dataset(root, "train")
    truth, _ = stages.ground_truth_affinities(mask)
    same, diff = _true_pair_counts()
    good = stages.audit_affinities(ds, model=_FakeAffinityNet(0.1 + 0.8 * truth))["net"]
    assert good["same"]["count"] == same and good["diff"]["count"] == diff
    assert good["same"]["mean_aff"] == pytest.approx(0.9)
    assert good["same"]["mean_aff_beta"] == pytest.approx(0.9 ** 8)  # 0.430: cut by the walk
    assert good["diff"]["mean_aff_beta"] == pytest.approx(0.1 ** 8)
    assert good["auc"] == 1.0 and good["diff_leak"] == 0.0 and good["same_cut"] == 1.0
    bad = stages.audit_affinities(ds, model=_FakeAffinityNet(1.0 - truth))["net"]
    assert bad["auc"] == 0.0 and bad["diff_leak"] == 1.0 and bad["same_cut"] == 1.0
    flat = stages.audit_affinities(ds, model=_FakeAffinityNet(torch.full_like(truth, 0.5)))
    assert flat["net"]["auc"] == 0.5
    with pytest.raises(ValueError, match="needs crf .*and/or ckpt"):
        stages.audit_affinities(ds)
    with pytest.raises(FileNotFoundError, match="CRF file .*a.npz not found"):
        stages.audit_affinities(ds, crf_dir=tmp_path / "nowhere")


def test_walk_with_the_crf_training_labels_as_affinities(tmp_path: Path) -> None:
    """stage.affinity=crf: what a net that fits its training labels exactly would give. With
    correct labels the leaky CAM is repaired; labels that call the object background join both
    regions, and the walk spreads the leak instead."""
    root, mask = _two_region_voc(tmp_path / "voc")
    ds = stages.open_dataset(root, "train")
    cams = np.zeros((1, 40, 80), np.float16)
    cams[0, :, :24] = 0.9   # the CAM covers 24 of the object's 40 columns
    cam_dir = tmp_path / "cams"
    save_npz(cam_dir / "a.npz", {"cams": cams, "classes": np.array([14]),
                                 "labels": np.eye(20, dtype=np.uint8)[14]})
    crf = tmp_path / "crf"
    save_npz(crf / "a.npz", {"la": mask, "ha": mask})
    aff, grid = stages.crf_affinities(mask, mask)
    assert torch.equal(aff, stages.ground_truth_affinities(mask)[0]) and grid == (5, 10)
    stages.run_random_walk(None, ds, cam_dir, tmp_path / "rw", crf_dir=crf)
    walked = stages.read_label(tmp_path / "rw" / "a.png")
    assert (walked[:, :40] == 15).mean() > (cams[0, :, :40] > 0.2).mean()
    assert (walked[:, 48:] == 0).all()
    with pytest.raises(ValueError, match="affinity=crf needs crf"):
        stages.run_stage("random_walk", root, cams=cam_dir, out=tmp_path / "o", affinity="crf")


def test_a_cam_runs_trunk_exports_and_initialises_affinitynet(tmp_path: Path) -> None:
    """``python -m leseg.export --network trunk`` (auto-detected) takes the ResNet trunk of a CAM /
    AffinityNet checkpoint (``net.backbone.backbone.body.``), and ``model.trunk.weights=<file>``
    loads it, strictly, into a fresh AffinityNet trunk."""
    from leseg.export import backbone_state_dict

    torch.manual_seed(0)
    source = AffinityNetModel(TimmCAMTrunk("resnet18"), widths=(8, 16, 32))
    ckpt = {"state_dict": {f"net.{k}": v for k, v in source.state_dict().items()}}
    state, network = backbone_state_dict(ckpt)
    assert network == "trunk" and "conv1.weight" in state
    path = tmp_path / "trunk.pth"
    torch.save(state, path)
    fresh = TimmCAMTrunk("resnet18", weights=str(path))
    for key, value in source.backbone.backbone.body.state_dict().items():
        assert torch.equal(fresh.backbone.body.state_dict()[key], value), key
