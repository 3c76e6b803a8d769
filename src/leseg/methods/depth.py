"""Self-supervised monocular depth estimation (SDE) from video, the first of Hoyer et al.'s three ways.

Hoyer et al., "Three Ways to Improve Semantic Segmentation with Self-Supervised Depth Estimation"
(CVPR 2021, §3.1; reference SDE configs), on the monodepth2 recipe (Godard et al., ICCV 2019):

* the depth network predicts sigmoid disparities at scales s = 0..3 for the target frame; each is
  upsampled to the input size and turned into depth D = 1 / (1/100 + (1/0.1 − 1/100) σ);
* the pose network predicts the motion target → source for each neighbour (the pair in temporal
  order, inverted for frame −1); the sources are warped into the target with D, K and T;
* L_p,s = mean over pixels of the per-pixel minimum of the photometric errors 0.85 (1 − SSIM)/2
  + 0.15 L1 of both warped sources and, for auto-masking, both unwarped sources (+1e-5 noise);
* L_s,s = edge-aware smoothness of the mean-normalised scale-s disparity against the target image
  downsampled to that scale, weight 1e-3 / 2^s;
* L_SDE = (1/4) Σ_s (L_p,s + 1e-3 · L_s,s / 2^s);
* phase 1: the (ImageNet) encoder is frozen; phase 2: it is trained and
  L_fd = λ_fd ‖F_enc(x) − F_0(x)‖₂ (L2 norm over the whole batch of the bottleneck features)
  keeps it close to a frozen copy F_0 of the initial encoder, λ_fd = 1e-2.

Validation: the same loss on whole frames (``val/loss``) and, where the batch carries ground-truth
depth (synthetic_city disparity, KITTI LiDAR), the median-scaled depth metrics ``val/depth/*``
(abs_rel, sq_rel, rmse, rmse_log, a1–a3, and ``abs_rel_constant`` of a constant-depth prediction).
The module composes networks and components and reads no files.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from leseg.components.depth_losses import (
    disp_to_depth,
    min_reprojection_loss,
    pose_from_parameters,
    smoothness_loss,
    warp_frame,
)
from leseg.methods.optim import build_optimizer, build_scheduler
from leseg.metrics.depth import DepthMetric

__all__ = ["SelfSupervisedDepth"]


class SelfSupervisedDepth(L.LightningModule):
    """monodepth2-style SDE training with Hoyer's two phases.

    Args:
        net: a :class:`leseg.models.depth.DepthNet` (``encoder``, ``decoder``, ``pose``).
        num_classes, ignore_index, inference, class_names: the dataset's segmentation settings,
            kept for the shared config contract (unused by depth).
        optimizer: ``{name, lr, weight_decay, betas, encoder_lr_mult, pose_lr_mult}`` (paper: Adam,
            lr 1e-4 in phase 1, 1e-5 in phase 2).
        scheduler: ``{name, milestones, gamma, ...}`` for :func:`leseg.methods.optim.lr_factor`
            (paper phase 1: step ×0.1 at 160k of 300k).
        offsets: frame offsets of the batches' ``frames`` (target = 0), default (−1, 0, 1).
        min_depth, max_depth: disparity → depth range (0.1, 100).
        ssim_weight: α of the photometric error (0.85); use_ssim: False = L1 only.
        auto_mask: add the identity reprojection errors to the per-pixel minimum.
        smoothness_weight: 1e-3 (divided by 2^s per scale).
        freeze_encoder: phase 1 (True): encoder frozen in eval mode.
        feature_distance_weight: λ_fd (phase 2: 1e-2; 0 = off).
        eval_min_depth, eval_max_depth, median_scaling: depth-metric protocol (1e-3, 80, True).
        name: method name (``ssdepth``).

    Batch: ``frames`` (B, T, 3, H, W) in [0, 1], ``intrinsics`` (B, 3, 3), optional ``frames_aug``
    (network input), ``depth`` (B, H', W') metres (0 = invalid).
    """

    def __init__(self, net: nn.Module, num_classes: int = 19, ignore_index: int = 255,
                 optimizer: dict[str, Any] | None = None, scheduler: dict[str, Any] | None = None,
                 inference: dict[str, Any] | None = None, class_names: list[str] | None = None,
                 offsets: Sequence[int] = (-1, 0, 1), min_depth: float = 0.1,
                 max_depth: float = 100.0, ssim_weight: float = 0.85, use_ssim: bool = True,
                 auto_mask: bool = True, smoothness_weight: float = 1e-3,
                 freeze_encoder: bool = True, feature_distance_weight: float = 0.0,
                 eval_min_depth: float = 1e-3, eval_max_depth: float = 80.0,
                 median_scaling: bool = True, name: str = "ssdepth") -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["net"], logger=False)
        for attr in ("encoder", "decoder", "pose"):
            if not hasattr(net, attr):
                raise TypeError(f"SelfSupervisedDepth needs a DepthNet-like net with .{attr}, got "
                                f"{type(net).__name__}")
        self.net = net
        self.offsets = tuple(int(o) for o in offsets)
        if 0 not in self.offsets or len(self.offsets) < 2:
            raise ValueError(f"offsets {self.offsets} must hold the target 0 and at least one "
                             f"source frame")
        self.target_index = self.offsets.index(0)
        self.freeze_encoder = bool(freeze_encoder)
        if self.freeze_encoder:
            self.net.encoder.requires_grad_(False)
        self.frozen_encoder: nn.Module | None = None
        if feature_distance_weight > 0:
            if self.freeze_encoder:
                raise ValueError("feature_distance_weight > 0 is the phase-2 loss; it needs "
                                 "freeze_encoder=false")
            self.frozen_encoder = copy.deepcopy(net.encoder).requires_grad_(False).eval()
        self.val_metric = DepthMetric(eval_min_depth, eval_max_depth, median_scaling)
        self.test_metric = DepthMetric(eval_min_depth, eval_max_depth, median_scaling)

    # ------------------------------------------------------------------------------ modes
    def train(self, mode: bool = True) -> SelfSupervisedDepth:
        """Train mode, but a frozen encoder and the feature-distance copy stay in eval mode."""
        super().train(mode)
        if self.freeze_encoder:
            self.net.encoder.eval()
        if self.frozen_encoder is not None:
            self.frozen_encoder.eval()
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Scale-0 disparity (B, 1, H, W) in (0, 1) of images (B, 3, H, W) in [0, 1]."""
        return self.net(images)[("disp", 0)]

    # ------------------------------------------------------------------------------- loss
    def _poses(self, frames: torch.Tensor) -> dict[int, torch.Tensor]:
        t = self.target_index
        poses = {}
        for j, offset in enumerate(self.offsets):
            if offset == 0:
                continue
            pair = (torch.cat([frames[:, j], frames[:, t]], 1) if offset < 0 else
                    torch.cat([frames[:, t], frames[:, j]], 1))
            axis_angle, translation = self.net.pose(pair)
            poses[j] = pose_from_parameters(axis_angle[:, 0], translation[:, 0], invert=offset < 0)
        return poses

    def sde_loss(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """L_SDE and its parts for a batch (see the module docstring).

        Returns:
            dict with scalar tensors ``loss`` (total), ``photometric``, ``smoothness``,
            ``feature_distance`` and the ``outputs`` of the depth network.
        """
        frames = batch["frames"]
        if frames.ndim != 5 or frames.shape[1] != len(self.offsets):
            raise ValueError(f"batch['frames'] must be (B, {len(self.offsets)}, 3, H, W) for "
                             f"offsets {self.offsets}, got {tuple(frames.shape)}")
        net_in = batch.get("frames_aug", frames)
        t = self.target_index
        target = frames[:, t]
        h, w = target.shape[-2:]
        K = batch["intrinsics"].to(frames.dtype)
        features = self.net.encoder(net_in[:, t])
        outputs = self.net.decoder(features, out_size=(h, w))
        poses = self._poses(net_in)
        sources = [frames[:, j] for j in poses]
        photometric = target.new_zeros(())
        smooth = target.new_zeros(())
        total = target.new_zeros(())
        scales = self.net.decoder.scales
        for s in scales:
            disp = outputs[("disp", s)]
            disp_full = F.interpolate(disp, size=(h, w), mode="bilinear", align_corners=False)
            _, depth = disp_to_depth(disp_full, self.hparams.min_depth, self.hparams.max_depth)
            warped = [warp_frame(frames[:, j], depth, K, T)[0] for j, T in poses.items()]
            lp, _ = min_reprojection_loss(target, warped,
                                          sources if self.hparams.auto_mask else None,
                                          use_ssim=self.hparams.use_ssim)
            color = target if disp.shape[-2:] == (h, w) else F.interpolate(
                target, size=disp.shape[-2:], mode="area")
            ls = smoothness_loss(disp, color)
            photometric = photometric + lp / len(scales)
            smooth = smooth + ls / len(scales)
            total = total + (lp + self.hparams.smoothness_weight * ls / 2 ** s) / len(scales)
        fd = target.new_zeros(())
        if self.frozen_encoder is not None:
            with torch.no_grad():
                reference = self.frozen_encoder(net_in[:, t])[-1]
            fd = torch.linalg.vector_norm(features[-1] - reference)
            total = total + self.hparams.feature_distance_weight * fd
        return {"loss": total, "photometric": photometric, "smoothness": smooth,
                "feature_distance": fd, "outputs": outputs}

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """L_SDE (+ λ_fd L_fd in phase 2); logs ``train/loss`` and its parts."""
        out = self.sde_loss(batch)
        bs = batch["frames"].shape[0]
        self.log("train/loss", out["loss"], prog_bar=True, batch_size=bs)
        for key in ("photometric", "smoothness", "feature_distance"):
            self.log(f"train/{key}", out[key], batch_size=bs)
        return out["loss"]

    # ------------------------------------------------------------------------- evaluation
    def predict_depth(self, images: torch.Tensor, out_size: tuple[int, int] | None = None
                      ) -> torch.Tensor:
        """Depth (B, 1, H', W') of images in [0, 1], bilinearly upsampled disparity → depth."""
        disp = self(images)
        if out_size is not None and tuple(disp.shape[-2:]) != tuple(out_size):
            disp = F.interpolate(disp, size=out_size, mode="bilinear", align_corners=False)
        return disp_to_depth(disp, self.hparams.min_depth, self.hparams.max_depth)[1]

    def _eval_step(self, batch: dict[str, Any], metric: DepthMetric, prefix: str) -> None:
        out = self.sde_loss({k: v for k, v in batch.items() if k != "frames_aug"})
        bs = batch["frames"].shape[0]
        self.log(f"{prefix}/loss", out["loss"], batch_size=bs, prog_bar=prefix == "val")
        if "depth" in batch:
            gt = batch["depth"]
            disp = out["outputs"][("disp", 0)]
            disp = F.interpolate(disp, size=gt.shape[-2:], mode="bilinear", align_corners=False)
            depth = disp_to_depth(disp, self.hparams.min_depth, self.hparams.max_depth)[1]
            metric.update(depth[:, 0], gt)

    def _log_metric(self, metric: DepthMetric, prefix: str) -> dict[str, float]:
        result = metric.compute()
        metric.reset()
        if result["images"] > 0:
            for key, value in result.items():
                self.log(f"{prefix}/depth/{key}", float(value))
        return result

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """``val/loss`` and, with ground truth, the depth metrics."""
        self._eval_step(batch, self.val_metric, "val")

    def on_validation_epoch_end(self) -> None:  # noqa: D102
        self._log_metric(self.val_metric, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """As validation, logged under ``test/``."""
        self._eval_step(batch, self.test_metric, "test")

    def on_test_epoch_end(self) -> None:  # noqa: D102
        self.test_results = self._log_metric(self.test_metric, "test")

    # -------------------------------------------------------------------------- optimiser
    def configure_optimizers(self) -> dict[str, Any]:
        """Adam over decoder, pose net (× ``pose_lr_mult``) and, unless frozen, the encoder
        (× ``encoder_lr_mult``); per-step LR schedule over the run."""
        cfg = dict(self.hparams.optimizer or {"name": "adam", "lr": 1e-4})
        lr = float(cfg.get("lr", 1e-4))
        groups = [{"params": list(self.net.decoder.parameters()), "lr": lr, "name": "decoder"},
                  {"params": list(self.net.pose.parameters()),
                   "lr": lr * float(cfg.pop("pose_lr_mult", 1.0)), "name": "pose"}]
        encoder_mult = float(cfg.pop("encoder_lr_mult", 1.0))
        if not self.freeze_encoder:
            groups.append({"params": list(self.net.encoder.parameters()),
                           "lr": lr * encoder_mult, "name": "encoder"})
        optimizer = build_optimizer(groups, **cfg)
        sched_cfg = dict(self.hparams.scheduler or {"name": "constant"})
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        scheduler = build_scheduler(optimizer, total, **sched_cfg)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1}}
