"""Mean teacher with DepthMix: the third of Hoyer et al.'s three ways.

Hoyer et al., "Three Ways to Improve Semantic Segmentation with Self-Supervised Depth Estimation"
(CVPR 2021, §3.3; reference ``train.py``, ``cityscapes_joint.yml``). One training step on a
labeled batch (x_l, y_l) and a mix pool x_u (the unlabeled batch; with ``mix_pool="all"`` the
labeled batch is added to it):

1. the EMA teacher predicts P = softmax on the pool (train-mode BatchNorm, as the reference's
   ``ema_model.train()``; ``teacher_train_mode=False`` uses eval mode). With ``mix_use_gt``, for
   pool samples that carry ground truth P is **replaced by the one-hot label** (ignored pixels →
   all-zero rows → ignored later). Padded pixels (``valid`` False) get all-zero rows too;
2. partners j = partner(i) ≠ i are drawn within the pool
   (:func:`~leseg.components.mixing.partner_indices`), so any pool size ≥ 2 works (the reference
   asserts exactly 2 and pairs (0, 1));
3. mask: ``mix="depthmix"`` — image i keeps its pixel where its per-image min-max normalised
   disparity d_i ≥ d_j − ``margin`` (0.03) and d_i ≥ ``foreground_threshold`` (0: no effect)
   (:func:`~leseg.components.depthmix.depthmix_masks`); ``mix="classmix"`` (baseline) — half of
   the classes of the partner's teacher argmax are pasted
   (:func:`~leseg.components.mixing.classmix_masks`). Disparity comes from, in this order:
   ``disparity`` in the unlabeled batch (pre-computed pseudo-depth, [0, 1]), the student's own
   disparity when the network has a depth branch (multi-task,
   :class:`~leseg.models.depth.multitask.MultiTaskDepthSegmentor`, ``net.forward_multitask``),
   or the frozen ``depth_net`` (the SDE model,
   :class:`~leseg.models.depth.segmentation.DepthDisparity`);
4. images and P are mixed with the same masks and partners
   (:func:`~leseg.components.mixing.apply_mix`); colour jitter (p 0.8, strength 0.25) and blur
   (p 0.5, σ ~ U(0.15, 1.15)) perturb the mixed images
   (:func:`~leseg.components.photometric.strong_photometric`);
5. pseudo-label = argmax of mixed P, ignored where max P = 0; one weight for the whole batch,
   w = share of pixels with max P ≥ 0.968
   (:func:`~leseg.components.depthmix.confidence_share_weight`);
   L_u = ``unsup_weight`` · w · CE(student(mixed), pseudo-label), the CE averaged over *all*
   pixels with ignored ones counting 0, as the reference's ``cross_entropy2d`` with pixel weights
   (:func:`~leseg.components.depthmix.weighted_pixel_ce`);
6. L = L_seg(x_l, y_l) + L_u (+ λ_depth · L_depth for a multi-task network). Multi-task: L_seg =
   (CE(final) + CE(side output)) / 2 (PAD); the depth branch's disparity on the pool drives the
   DepthMix mask (detached) and, with a frozen ``depth_net``, is distilled from it with berHu
   (:func:`~leseg.components.pseudo_depth.berhu_loss`) — a substitute for the reference's
   self-supervised depth loss, which needs frame sequences the semi-supervised DataModules do not
   provide. Gradient-norm clipping (10) is the trainer's
   ``gradient_clip_val``; after each optimiser step the
   :class:`~leseg.callbacks.ema.EMATeacher` callback averages the student into the teacher with
   α_k = min(1 − 1/(k + 1), 0.99) over all parameters (``ema_schedule=warmup_average``).

Evaluation uses the student (``eval_net=student``), as the reference, whose ``train.py``
validates the student network rather than the EMA teacher. Teacher, EMA callback and evaluated network
come from :class:`~leseg.methods.mean_teacher.MeanTeacherSegmentation` (no supervised-only
warm-up). The module composes networks and components; it reads no files (the depth network is
built by the config).

Logged: ``train/loss``, ``train/loss_sup``, ``train/loss_unsup``, ``train/pseudo_weight`` (w),
``train/mix_share`` (share of pixels taken from the partner).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from leseg.components.depthmix import (
    confidence_share_weight,
    depthmix_masks,
    normalize_disparity,
    weighted_pixel_ce,
)
from leseg.components.mixing import apply_mix, classmix_masks, partner_indices
from leseg.components.photometric import strong_photometric
from leseg.components.pseudo_depth import berhu_loss
from leseg.methods.mean_teacher import MeanTeacherSegmentation
from leseg.utils.config import choice

__all__ = ["DepthMixMeanTeacher", "one_hot_probs"]

MIXES = ("depthmix", "classmix")
MIX_POOLS = ("unlabeled", "all")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def one_hot_probs(labels: torch.Tensor, num_classes: int, ignore_index: int = 255
                  ) -> torch.Tensor:
    """One-hot "probabilities" (B, K, H, W) float of labels (B, H, W); ignored pixels → all 0."""
    valid = labels != ignore_index
    safe = torch.where(valid, labels, torch.zeros_like(labels))
    probs = F.one_hot(safe, num_classes).permute(0, 3, 1, 2).float()
    return probs * valid.unsqueeze(1)


class DepthMixMeanTeacher(MeanTeacherSegmentation):
    """Mean teacher with DepthMix (or ClassMix) and confidence-share weighting (module docstring).

    Args:
        net: the student, images (B, 3, H, W) normalised → logits (B, K, H, W); the teacher is a
            deep copy without gradients (attribute ``teacher``). Usually a
            :class:`~leseg.models.depth.segmentation.DepthSegmentor` initialised from depth.
        num_classes, ignore_index, optimizer, scheduler, inference, class_names, name, sup_loss,
            ohem_thresh, ohem_min_kept, aux_weight: see
            :class:`~leseg.methods.supervised.SupervisedSegmentation` (paper: CE).
        depth_net: frozen module images → disparity (B, 1, H, W) (None: disparity must come from
            the batch or the student); dropped for ``mix="classmix"``.
        mix: ``depthmix`` or ``classmix``.
        margin: DepthMix normalised-disparity margin (0.03).
        foreground_threshold: DepthMix threshold on the kept image's disparity (0 = none).
        mix_use_gt: one-hot ground truth instead of the teacher for pool samples with labels.
        mix_pool: ``unlabeled`` (the unlabeled batch) or ``all`` (labeled + unlabeled batches).
        unsup_weight: λ_c (1.0).
        confidence_threshold: 0.968 (pseudo-label weight = share of pixels at or above it).
        ema_alpha: 0.99; ema_copy_buffers: copy BN statistics into the teacher (False).
        ema_schedule: ``warmup_average`` (the reference's min(1 − 1/(k + 1), α)) or ``u2pl``
            (see :class:`~leseg.methods.mean_teacher.MeanTeacherSegmentation`).
        eval_net: ``student`` (the reference) or ``teacher``.
        teacher_train_mode: teacher forward with train-mode BN (reference) or eval mode.
        color_jitter, color_jitter_prob, blur_prob, blur_sigma, blur_kernel_ratio: strong
            perturbation (0.25, 0.8, 0.5, (0.15, 1.15), 0.1).
        image_mean, image_std: the DataModule's normalisation (to jitter RGB in [0, 1]).
        depth_weight: weight of a multi-task network's depth loss (1.0; the reference's λ_SDE).

    Raises:
        ValueError: an unknown ``mix`` / ``mix_pool``, a weight or probability out of range.
    """

    def __init__(self, net: nn.Module, num_classes: int, ignore_index: int = 255,
                 optimizer: dict[str, Any] | None = None,
                 scheduler: dict[str, Any] | None = None,
                 inference: dict[str, Any] | None = None,
                 class_names: list[str] | None = None, name: str = "depthmix",
                 sup_loss: str = "ce", ohem_thresh: float = 0.7, ohem_min_kept: int = 100_000,
                 aux_weight: float = 0.0, depth_net: nn.Module | None = None,
                 mix: str = "depthmix", margin: float = 0.03,
                 foreground_threshold: float = 0.0, mix_use_gt: bool = True,
                 mix_pool: str = "unlabeled", unsup_weight: float = 1.0,
                 confidence_threshold: float = 0.968, ema_alpha: float = 0.99,
                 ema_copy_buffers: bool = False, ema_schedule: str = "warmup_average",
                 eval_net: str = "student", teacher_train_mode: bool = True,
                 color_jitter: float = 0.25, color_jitter_prob: float = 0.8,
                 blur_prob: float = 0.5, blur_sigma: Sequence[float] = (0.15, 1.15),
                 blur_kernel_ratio: float = 0.1,
                 image_mean: Sequence[float] = IMAGENET_MEAN,
                 image_std: Sequence[float] = IMAGENET_STD, depth_weight: float = 1.0) -> None:
        super().__init__(net, num_classes, ignore_index, optimizer, scheduler, inference,
                         class_names, name, sup_loss, ohem_thresh, ohem_min_kept, aux_weight,
                         ema_alpha=ema_alpha, ema_copy_buffers=ema_copy_buffers,
                         ema_schedule=ema_schedule, eval_net=eval_net)
        self.save_hyperparameters(ignore=["net", "depth_net"], logger=False)
        self.mix = choice(mix, MIXES, "method.mix")
        self.mix_pool = choice(mix_pool, MIX_POOLS, "method.mix_pool")
        for key, value in (("confidence_threshold", confidence_threshold),
                           ("color_jitter_prob", color_jitter_prob), ("blur_prob", blur_prob)):
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"method.{key} must be in [0, 1], got {value}")
        for key, value in (("unsup_weight", unsup_weight), ("margin", margin),
                           ("depth_weight", depth_weight)):
            if float(value) < 0:
                raise ValueError(f"method.{key} must be >= 0, got {value}")
        self.margin, self.foreground_threshold = float(margin), float(foreground_threshold)
        self.mix_use_gt = bool(mix_use_gt)
        self.unsup_weight = float(unsup_weight)
        self.confidence_threshold = float(confidence_threshold)
        self.teacher_train_mode = bool(teacher_train_mode)
        self.jitter = {"jitter_strength": float(color_jitter),
                       "jitter_prob": float(color_jitter_prob), "blur_prob": float(blur_prob),
                       "sigma_range": tuple(float(s) for s in blur_sigma),
                       "kernel_ratio": float(blur_kernel_ratio)}
        self.depth_weight = float(depth_weight)
        self.register_buffer("image_mean", torch.tensor(list(image_mean)).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("image_std", torch.tensor(list(image_std)).view(1, 3, 1, 1),
                             persistent=False)
        self.depth_net = depth_net if self.mix == "depthmix" else None
        if self.depth_net is not None:
            self.depth_net.requires_grad_(False)

    # ------------------------------------------------------------------------ plumbing
    def train(self, mode: bool = True) -> DepthMixMeanTeacher:
        """Train mode; the frozen depth network stays in eval mode."""
        super().train(mode)
        if self.depth_net is not None:
            self.depth_net.eval()
        return self

    @property
    def multitask(self) -> bool:
        """True when the student has a depth branch (``forward_multitask``)."""
        return hasattr(self.net, "forward_multitask")

    def _unit(self, images: torch.Tensor) -> torch.Tensor:
        return images * self.image_std.to(images) + self.image_mean.to(images)

    def _normalised(self, images01: torch.Tensor) -> torch.Tensor:
        return (images01 - self.image_mean.to(images01)) / self.image_std.to(images01)

    # -------------------------------------------------------------------------- pieces
    def mix_pool_batch(self, labeled: Mapping[str, Any], unlabeled: Mapping[str, Any]
                       ) -> dict[str, torch.Tensor]:
        """The images to mix, with their ground truth where they have one.

        Returns:
            ``image`` (N, 3, H, W), ``valid`` (N, H, W) bool, ``label`` (N, H, W) int64
            (all ignore for unlabeled samples), ``has_label`` (N,) bool, and ``disparity``
            (N, H, W) when the unlabeled batch carries pre-computed pseudo-depth (pool
            ``unlabeled`` only).
        """
        x_u = unlabeled["image"]
        n_u, h, w = x_u.shape[0], x_u.shape[-2], x_u.shape[-1]
        valid_u = unlabeled.get("valid")
        valid_u = (torch.ones(n_u, h, w, dtype=torch.bool, device=x_u.device)
                   if valid_u is None else valid_u.bool())
        label_u = unlabeled.get("label")
        if label_u is None:
            label_u = torch.full((n_u, h, w), self.ignore_index, dtype=torch.long,
                                 device=x_u.device)
        has_u = unlabeled.get("has_label")
        has_u = ((label_u != self.ignore_index).flatten(1).any(1) if has_u is None
                 else torch.as_tensor(has_u, device=x_u.device).bool())
        pool = {"image": x_u, "valid": valid_u, "label": label_u, "has_label": has_u}
        if "disparity" in unlabeled:
            pool["disparity"] = unlabeled["disparity"]
        if self.mix_pool == "all":
            x_l, y_l = labeled["image"], labeled["label"]
            if x_l.shape[1:] != x_u.shape[1:]:
                raise ValueError(f"method.mix_pool=all needs labeled and unlabeled crops of the "
                                 f"same size, got {tuple(x_l.shape)} and {tuple(x_u.shape)}")
            pool = {"image": torch.cat([x_l, x_u]),
                    "valid": torch.cat([torch.ones_like(y_l, dtype=torch.bool), valid_u]),
                    "label": torch.cat([y_l, label_u]),
                    "has_label": torch.cat([torch.ones(x_l.shape[0], dtype=torch.bool,
                                                       device=x_l.device), has_u])}
        return pool

    def teacher_probs(self, pool: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Step 1: teacher softmax (N, K, H, W), one-hot GT for labeled samples, 0 at padding."""
        was_training = self.teacher.training
        self.teacher.train(self.teacher_train_mode)
        with torch.no_grad():
            probs = self.teacher(pool["image"]).float().softmax(dim=1)
            if self.mix_use_gt and bool(pool["has_label"].any()):
                gt = one_hot_probs(pool["label"], self.num_classes, self.ignore_index)
                probs = torch.where(pool["has_label"].view(-1, 1, 1, 1), gt, probs)
            probs = probs * pool["valid"].unsqueeze(1)
        self.teacher.train(was_training)
        return probs

    def mix_disparity(self, pool: Mapping[str, torch.Tensor],
                      student_disp: torch.Tensor | None = None) -> torch.Tensor:
        """Per-image min-max normalised disparity (N, H, W) of the pool for the DepthMix mask.

        Raises:
            ValueError: no source of disparity (names ``method.depth_net``).
        """
        if "disparity" in pool:
            disp = pool["disparity"]
        elif student_disp is not None:
            disp = student_disp.detach()
        elif self.depth_net is not None:
            disp = self.depth_net(pool["image"])
        else:
            raise ValueError("method.mix=depthmix needs disparities: set method.depth_net (the "
                             "frozen depth network), give 'disparity' in the unlabeled batch, or "
                             "use a multi-task network with a depth branch")
        disp = disp.float()
        if disp.dim() == 4:
            disp = disp[:, 0]
        if disp.shape[-2:] != pool["image"].shape[-2:]:
            disp = F.interpolate(disp[:, None], size=pool["image"].shape[-2:], mode="bilinear",
                                 align_corners=False)[:, 0]
        return normalize_disparity(disp)

    def mix_masks(self, pool: Mapping[str, torch.Tensor], probs: torch.Tensor,
                  student_disp: torch.Tensor | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """Steps 2–3: partners (N,) and masks (N, H, W) bool, True = taken from the partner.

        Raises:
            ValueError: fewer than 2 images in the pool (names the batch-size key).
        """
        n = pool["image"].shape[0]
        if n < 2:
            raise ValueError(f"method.mix={self.mix} needs at least 2 images to mix, got a mix "
                             f"pool of {n} (method.mix_pool={self.mix_pool}); increase "
                             f"data.unlabeled_batch_size (per device)")
        partner = partner_indices(n, device=pool["image"].device)
        if self.mix == "depthmix":
            disp = self.mix_disparity(pool, student_disp)
            mask = depthmix_masks(disp, partner, self.margin, self.foreground_threshold)
        else:
            max_p, classes = probs.max(dim=1)
            classes = torch.where(max_p > 0, classes, torch.full_like(classes, self.ignore_index))
            mask = classmix_masks(classes, partner, self.ignore_index)
        return partner, mask

    def pseudo_labels(self, probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Step 5: (labels (N, H, W) int64 with ignore where max P = 0, weight w (0-d))."""
        max_p, labels = probs.max(dim=1)
        labels = torch.where(max_p > 0, labels, torch.full_like(labels, self.ignore_index))
        return labels, confidence_share_weight(probs, self.confidence_threshold)

    # ------------------------------------------------------------------ training step
    def compute_losses(self, labeled: Mapping[str, Any], unlabeled: Mapping[str, Any]
                       ) -> dict[str, Any]:
        """Steps 1–6 on one labeled batch and one unlabeled batch.

        Returns:
            dict with ``loss`` (differentiable scalar), ``loss_sup``, ``loss_unsup``,
            ``loss_depth`` (None without a depth loss), ``weight`` (w), ``mask``, ``partner``,
            ``mixed_images``, ``pseudo_labels``.
        """
        x_l, y_l = labeled["image"], labeled["label"]
        pool = self.mix_pool_batch(labeled, unlabeled)
        probs = self.teacher_probs(pool)
        loss_depth = None
        student_disp = None
        if self.multitask:
            out_l = self.net.forward_multitask(x_l)
            loss_sup = self.supervised_loss(out_l["logits"], y_l)
            if out_l.get("side_logits") is not None:  # PAD: (CE(final) + CE(side output)) / 2
                loss_sup = (loss_sup + self.supervised_loss(out_l["side_logits"], y_l)) / 2
            wants_disp = self.mix == "depthmix" and "disparity" not in pool
            wants_depth_loss = self.depth_weight > 0 and self.depth_net is not None
            if wants_disp or wants_depth_loss:
                out_p = self.net.forward_multitask(pool["image"])  # the student's online depth
                student_disp = out_p["disp"]
                if wants_depth_loss:
                    loss_depth = berhu_loss(out_p["disp"], self.depth_net(pool["image"]))
        else:
            loss_sup = self.supervised_loss(self.student_outputs(x_l)["logits"], y_l)
        with torch.no_grad():
            partner, mask = self.mix_masks(pool, probs, student_disp)
            images, probs = apply_mix(mask, partner, pool["image"], probs)
            images01, _ = strong_photometric(self._unit(images).clamp(0, 1), **self.jitter)
            images = self._normalised(images01)
            labels, weight = self.pseudo_labels(probs)
        logits_u = self.net_outputs(self.net, images)["logits"]
        loss_unsup = self.unsup_weight * weighted_pixel_ce(logits_u, labels, weight,
                                                           self.ignore_index)
        loss = loss_sup + loss_unsup
        if loss_depth is not None:
            loss = loss + self.depth_weight * loss_depth
        return {"loss": loss, "loss_sup": loss_sup, "loss_unsup": loss_unsup,
                "loss_depth": loss_depth, "weight": weight, "mask": mask, "partner": partner,
                "mixed_images": images, "pseudo_labels": labels}

    def semi_supervised_step(self, labeled: Mapping[str, Any], unlabeled: Mapping[str, Any]
                             ) -> torch.Tensor:
        """L_seg + L_u (+ λ_SDE L_SDE); scalar float32."""
        out = self.compute_losses(labeled, unlabeled)
        n_l, n_u = labeled["image"].shape[0], out["mixed_images"].shape[0]
        self.log("train/loss_sup", out["loss_sup"], batch_size=n_l)
        self.log("train/loss_unsup", out["loss_unsup"], batch_size=n_u)
        if out["loss_depth"] is not None:
            self.log("train/loss_depth", out["loss_depth"], batch_size=n_l)
        self.log("train/pseudo_weight", out["weight"], batch_size=n_u)
        self.log("train/mix_share", out["mask"].float().mean(), batch_size=n_u)
        self.log("train/loss", out["loss"], prog_bar=True, batch_size=n_l + n_u)
        return out["loss"]
