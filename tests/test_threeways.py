"""Three Ways (Hoyer et al. CVPR 2021), second half: depth transfer, DepthMix mean teacher,
annotation selection, multi-task network."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from conftest import TINY_CITY

DEC = (8, 8, 16, 16, 32)
H, W = 32, 64


def _depth_net(seed: int = 0):
    from leseg.models.depth import DepthNet

    torch.manual_seed(seed)
    net = DepthNet("resnet18", decoder_channels=DEC)
    # make the BN buffers non-trivial so that buffer transfer is checked too
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    return net


def _save_depth_ckpt(net, path: Path) -> Path:
    """A checkpoint laid out like a SelfSupervisedDepth Lightning checkpoint."""
    torch.save({"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()},
                "epoch": 1}, path)
    return path


# -------------------------------------------------------------------------------- transfer
def test_transfer_copies_every_encoder_and_decoder_entry(tmp_path: Path) -> None:
    from leseg.models.depth.segmentation import DepthSegmentor, export_depth_weights, main

    depth = _depth_net()
    ckpt = _save_depth_ckpt(depth, tmp_path / "depth.ckpt")
    seg = DepthSegmentor(5, encoder="resnet18", decoder_channels=DEC,
                         init_from_depth=str(ckpt))
    enc_keys = {f"encoder.{k}" for k in seg.backbone.state_dict()}
    dec_keys = {f"decoder.{k}" for k in seg.decoder.state_dict()}
    assert set(seg.transferred) == enc_keys | dec_keys  # nothing of either part left out
    assert not any(".disp." in k for k in seg.transferred)
    src = depth.state_dict()
    for key, value in seg.backbone.state_dict().items():
        torch.testing.assert_close(value, src[f"encoder.{key}"], rtol=0, atol=0)
    for key, value in seg.decoder.state_dict().items():
        torch.testing.assert_close(value, src[f"decoder.{key}"], rtol=0, atol=0)
    # the exported file transfers the same weights
    out = tmp_path / "export" / "depth.pt"
    assert main(["--ckpt", str(ckpt), "--out", str(out)]) == 0
    # encoder + whole decoder (disparity heads included), no pose network
    assert export_depth_weights(ckpt, out) == sum(1 for k in src if not k.startswith("pose."))
    seg2 = DepthSegmentor(5, encoder="resnet18", decoder_channels=DEC, init_from_depth=str(out))
    for (k1, v1), (k2, v2) in zip(seg.state_dict().items(), seg2.state_dict().items(),
                                  strict=True):
        if not k1.startswith("head."):
            assert k1 == k2 and torch.equal(v1, v2)
    # the network runs on ImageNet-normalised input and gives logits at the input size
    seg.eval()
    with torch.no_grad():
        logits = seg(torch.randn(2, 3, H, W))
    assert logits.shape == (2, 5, H, W)
    # same features as the depth network on the un-normalised images
    depth.eval()
    x01 = torch.rand(1, 3, H, W)
    x = (x01 - seg.input_mean) / seg.input_std
    with torch.no_grad():
        torch.testing.assert_close(seg.decode(x)[("features", 0)], depth(x01)[("features", 0)])


def test_transfer_errors_name_the_file(tmp_path: Path) -> None:
    from leseg.models.depth.segmentation import DepthSegmentor

    missing = tmp_path / "nope.ckpt"
    with pytest.raises(FileNotFoundError, match="nope.ckpt"):
        DepthSegmentor(5, encoder="resnet18", decoder_channels=DEC, init_from_depth=str(missing))
    ckpt = _save_depth_ckpt(_depth_net(), tmp_path / "depth.ckpt")
    with pytest.raises(ValueError, match=r"depth\.ckpt.*decoder_channels"):
        DepthSegmentor(5, encoder="resnet18", decoder_channels=(8, 8, 16, 16, 64),
                       init_from_depth=str(ckpt))
    other = tmp_path / "seg.ckpt"
    torch.save({"state_dict": {"net.backbone.x": torch.zeros(1)}}, other)
    with pytest.raises(KeyError, match="seg.ckpt"):
        DepthSegmentor(5, encoder="resnet18", decoder_channels=DEC, init_from_depth=str(other))


# ------------------------------------------------------------------ DepthMix mean teacher
def _tiny_method(**kwargs):
    from leseg.methods.depthmix import DepthMixMeanTeacher
    from leseg.models.depth.segmentation import DepthSegmentor

    torch.manual_seed(0)
    net = DepthSegmentor(3, encoder="resnet18", decoder_channels=DEC)
    return DepthMixMeanTeacher(net, num_classes=3, **kwargs)


def test_depthmix_method_masks_a_hand_made_pair_and_mixes_alike() -> None:
    method = _tiny_method(depth_net=None)
    # normalised disparities (each row holds 0 and 1, so per-image min-max keeps the values)
    d_a = torch.tensor([[0.50, 0.50, 0.10, 0.90, 0.0, 1.0]])
    d_b = torch.tensor([[0.52, 0.60, 0.10, 0.20, 0.0, 1.0]])
    images = torch.stack([torch.zeros(3, 1, 6), torch.ones(3, 1, 6)])
    pool = {"image": images, "disparity": torch.stack([d_a, d_b])[:, None] * 5 + 2,
            "valid": torch.ones(2, 1, 6, dtype=torch.bool)}  # affine: same after normalising
    partner, mask = method.mix_masks(pool, probs=None)
    assert partner.tolist() == [1, 0]
    # a keeps where d_a >= d_b - 0.03: all but pixel 1 (b closer by 0.10)
    assert mask[0].tolist() == [[False, True, False, False, False, False]]
    # b keeps all but pixel 3 (a closer by 0.70)
    assert mask[1].tolist() == [[False, False, False, True, False, False]]
    probs = torch.stack([torch.tensor([1.0, 0, 0]), torch.tensor([0, 0.5, 0.5])])[..., None, None]
    probs = probs.expand(2, 3, 1, 6)
    from leseg.components.mixing import apply_mix

    mixed_images, mixed_probs = apply_mix(mask, partner, images, probs)
    assert mixed_images[0, 0, 0].tolist() == [0, 1, 0, 0, 0, 0]
    assert mixed_probs[0, :, 0, 1].tolist() == [0, 0.5, 0.5]  # probabilities follow the image
    assert mixed_probs[1, :, 0, 3].tolist() == [1.0, 0, 0]
    with pytest.raises(ValueError, match="unlabeled_batch_size"):
        method.mix_masks({k: v[:1] for k, v in pool.items()}, probs=None)
    with pytest.raises(ValueError, match="method.depth_net"):
        method.mix_disparity({"image": images})


def test_confidence_share_weight_and_pseudo_labels_by_hand() -> None:
    method = _tiny_method(depth_net=None)
    probs = torch.zeros(2, 3, 1, 4)
    # max probabilities: 0.99, 0.968, 0.5, 0 (ignored) | 0.97, 0.9, 0.4, 0.968
    probs[0, :, 0, 0] = torch.tensor([0.99, 0.01, 0])
    probs[0, :, 0, 1] = torch.tensor([0.016, 0.968, 0.016])
    probs[0, :, 0, 2] = torch.tensor([0.25, 0.25, 0.5])
    probs[1, :, 0, 0] = torch.tensor([0.03, 0, 0.97])
    probs[1, :, 0, 1] = torch.tensor([0.9, 0.1, 0])
    probs[1, :, 0, 2] = torch.tensor([0.3, 0.4, 0.3])
    probs[1, :, 0, 3] = torch.tensor([0.968, 0.032, 0])
    labels, weight = method.pseudo_labels(probs)
    assert float(weight) == pytest.approx(4 / 8)  # 0.99, 0.968, 0.97, 0.968
    assert labels.tolist() == [[[0, 1, 2, 255]], [[2, 0, 1, 0]]]


def test_unsupervised_loss_averages_over_all_pixels_by_hand() -> None:
    from leseg.components.depthmix import weighted_pixel_ce

    # pixel 0: logits (ln 3, 0), label 0 → CE ln(4/3); pixel 1: (0, 0), label 1 → ln 2; two ignored
    logits = torch.tensor([[[[math.log(3.0), 0.0, 5.0, -5.0]], [[0.0, 0.0, 0.0, 0.0]]]])
    labels = torch.tensor([[[0, 1, 255, 255]]])
    loss = weighted_pixel_ce(logits, labels, torch.tensor(0.5))
    # reference cross_entropy2d with pixel weights: w · Σ CE / all 4 pixels (not / 2 valid)
    assert loss.item() == pytest.approx(0.5 * math.log(8 / 3) / 4)
    none = weighted_pixel_ce(logits.requires_grad_(), torch.full_like(labels, 255), 1.0)
    assert none.item() == 0.0 and none.requires_grad
    with pytest.raises(ValueError, match="labels \\(B, H, W\\)"):
        weighted_pixel_ce(logits, labels[0], 1.0)
    # the method's L_u is this loss on the mixed batch, with its pseudo-labels' ignore counted
    method = _tiny_method(depth_net=None, mix="classmix", mix_pool="all", color_jitter_prob=0.0,
                          blur_prob=0.0)
    x = torch.randn(4, 3, H, W)
    y = torch.randint(0, 3, (2, H, W))
    y[:, :8] = 255  # ignored ground truth → ignored pseudo-labels after GT mixing
    torch.manual_seed(0)
    out = method.compute_losses({"image": x[:2], "label": y}, {"image": x[2:]})
    labels = out["pseudo_labels"]
    assert bool((labels == 255).any())
    with torch.no_grad():
        ce = torch.nn.functional.cross_entropy(method.net(out["mixed_images"]), labels,
                                               ignore_index=255, reduction="sum")
    assert out["loss_unsup"].item() == pytest.approx((out["weight"] * ce / labels.numel()).item(),
                                                     rel=1e-4)


def test_depthmix_evaluates_the_configured_network() -> None:
    method = _tiny_method(depth_net=None)
    assert method.hparams.eval_net == "student" and method.hparams.ema_schedule == "warmup_average"
    with torch.no_grad():
        for p in method.teacher.parameters():
            p.mul_(0.5)
    method.eval()
    x = torch.randn(1, 3, H, W)
    method.teacher_ready.fill_(True)
    with torch.no_grad():
        torch.testing.assert_close(method.predict_probs(x), method.net(x).softmax(1))
        method.eval_net_name = "teacher"
        torch.testing.assert_close(method.predict_probs(x), method.teacher(x).softmax(1))
    with pytest.raises(ValueError, match="method.eval_net='ema' is not one of"):
        _tiny_method(depth_net=None, eval_net="ema")
    # a checkpoint written before the mean-teacher base has no teacher_ready: it loads (trained)
    old = {k: v for k, v in method.state_dict().items() if k != "teacher_ready"}
    fresh = _tiny_method(depth_net=None)
    fresh.load_state_dict(old)
    assert bool(fresh.teacher_ready)


def test_teacher_probabilities_use_one_hot_ground_truth_for_labeled_samples() -> None:
    method = _tiny_method(depth_net=None, mix_pool="all")
    x = torch.randn(2, 3, H, W)
    y = torch.randint(0, 3, (1, H, W))
    y[0, :4] = 255
    valid = torch.ones(1, H, W, dtype=torch.bool)
    valid[0, :, -8:] = False  # padded unlabeled pixels
    pool = method.mix_pool_batch({"image": x[:1], "label": y}, {"image": x[1:], "valid": valid})
    assert pool["has_label"].tolist() == [True, False]
    probs = method.teacher_probs(pool)
    expected = torch.nn.functional.one_hot(y[0].clamp(max=2), 3).permute(2, 0, 1).float()
    expected[:, :4] = 0  # ignored ground truth → all-zero rows
    torch.testing.assert_close(probs[0], expected)
    torch.testing.assert_close(probs[1].sum(0)[:, :-8], torch.ones(H, W - 8))
    assert float(probs[1, :, :, -8:].abs().sum()) == 0
    labels, _ = method.pseudo_labels(probs)
    assert bool((labels[0, :4] == 255).all()) and bool((labels[1, :, -8:] == 255).all())


def test_frozen_depth_network_gives_the_mix_disparity(tmp_path: Path) -> None:
    from leseg.models.depth.segmentation import DepthDisparity

    depth = _depth_net()
    ckpt = _save_depth_ckpt(depth, tmp_path / "depth.ckpt")
    frozen = DepthDisparity(str(ckpt), encoder="resnet18", decoder_channels=DEC)
    assert not any(p.requires_grad for p in frozen.parameters())
    method = _tiny_method(depth_net=frozen)
    method.train()
    assert not method.depth_net.training and method.net.training
    x01 = torch.rand(2, 3, H, W)
    x = (x01 - method.image_mean) / method.image_std
    depth.eval()
    with torch.no_grad():
        expected = depth(x01)[("disp", 0)][:, 0]
    lo = expected.flatten(1).min(1).values[:, None, None]
    hi = expected.flatten(1).max(1).values[:, None, None]
    torch.testing.assert_close(method.mix_disparity({"image": x}), (expected - lo) / (hi - lo))
    with pytest.raises(ValueError, match="decoder_channels"):
        DepthDisparity(str(ckpt), encoder="resnet18", decoder_channels=(8, 8, 16, 16, 64))
    with pytest.raises(ValueError, match="weights is null"):
        DepthDisparity(None, encoder="resnet18")


def _tiny_train_overrides(data_dir: Path, experiment: str, extra: list[str]) -> list[str]:
    tiny = [f"data.synthetic.{k}={v}" for k, v in TINY_CITY.items() if k != "kind"]
    return [f"experiment={experiment}", f"paths.data_dir={data_dir}",
            "data.root=${paths.data_dir}/synthetic_city",
            "data.splits_dir=${paths.data_dir}/splits/synthetic_city", *tiny, "data.split=4",
            f"data.train_transforms.crop_size=[{H},{W}]", "data.batch_size=2",
            "data.unlabeled_batch_size=2", "data.val_batch_size=2", "data.num_workers=0",
            "data.persistent_workers=false", f"model.decoder_channels=[{','.join(map(str, DEC))}]",
            "logger=none", "~callbacks.progress_bar", "~callbacks.model_summary",
            "~callbacks.image_logger", "trainer.max_epochs=1", "trainer.limit_train_batches=2",
            "trainer.limit_val_batches=1", "trainer.limit_test_batches=1",
            "trainer.num_sanity_val_steps=0", "trainer.enable_progress_bar=false",
            "trainer.enable_model_summary=false", "extras.print_config=false", *extra]


@pytest.mark.slow
def test_depthmix_trains_on_synthetic_city_and_the_teacher_follows(data_dir: Path,
                                                                   tmp_path: Path) -> None:
    from hydra.core.global_hydra import GlobalHydra

    from leseg.tasks.train import train

    from conftest import compose_cfg

    depth = _depth_net()
    ckpt = _save_depth_ckpt(depth, tmp_path / "depth.ckpt")
    cfg = compose_cfg("train", _tiny_train_overrides(
        data_dir, "depthmix_depthseg-r18-d16_synthetic-city-semi-64x128",
        [f"model.init_from_depth={ckpt}", "test=false"]), tmp_path / "run")
    metrics, objects = train(cfg)
    GlobalHydra.instance().clear()
    method = objects["model"]
    assert objects["trainer"].global_step == 2
    for key in ("train/loss", "train/loss_sup", "train/loss_unsup", "train/pseudo_weight"):
        assert math.isfinite(metrics[key]), key
    assert 0 <= metrics["train/pseudo_weight"] <= 1 and 0 < metrics["train/mix_share"] < 1
    assert method.ema_callback.last_alpha == pytest.approx(2 / 3)  # α_2 = min(1 - 1/3, 0.99)
    # the teacher moved away from the transferred start but is not the student
    start = depth.state_dict()["encoder.backbone.body.conv1.weight"]
    teacher = method.teacher.backbone.backbone.body.conv1.weight
    student = method.net.backbone.backbone.body.conv1.weight
    assert not torch.equal(teacher, start) and not torch.equal(teacher, student)
    # the frozen depth network did not move
    torch.testing.assert_close(method.depth_net.encoder.state_dict()["backbone.body.conv1.weight"],
                               start, rtol=0, atol=0)


def test_segmentation_head_is_two_1x1_convs_with_nothing_between() -> None:
    from leseg.models.depth.segmentation import segmentation_head

    head = segmentation_head(2, 2, 1)
    assert [type(m) for m in head] == [torch.nn.Conv2d, torch.nn.Conv2d]
    assert head[0].bias is None and head[1].bias is not None
    with torch.no_grad():
        head[0].weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(2, 2, 1, 1))
        head[1].weight.copy_(torch.tensor([[1.0, 2.0]]).view(1, 2, 1, 1))
        head[1].bias.fill_(0.5)
        x = torch.tensor([1.0, -1.0]).view(1, 2, 1, 1)
        # W1 x = (-1, -1); W2 (-1, -1) + 0.5 = -2.5 (a ReLU between would give 0.5)
        assert float(head(x)) == pytest.approx(-2.5)


# -------------------------------------------------------------- annotation selection
def test_farthest_point_sampling_on_hand_made_points() -> None:
    from leseg.components.selection import farthest_point_sampling, pairwise_distances

    points = torch.tensor([[0.0], [1.0], [3.0], [10.0]])
    d = pairwise_distances(points)
    assert d[0, 3] == 10 and d[1, 2] == 2
    # from 0: the farthest (10), then 3 (min distance 3 > 1), then 1
    assert farthest_point_sampling(d, 4, first=0) == [0, 3, 2, 1]
    assert farthest_point_sampling(d, 2, initial=[3]) == [3, 0]
    # a large error bias on candidate 1 makes it the next pick (d' = d + bias[j])
    bias = torch.tensor([0.0, 100.0, 0.0, 0.0])
    assert farthest_point_sampling(d, 3, first=0, bias=bias) == [0, 1, 3]
    picks = farthest_point_sampling(d, 3, generator=torch.Generator().manual_seed(0))
    assert len(set(picks)) == 3
    with pytest.raises(ValueError, match="budget 5"):
        farthest_point_sampling(d, 5)
    with pytest.raises(ValueError, match="distinct"):
        farthest_point_sampling(d, 3, initial=[1, 1])


def test_depth_error_by_hand_mean_over_all_pixels_on_normalised_teacher() -> None:
    from leseg.components.selection import depth_error

    # normalised teacher t: 0.5 everywhere, its minimum 0 at (4, 9), its maximum 1 at (9, 0);
    # raw teacher = 0.2 + 0.4 t (no raw value is below 0.07: only the normalised one is far)
    t = torch.full((1, 1, 10, 10), 0.5)
    t[..., 4, 9], t[..., 9, 0] = 0.0, 1.0
    teacher = 0.2 + 0.4 * t
    student = torch.full((1, 1, 10, 10), 0.5)
    student[..., :5, :] = math.e - 1  # log(1 + d) = 1 in the top half, error 0 below
    err = 1.0 - math.log(1.5)
    # masked: rows >= int(0.87 * 10) = 8 (ego car) and the 7x7 dilation of the far pixel (4, 9),
    # i.e. rows 1-7 x cols 6-9, of which rows 1-4 (16 pixels) lie in the top half. The mean runs
    # over all 100 pixels, masked ones counting 0.
    expected = (50 - 16) * err / 100
    assert float(depth_error(student, teacher)) == pytest.approx(expected)
    assert float(depth_error(student[:, 0], t[:, 0], normalize_teacher=False)) == pytest.approx(
        expected)
    # the raw teacher (no normalisation): nothing is far, and log(1 + 0.4) differs from log(1.5)
    raw = depth_error(student, teacher, normalize_teacher=False)
    assert float(raw) != pytest.approx(expected)
    # everything far: 0
    assert float(depth_error(student, torch.zeros_like(teacher))) == 0.0
    with pytest.raises(ValueError, match="differ in shape"):
        depth_error(student, teacher[..., :5])


def test_selection_features_standardise_per_channel_over_candidates_and_positions() -> None:
    from leseg.components.selection import selection_features

    x = torch.zeros(2, 2, 1, 2)  # N = 2 candidates, C = 2 channels, 1 x 2 positions
    x[:, 0] = torch.tensor([[[1.0, 3.0]], [[5.0, 7.0]]])
    x[:, 1] = 2.0  # constant channel
    # channel 0 pooled over the 4 values 1, 3, 5, 7: mean 4, unbiased std sqrt(20 / 3)
    std = math.sqrt(20 / 3)
    feats = selection_features(x, size=(1, 2))
    expected = torch.tensor([[-3 / std, -1 / std, 0.0, 0.0], [1 / std, 3 / std, 0.0, 0.0]])
    torch.testing.assert_close(feats, expected)
    feats = selection_features(torch.randn(6, 3, 8, 16))
    assert feats.shape == (6, 3 * 32)
    per_channel = feats.view(6, 3, 32).transpose(0, 1).reshape(3, -1)
    torch.testing.assert_close(per_channel.mean(1), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(per_channel.std(1), torch.ones(3), atol=1e-4, rtol=0)


@pytest.mark.slow
def test_select_annotations_writes_splits_the_datamodule_reads(data_dir: Path,
                                                              tmp_path: Path) -> None:
    import hydra
    from hydra.core.global_hydra import GlobalHydra

    from leseg.data.splits import load_split
    from leseg.stages.select_annotations import main

    from conftest import compose_cfg

    teacher = _save_depth_ckpt(_depth_net(0), tmp_path / "teacher.ckpt")
    student = _save_depth_ckpt(_depth_net(1), tmp_path / "student.ckpt")
    out = tmp_path / "splits"
    common = ["--root", str(data_dir / "synthetic_city"), "--teacher", str(teacher),
              "--encoder", "resnet18", "--decoder-channels", *map(str, DEC), "--height", str(H),
              "--width", str(W), "--out", str(out)]
    assert main([*common, "--student", str(student), "--budget", "4", "2", "--seed", "3"]) == 0
    small, large = load_split(out, 2), load_split(out, 4)
    assert len(small.labeled) == 2 and len(large.labeled) == 4
    assert set(small.labeled) < set(large.labeled)  # nested: the larger budget grows the smaller
    assert len(large.labeled) + len(large.unlabeled) == TINY_CITY["num_train"]
    assert not list(out.rglob("*.tmp"))
    # growing from a given labeled set keeps it
    assert main([*common, "--budget", "3", "--initial", str(out / "2" / "labeled.txt"),
                 "--out", str(tmp_path / "grow")]) == 0
    assert set(small.labeled) < set(load_split(tmp_path / "grow", 3).labeled)
    assert main([*common, "--budget", "99"]) == 2
    assert main([*common[:2], "--teacher", str(tmp_path / "none.ckpt"), *common[4:],
                 "--budget", "2"]) == 2
    # the written split is what data.split= reads
    tiny = [f"data.synthetic.{k}={v}" for k, v in TINY_CITY.items() if k != "kind"]
    cfg = compose_cfg("train", ["data=synthetic_city_semi", "inference=synthetic_city",
                                f"paths.data_dir={data_dir}", *tiny, f"data.splits_dir={out}",
                                "data.split=4", "data.num_workers=0",
                                "data.persistent_workers=false"], tmp_path / "run")
    dm = hydra.utils.instantiate(cfg.data)
    GlobalHydra.instance().clear()
    dm.setup("fit")
    assert sorted(dm.train_dataset.names) == sorted(large.labeled)
    assert sorted(dm.unlabeled_dataset.names) == sorted(large.unlabeled)


# ------------------------------------------------------------------------ multi-task
def test_berhu_by_hand() -> None:
    from leseg.components.pseudo_depth import berhu_loss

    target = torch.zeros(1, 1, 10, 1)
    pred = torch.zeros(1, 1, 10, 1)
    pred[0, 0, :9, 0] = torch.tensor([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0])
    pred[0, 0, 9, 0] = 50.0  # bottom 10 % (the ego car): left out, also of c
    c = 0.2 * 1.0
    expected = [e if e <= c else (e * e + c * c) / (2 * c)
                for e in (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)]
    assert float(berhu_loss(pred, target)) == pytest.approx(sum(expected) / 9)
    assert float(berhu_loss(target, target)) == 0.0


def test_multitask_network_starts_as_the_transferred_depth_network(tmp_path: Path) -> None:
    from leseg.models.depth.multitask import MultiTaskDepthSegmentor
    from leseg.models.depth.segmentation import DepthSegmentor

    depth = _depth_net()
    ckpt = _save_depth_ckpt(depth, tmp_path / "depth.ckpt")
    mtl = MultiTaskDepthSegmentor(3, encoder="resnet18", decoder_channels=DEC,
                                  init_from_depth=str(ckpt)).eval()
    seg = DepthSegmentor(3, encoder="resnet18", decoder_channels=DEC,
                         init_from_depth=str(ckpt)).eval()
    mtl.head.load_state_dict(seg.head.state_dict())
    depth.eval()
    x01 = torch.rand(2, 3, H, W)
    x = (x01 - seg.input_mean) / seg.input_std
    with torch.no_grad():
        out = mtl.forward_multitask(x)
        ref = depth(x01)
        # the attention starts closed: depth branch = the SDE network, segmentation = transfer
        for s in range(4):
            torch.testing.assert_close(out["depth_outputs"][("disp", s)], ref[("disp", s)])
        torch.testing.assert_close(out["logits"], seg(x))
    assert out["side_logits"].shape == (2, 3, H, W)
    # the attention opens with training: its message conv gets a gradient
    mtl.train()
    mtl.forward_multitask(x)["logits"].sum().backward()
    assert float(mtl.to_seg.message.weight.grad.abs().sum()) > 0


def test_depthmix_with_the_multitask_student_uses_its_own_disparity(tmp_path: Path) -> None:
    from leseg.methods.depthmix import DepthMixMeanTeacher
    from leseg.models.depth.multitask import MultiTaskDepthSegmentor
    from leseg.models.depth.segmentation import DepthDisparity

    ckpt = _save_depth_ckpt(_depth_net(), tmp_path / "depth.ckpt")
    torch.manual_seed(0)
    net = MultiTaskDepthSegmentor(3, encoder="resnet18", decoder_channels=DEC,
                                  init_from_depth=str(ckpt))
    frozen = DepthDisparity(str(ckpt), encoder="resnet18", decoder_channels=DEC)
    method = DepthMixMeanTeacher(net, num_classes=3, depth_net=frozen)
    assert method.multitask
    seen = []
    original = method.mix_disparity

    def spy(pool, student_disp=None):
        seen.append(student_disp)
        return original(pool, student_disp)

    method.mix_disparity = spy
    g = torch.Generator().manual_seed(0)
    labeled = {"image": torch.randn(2, 3, H, W, generator=g),
               "label": torch.randint(0, 3, (2, H, W), generator=g)}
    unlabeled = {"image": torch.randn(2, 3, H, W, generator=g)}
    method.train()
    out = method.compute_losses(labeled, unlabeled)
    assert seen[0] is not None and seen[0].shape == (2, 1, H, W)  # the student's disparity
    assert math.isfinite(float(out["loss"].detach())) and out["loss_depth"] is not None
    out["loss"].backward()
    assert net.depth_decoder.conv1["0"][1].weight.grad is not None  # depth loss reaches it
