"""Self-supervised depth (Hoyer et al. CVPR 2021 / monodepth2): data, losses, geometry, metrics, models."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from leseg.components.depth_losses import (
    SSIM_C1,
    axis_angle_to_matrix,
    depth_to_disp,
    disp_to_depth,
    min_reprojection_loss,
    photometric_error,
    pose_from_parameters,
    smoothness_loss,
    ssim,
    warp_frame,
)
from leseg.data.sequences import (
    CityscapesSequence,
    SequenceDataModule,
    crop_intrinsics,
    hflip_intrinsics,
    load_camera_json,
    resize_intrinsics,
)
from leseg.metrics.depth import DepthMetric, compute_depth_errors

from conftest import TINY_CITY, compose_cfg, sample_data

KITTI_DRIVE = "2011_09_26_drive_0023_sync"
H, W = TINY_CITY["height"], TINY_CITY["width"]


@pytest.fixture(scope="module")
def city(data_dir: Path) -> Path:
    return data_dir / "synthetic_city"


def _vehicle_step(root: Path, ds: CityscapesSequence, i: int) -> float:
    """Camera translation per frame (m): speed / 17 Hz (synthetic_city's documented motion)."""
    city = ds.frame_paths[i][0].parent.name
    vehicle = json.loads((root / "vehicle" / "train" / city / f"{ds.names[i]}_vehicle.json")
                         .read_text())
    return vehicle["speed"] / 17.0


def _forward_pose(tz: float) -> torch.Tensor:
    T = torch.eye(4)[None]
    T[0, 2, 3] = tz
    return T


# ------------------------------------------------------------------------------------ losses
def test_ssim_and_photometric_error_vanish_for_identical_frames() -> None:
    img = torch.rand(2, 3, 16, 24, generator=torch.Generator().manual_seed(0))
    assert ssim(img, img).abs().max() < 1e-5
    assert photometric_error(img, img).abs().max() < 1e-5
    loss, _ = min_reprojection_loss(img, [img.clone()], [img.clone()], noise=0.0)
    assert float(loss) < 1e-5


def test_photometric_error_on_constant_images_matches_hand_computation() -> None:
    a, b = 0.2, 0.6
    x = torch.full((1, 3, 5, 5), a, dtype=torch.float64)
    y = torch.full((1, 3, 5, 5), b, dtype=torch.float64)
    # constant patches: variances and covariance are 0, so SSIM = (2ab + C1) / (a² + b² + C1)
    dssim = (1 - (2 * a * b + SSIM_C1) / (a * a + b * b + SSIM_C1)) / 2
    torch.testing.assert_close(ssim(x, y), torch.full_like(x, dssim))
    expected = 0.85 * dssim + 0.15 * abs(a - b)
    torch.testing.assert_close(photometric_error(x, y), torch.full((1, 1, 5, 5), expected,
                                                                dtype=torch.float64))


def test_min_reprojection_takes_the_per_pixel_minimum_and_auto_masks_static_pixels() -> None:
    target = torch.zeros(1, 3, 4, 4)
    good = target.clone()
    good[..., :, 2:] = 1.0  # right half wrong
    other = target.clone()
    other[..., :, :2] = 1.0  # left half wrong
    loss, _ = min_reprojection_loss(target, [good, other], use_ssim=False, noise=0.0)
    assert float(loss) == 0.0  # every pixel is explained by one of the two sources
    # a source identical to the target when unwarped: the identity term wins -> masked out
    _, from_warp = min_reprojection_loss(target, [good], [target.clone()], use_ssim=False,
                                         noise=1e-5)
    assert not from_warp[..., :, 2:].any()


def test_smoothness_zero_for_constant_disparity_and_hand_value() -> None:
    img = torch.rand(1, 3, 4, 4)
    assert float(smoothness_loss(torch.full((1, 1, 4, 4), 0.3), img)) == pytest.approx(0, abs=1e-6)
    disp = torch.tensor([[[[1.0, 3.0], [1.0, 3.0]]]])  # mean 2 -> normalised [0.5, 1.5]
    flat = torch.zeros(1, 3, 2, 2)  # no image edges: weights e^0 = 1
    # |dx| = 1 on both rows, |dy| = 0 -> 1 + 0
    assert float(smoothness_loss(disp, flat)) == pytest.approx(1.0, rel=1e-5)
    edge = flat.clone()
    edge[..., 1] = 1.0  # an image edge between the columns damps the x term by e^{-1}
    assert float(smoothness_loss(disp, edge)) == pytest.approx(math.exp(-1), rel=1e-5)


def test_disparity_depth_scaling() -> None:
    disp = torch.tensor([0.0, 1.0, 0.5])
    scaled, depth = disp_to_depth(disp, 0.1, 100.0)
    torch.testing.assert_close(depth[:2], torch.tensor([100.0, 0.1]))
    torch.testing.assert_close(scaled, 1 / depth)
    torch.testing.assert_close(depth_to_disp(depth, 0.1, 100.0), disp)
    with pytest.raises(ValueError, match="min_depth"):
        disp_to_depth(disp, 1.0, 1.0)


def test_pose_from_axis_angle_and_translation() -> None:
    rot = axis_angle_to_matrix(torch.tensor([[0.0, 0.0, math.pi / 2]]))
    torch.testing.assert_close(rot[0] @ torch.tensor([1.0, 0, 0]), torch.tensor([0.0, 1, 0]),
                               atol=1e-6, rtol=0)
    aa, t = torch.tensor([[0.1, -0.2, 0.3]]), torch.tensor([[1.0, 2.0, -0.5]])
    T, T_inv = pose_from_parameters(aa, t), pose_from_parameters(aa, t, invert=True)
    torch.testing.assert_close(T @ T_inv, torch.eye(4)[None], atol=1e-5, rtol=0)
    torch.testing.assert_close(T[0, :3, 3], t[0])


def test_warp_with_identity_pose_returns_the_source() -> None:
    src = torch.rand(1, 3, 8, 12)
    K = torch.tensor([[[10.0, 0, 5.5], [0, 10.0, 3.5], [0, 0, 1]]])
    warped, valid = warp_frame(src, torch.full((1, 1, 8, 12), 5.0), K, torch.eye(4)[None])
    assert valid.all()
    torch.testing.assert_close(warped, src, atol=1e-5, rtol=0)


def test_warping_synthetic_city_with_true_depth_and_pose_reproduces_the_target(city: Path) -> None:
    ds = CityscapesSequence(city, "train")
    s = ds[0]
    assert s["frames"].shape == (3, 3, H, W) and "depth" in s and "label" in s
    step = _vehicle_step(city, ds, 0)
    depth = s["depth"][None, None]
    has_depth = depth > 0  # sky and ego vehicle: no finite depth
    depth = torch.where(has_depth, depth, torch.full_like(depth, 1e4))
    frames, K = s["frames"][None], s["intrinsics"][None]
    target = frames[:, 1]
    # camera moves +step along z per frame: target point p is p - (0, 0, step) in frame +1
    for index, tz in ((0, step), (2, -step)):
        warped, valid = warp_frame(frames[:, index], depth, K, _forward_pose(tz))
        mask = valid & has_depth
        assert mask.float().mean() > 0.5
        err = (warped - target).abs().mean(1, keepdim=True)[mask].mean()
        identity = (frames[:, index] - target).abs().mean(1, keepdim=True)[mask].mean()
        wrong, _ = warp_frame(frames[:, index], depth, K, _forward_pose(-tz))
        wrong_err = (wrong - target).abs().mean(1, keepdim=True)[mask].mean()
        # the absolute error is bilinear resampling of the texture (generator v3's surface patterns
        # reach 0.4 cycles per pixel: 0.030 / 0.037 here, 0.08 unwarped); the geometry is in the
        # ratios to the unwarped and the wrongly warped source
        assert err < 0.045 and err < 0.6 * identity and err < 0.5 * wrong_err


# ------------------------------------------------------------------------------- intrinsics
def test_intrinsics_formulas_by_hand() -> None:
    K = np.array([[100.0, 0, 63.5], [0, 90.0, 31.5], [0, 0, 1]])
    R = resize_intrinsics(K, 0.5, 0.25)  # 128x64 -> 64x16
    np.testing.assert_allclose(R, [[50, 0, 31.5], [0, 22.5, 7.5], [0, 0, 1]])
    C = crop_intrinsics(R, 10, 2)
    np.testing.assert_allclose(C[:2, 2], [21.5, 5.5])
    Fl = hflip_intrinsics(C, 40)
    np.testing.assert_allclose(Fl, [[50, 0, 17.5], [0, 22.5, 5.5], [0, 0, 1]])


def test_dataset_intrinsics_after_resize_crop_and_flip(city: Path) -> None:
    K0 = load_camera_json(next((city / "camera" / "train").glob("*/*_camera.json")))
    fx, cx, cy = K0[0, 0], K0[0, 2], K0[1, 2]
    assert (fx, cx, cy) == (0.8 * W, W / 2, H / 2)
    # resize 64x128 -> 48x96 (s = 0.75) then flip: cx = 95 - (0.75 (cx + 0.5) - 0.5)
    flipped = CityscapesSequence(city, "train", resize=(48, 96), hflip=1.0)[0]
    expected = np.array([[0.75 * fx, 0, 95 - (0.75 * (cx + 0.5) - 0.5)],
                         [0, 0.75 * fx, 0.75 * (cy + 0.5) - 0.5], [0, 0, 1]])
    np.testing.assert_allclose(flipped["intrinsics"].numpy(), expected, rtol=1e-6)
    # random crop: find the crop offset from the pixels, the principal point must move by it
    full = CityscapesSequence(city, "train", resize=(48, 96))[0]
    torch.manual_seed(3)
    crop = CityscapesSequence(city, "train", resize=(48, 96), crop_size=(32, 64))[0]
    offsets = [(y, x) for y in range(17) for x in range(33)
               if torch.equal(full["frames"][..., y:y + 32, x:x + 64], crop["frames"])]
    assert len(offsets) == 1
    y0, x0 = offsets[0]
    np.testing.assert_allclose(crop["intrinsics"].numpy(),
                               crop_intrinsics(full["intrinsics"].numpy(), x0, y0), rtol=1e-6)
    assert torch.equal(full["depth"][y0:y0 + 32, x0:x0 + 64], crop["depth"])
    # the reference bug: no rescaling, and the flip mirrors cy as well
    bug = CityscapesSequence(city, "train", resize=(48, 96), hflip=1.0,
                             reproduce_reference_intrinsics_bug=True)[0]
    np.testing.assert_allclose(bug["intrinsics"].numpy(),
                               [[fx, 0, 96 - cx], [0, fx, 48 - cy], [0, 0, 1]], rtol=1e-6)


def test_correct_intrinsics_warp_better_than_the_reference_bug(city: Path) -> None:
    errors = {}
    for bug in (False, True):
        torch.manual_seed(0)
        ds = CityscapesSequence(city, "train", resize=(48, 96), crop_size=(40, 80), hflip=1.0,
                                reproduce_reference_intrinsics_bug=bug)
        s = ds[0]
        depth = s["depth"][None, None]
        has_depth = depth > 0
        depth = torch.where(has_depth, depth, torch.full_like(depth, 1e4))
        warped, valid = warp_frame(s["frames"][None, 2], depth, s["intrinsics"][None],
                                   _forward_pose(-_vehicle_step(city, ds, 0)))
        m = valid & has_depth
        errors[bug] = float((warped - s["frames"][None, 1]).abs().mean(1, keepdim=True)[m].mean())
    assert errors[False] < 0.8 * errors[True]


def test_sequence_errors_name_the_missing_file(city: Path, tmp_path: Path) -> None:
    root = tmp_path / "city"
    shutil.copytree(city, root)
    victim = sorted((root / "leftImg8bit_sequence" / "train").glob("*/*_000020_leftImg8bit.png"))[0]
    victim.unlink()
    with pytest.raises(FileNotFoundError, match=victim.name):
        CityscapesSequence(root, "train")
    camera = sorted((root / "camera" / "val").glob("*/*_camera.json"))[0]
    camera.write_text('{"intrinsic": {"fx": 1}}')
    with pytest.raises(ValueError, match=f"{camera.name}.*fy"):
        CityscapesSequence(root, "val")[0]


def test_sequence_datamodule_batches(city: Path) -> None:
    dm = SequenceDataModule(name="synthetic_city", root=str(city), crop_size=(32, 64),
                            batch_size=2, val_batch_size=2, color_jitter=1.0)
    batch = next(iter(dm.train_dataloader()))
    assert batch["frames"].shape == (2, 3, 3, 32, 64) and batch["intrinsics"].shape == (2, 3, 3)
    assert batch["frames_aug"].shape == batch["frames"].shape
    assert not torch.equal(batch["frames_aug"], batch["frames"])  # jitter on the network input only
    assert batch["label"].dtype == torch.int64 and batch["depth"].shape == (2, 32, 64)
    val = next(iter(dm.val_dataloader()))
    assert val["frames"].shape == (2, 3, 3, H, W) and "frames_aug" not in val


# ---------------------------------------------------------------------------------- metrics
def test_depth_metrics_on_hand_made_values() -> None:
    gt = torch.tensor([1.0, 2.0, 4.0, 0.0])  # 0 = no ground truth
    pred = torch.tensor([1.0, 2.0, 2.0, 7.0])
    e = compute_depth_errors(pred, gt, median_scaling=False)
    assert float(e["abs_rel"]) == pytest.approx(1 / 6)
    assert float(e["sq_rel"]) == pytest.approx(1 / 3)
    assert float(e["rmse"]) == pytest.approx(math.sqrt(4 / 3))
    assert float(e["rmse_log"]) == pytest.approx(math.sqrt(math.log(2) ** 2 / 3))
    assert float(e["a1"]) == pytest.approx(2 / 3) and float(e["a3"]) == pytest.approx(2 / 3)
    assert float(e["count"]) == 3
    # a prediction off by a global factor is perfect after median scaling
    s = compute_depth_errors(3 * gt + (gt == 0) * 5, gt)
    assert float(s["abs_rel"]) == pytest.approx(0, abs=1e-12) and float(s["a1"]) == 1.0
    assert float(s["scale"]) == pytest.approx(1 / 3)
    # the cap: a prediction beyond max_depth is clipped to it
    c = compute_depth_errors(torch.tensor([200.0]), torch.tensor([50.0]), median_scaling=False)
    assert float(c["abs_rel"]) == pytest.approx(30 / 50)
    with pytest.raises(ValueError, match="no ground-truth"):
        compute_depth_errors(pred, torch.zeros(4))
    metric = DepthMetric()
    metric.update(torch.stack([pred, pred]), torch.stack([gt, torch.zeros(4)]))
    out = metric.compute()
    assert out["images"] == 1 and out["abs_rel"] == pytest.approx(float(
        compute_depth_errors(pred, gt)["abs_rel"]))


# ----------------------------------------------------------------------------------- models
def test_depth_network_shapes_and_pose() -> None:
    from leseg.models.depth import DepthNet

    net = DepthNet("resnet18", decoder_channels=(8, 8, 16, 16, 32), output_stride=16)
    with torch.no_grad():
        out = net(torch.rand(2, 3, 32, 64))
    for s in range(4):
        d = out[("disp", s)]
        assert d.shape == (2, 1, 32 // 2 ** s, 64 // 2 ** s)
        assert float(d.min()) > 0 and float(d.max()) < 1
    assert isinstance(net.decoder.conv0["4"], torch.nn.Module) and hasattr(net.decoder.conv0["4"],
                                                                          "image_pool")
    axis_angle, translation = net.pose(torch.rand(2, 6, 32, 64))
    assert axis_angle.shape == translation.shape == (2, 2, 3)


# ------------------------------------------------------------------------------------- KITTI
def test_kitti_reader(tmp_path: Path) -> None:
    from leseg.data.kitti import KittiRawSequence, read_kitti_calibration

    root = sample_data("depth_sequence_sample", "kitti_raw")
    K = read_kitti_calibration(root / "2011_09_26" / "calib_cam_to_cam.txt")
    np.testing.assert_allclose(K, [[721.5377, 0, 609.5593], [0, 721.5377, 172.854], [0, 0, 1]])
    ds = KittiRawSequence(root, KITTI_DRIVE, resize=(96, 320))
    assert len(ds) == 5  # frames 1..5 of 0..6 have both neighbours
    s = ds[0]
    assert s["frames"].shape == (3, 3, 96, 320) and s["depth"].shape == (375, 1242)
    np.testing.assert_allclose(s["intrinsics"].numpy(),
                               resize_intrinsics(K, 320 / 1242, 96 / 375), rtol=1e-6)
    assert 0.02 < float((s["depth"] > 0).float().mean()) < 0.1 and float(s["depth"].max()) < 100
    with pytest.raises(FileNotFoundError, match="image_02"):
        KittiRawSequence(tmp_path, KITTI_DRIVE)


# ---------------------------------------------------------------------------- method (Lightning)
def _tiny_method(**kwargs):
    from leseg.methods.depth import SelfSupervisedDepth
    from leseg.models.depth import DepthNet

    torch.manual_seed(0)
    net = DepthNet("resnet18", decoder_channels=(8, 8, 16, 16, 32))
    return SelfSupervisedDepth(net, optimizer={"name": "adam", "lr": 1e-3},
                               **{"freeze_encoder": False, **kwargs})


def test_depth_training_iterations_and_evaluation_on_real_kitti() -> None:
    import lightning as L
    from torch.utils.data import DataLoader

    from leseg.data.datamodules import collate_samples
    from leseg.data.kitti import KittiRawSequence

    root = sample_data("depth_sequence_sample", "kitti_raw")
    ds = KittiRawSequence(root, KITTI_DRIVE, resize=(32, 96))
    loader = DataLoader(ds, batch_size=2, collate_fn=collate_samples)
    method = _tiny_method()
    batch = next(iter(loader))
    optimizer = torch.optim.Adam(method.parameters(), lr=1e-3)
    losses = []
    for _ in range(3):
        loss = method.sde_loss(batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]
    trainer = L.Trainer(accelerator="cpu", max_epochs=1, limit_train_batches=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, limit_val_batches=1)
    trainer.fit(method, train_dataloaders=loader, val_dataloaders=loader)
    metrics = trainer.callback_metrics
    assert metrics["val/depth/images"] == 2  # one batch of 2 frames with LiDAR depth
    assert 0 < float(metrics["val/depth/abs_rel"]) < 5 and 0 <= float(metrics["val/depth/a1"]) <= 1
    assert math.isfinite(float(metrics["val/loss"]))


def test_phase_one_freezes_the_encoder_and_phase_two_adds_feature_distance(city: Path) -> None:
    from leseg.data.datamodules import collate_samples

    batch = collate_samples([CityscapesSequence(city, "train", crop_size=(32, 64))[i]
                             for i in range(2)])
    phase1 = _tiny_method(freeze_encoder=True)
    phase1.train()
    assert not phase1.net.encoder.training and phase1.net.decoder.training
    out = phase1.sde_loss(batch)
    out["loss"].backward()
    assert all(p.grad is None for p in phase1.net.encoder.parameters())
    assert any(p.grad is not None for p in phase1.net.pose.parameters())
    assert float(out["feature_distance"]) == 0.0
    with pytest.raises(ValueError, match="freeze_encoder"):
        _tiny_method(freeze_encoder=True, feature_distance_weight=0.01)
    phase2 = _tiny_method(feature_distance_weight=0.01)
    phase2.train()
    # identical to its frozen copy at the start (copy in eval mode, encoder BN in train mode
    # changes the features only through the batch statistics)
    with torch.no_grad():
        phase2.net.encoder.eval()
        assert float(phase2.sde_loss(batch)["feature_distance"]) == pytest.approx(0, abs=1e-4)
        with torch.no_grad():
            for p in phase2.net.encoder.parameters():
                p.add_(0.01)
        assert float(phase2.sde_loss(batch)["feature_distance"]) > 0
    assert not any(p.requires_grad for p in phase2.frozen_encoder.parameters())


def test_synthetic_experiment_runs_through_train_py(data_dir: Path, tmp_path: Path) -> None:
    from hydra.core.global_hydra import GlobalHydra

    from leseg.tasks.train import train

    from conftest import compose_cfg

    tiny = [f"data.synthetic.{k}={v}" for k, v in TINY_CITY.items() if k != "kind"]
    cfg = compose_cfg("train", [
        "experiment=ssdepth_depthnet-r18-d16_synthetic-city-sequence-64x128",
        f"paths.data_dir={data_dir}", "data.root=${paths.data_dir}/synthetic_city", *tiny,
        "data.crop_size=[32,64]", "data.batch_size=2", "data.val_batch_size=2",
        "data.num_workers=0", "data.persistent_workers=false", "data.max_val_samples=2",
        "model.decoder_channels=[8,8,16,16,32]", "logger=none", "~callbacks.progress_bar",
        "~callbacks.model_summary", "trainer.max_epochs=1", "trainer.limit_train_batches=1",
        "trainer.num_sanity_val_steps=0", "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false", "extras.print_config=false"], tmp_path / "run")
    metrics, _ = train(cfg)
    assert "val/depth/abs_rel" in metrics and "val/depth/abs_rel_constant" in metrics
    assert "test/depth/abs_rel" in metrics
    GlobalHydra.instance().clear()


# ------------------------------------------------------------------------------- downsample
def test_downsample_writes_resumes_and_leaves_no_partial_file(city: Path, tmp_path: Path,
                                                              monkeypatch) -> None:
    from PIL import Image

    from leseg.stages import downsample

    dst = tmp_path / "small"
    first = downsample.downsample_dataset(city, dst, height=32, width=64, splits=["val"], jobs=1)
    assert first["written"] > 0 and first["skipped"] == 0
    img = next((dst / "leftImg8bit_sequence" / "val").glob("*/*.png"))
    assert Image.open(img).size == (64, 32)
    lab = next((dst / "gtFine" / "val").glob("*/*_labelIds.png"))
    src_lab = np.array(Image.open(city / lab.relative_to(dst)))
    assert set(np.unique(np.array(Image.open(lab)))) <= set(np.unique(src_lab))  # nearest
    cam = next((dst / "camera" / "val").glob("*/*.json"))
    K = load_camera_json(cam)
    np.testing.assert_allclose(K, resize_intrinsics(load_camera_json(city / cam.relative_to(dst)),
                                                    0.5, 0.5))
    np.testing.assert_allclose(load_camera_json(cam, original=True),
                               load_camera_json(city / cam.relative_to(dst)))
    ds = CityscapesSequence(dst, "val")  # the copy is a valid sequence dataset
    assert ds[0]["frames"].shape == (3, 3, 32, 64) and ds[0]["depth"].shape == (32, 64)
    # rerun: everything skipped, files untouched
    mtime = img.stat().st_mtime_ns
    again = downsample.downsample_dataset(city, dst, height=32, width=64, splits=["val"], jobs=1)
    assert again == {"written": 0, "skipped": first["written"]}
    assert img.stat().st_mtime_ns == mtime
    # a crash while writing leaves neither the file nor a temporary file behind
    img.unlink()
    monkeypatch.setattr(Image.Image, "save", lambda *a, **k: (_ for _ in ()).throw(OSError("disk")))
    with pytest.raises(OSError, match="disk"):
        downsample.downsample_dataset(city, dst, height=32, width=64, splits=["val"], jobs=1)
    assert not img.exists() and not list(img.parent.glob(".*tmp"))
    monkeypatch.undo()
    assert downsample.main(["--src", str(city), "--dst", str(dst), "--height", "32", "--width",
                            "64", "--splits", "val", "--jobs", "2"]) == 0
    assert img.is_file()
    assert downsample.main(["--src", str(tmp_path / "none"), "--dst", str(dst)]) == 2
    # the old command and the stage config reach the same stage
    img.unlink()
    proc = subprocess.run([sys.executable, "-m", "leseg.data.downsample", "--src", str(city),
                           "--dst", str(dst), "--height", "32", "--width", "64", "--splits",
                           "val", "--jobs", "1"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "1 file(s) written" in proc.stdout, proc.stderr
    from leseg.stages.entry import run

    cfg = compose_cfg("stages", ["stage=downsample", f"stage.src={city}", f"stage.dst={dst}",
                                 "stage.height=32", "stage.width=64", "stage.splits=[val]"],
                      tmp_path / "stage")
    assert run(cfg) == {"written": 0, "skipped": first["written"]}


# --------------------------------------------------------------------------------- DepthMix
def test_depthmix_mask_on_a_hand_made_pair() -> None:
    from leseg.components.depthmix import (
        confidence_share_weight,
        depthmix_masks,
        normalize_disparity,
    )
    from leseg.components.mixing import apply_mix

    d_a = torch.tensor([[0.50, 0.50, 0.10, 0.90]])
    d_b = torch.tensor([[0.52, 0.60, 0.10, 0.20]])
    disp = torch.stack([d_a, d_b])  # (2, 1, 4) as (B, H, W)
    partner = torch.tensor([1, 0])
    mask = depthmix_masks(disp, partner, margin=0.03)
    # a keeps: within margin (0.50 vs 0.52), not (0.50 vs 0.60: b closer), tie, a closer
    assert mask[0].tolist() == [[False, True, False, False]]
    # b keeps: b closer, b closer, tie, not (0.20 vs 0.90)
    assert mask[1].tolist() == [[False, False, False, True]]
    images = torch.stack([torch.zeros(3, 1, 4), torch.ones(3, 1, 4)])
    mixed, = apply_mix(mask, partner, images)
    assert mixed[0, 0].tolist() == [[0, 1, 0, 0]] and mixed[1, 0].tolist() == [[1, 1, 1, 0]]
    thr = depthmix_masks(disp, partner, margin=0.03, threshold=0.3)
    assert thr[0].tolist() == [[False, True, True, False]]
    n = normalize_disparity(torch.tensor([[[2.0, 4.0, 3.0]]]))
    torch.testing.assert_close(n, torch.tensor([[[0.0, 1.0, 0.5]]]))
    probs = torch.zeros(1, 2, 2, 2)
    probs[0, 0] = torch.tensor([[0.97, 0.968], [0.5, 0.0]])
    probs[0, 1] = 1 - probs[0, 0]
    probs[0, :, 1, 1] = 0  # ignored GT pixel: all-zero row
    assert float(confidence_share_weight(probs)) == pytest.approx(2 / 4)


# ------------------------------------------------ real Cityscapes snippets (LESEG_SAMPLE_DATA)
# The Cityscapes aachen camera as published in the official camera/*.json files (approximate;
# the sample ships no camera files), pixels of the 1024x2048 frames.
AACHEN_INTRINSICS = {"fx": 2262.52, "fy": 2265.30, "u0": 1096.98, "v0": 513.14,
                     "size": [1024, 2048]}
AACHEN_SNIPPETS = [f"aachen_00000{i}_000019" for i in range(3)]


def test_real_cityscapes_jpeg_snippets_with_given_intrinsics(tmp_path: Path) -> None:
    root = sample_data("cityscapes_sample")
    with pytest.raises(FileNotFoundError, match="aachen_000003_000018_leftImg8bit"):
        CityscapesSequence(root, "train", intrinsics=AACHEN_INTRINSICS)  # 5 frames lack snippets
    with pytest.raises(FileNotFoundError, match=r"camera/train/aachen/.*_camera\.json.*intrinsics"):
        CityscapesSequence(root, "train", on_missing_sequence="skip")  # no camera files, no K
    with pytest.warns(UserWarning, match="5 annotated frame"):
        ds = CityscapesSequence(root, "train", intrinsics=AACHEN_INTRINSICS, resize=(64, 128),
                                on_missing_sequence="skip")
    assert ds.names == AACHEN_SNIPPETS
    assert [p.name for p in ds.frame_paths[0]] == [
        f"aachen_000000_0000{k}_leftImg8bit.jpg" for k in (18, 19, 20)]
    s = ds[0]
    assert s["frames"].shape == (3, 3, 64, 128) and s["label"].shape == (64, 128)
    np.testing.assert_allclose(s["intrinsics"].numpy(),
                               resize_intrinsics(np.array([[2262.52, 0, 1096.98],
                                                           [0, 2265.30, 513.14], [0, 0, 1]]),
                                                 128 / 2048, 64 / 1024), rtol=1e-6)
    # every frame of the 3 snippets with both neighbours: 28 targets each (frames 1..28 of 0..29)
    every = CityscapesSequence(root, "train", all_sequence_frames=True,
                               intrinsics=AACHEN_INTRINSICS, resize=(64, 128))
    assert len(every) == 3 * 28 and every.names[0] == "aachen_000000_000001"
    # a camera file next to a snippet wins over the given values
    cam_root = tmp_path / "city"
    cam_root.mkdir()
    for sub in ("leftImg8bit", "leftImg8bit_sequence"):
        (cam_root / sub).symlink_to(root / sub)
    camera = cam_root / "camera/train/aachen/aachen_000001_000019_camera.json"
    camera.parent.mkdir(parents=True)
    camera.write_text(json.dumps({"intrinsic": {"fx": 2000.0, "fy": 2000.0, "u0": 1024.0,
                                                "v0": 512.0}}))
    mixed = CityscapesSequence(cam_root, "train", intrinsics=AACHEN_INTRINSICS,
                               on_missing_sequence="skip", with_labels=False)
    assert mixed.camera_paths == [None, camera, None]
    assert float(mixed[1]["intrinsics"][0, 0]) == 2000.0
    assert float(mixed[0]["intrinsics"][0, 0]) == pytest.approx(2262.52)
    with pytest.raises(ValueError, match=r"missing \['v0'\]"):
        CityscapesSequence(root, "train", intrinsics={"fx": 1, "fy": 1, "u0": 1})


def test_self_supervised_depth_learns_on_the_real_cityscapes_snippets() -> None:
    root = sample_data("cityscapes_sample")
    dm = SequenceDataModule(name="cityscapes", root=str(root), train_set="train", val_set="train",
                            resize=(64, 128), hflip=0.0, color_jitter=0.0, batch_size=3,
                            intrinsics=AACHEN_INTRINSICS, on_missing_sequence="skip")
    batch = next(iter(dm.train_dataloader()))
    assert sorted(batch["name"]) == AACHEN_SNIPPETS
    assert batch["frames"].shape == (3, 3, 3, 64, 128)
    method = _tiny_method()
    optimizer = torch.optim.Adam(method.parameters(), lr=1e-3)
    photometric = []
    for _ in range(5):
        out = method.sde_loss(batch)
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
        photometric.append(float(out["photometric"].detach()))
    assert all(math.isfinite(v) for v in photometric)
    assert photometric[-1] < 0.95 * photometric[0], photometric
