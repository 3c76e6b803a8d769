"""S4MC: semi-supervised segmentation with contextual pseudo-label refinement (mean teacher).

Kimhi et al., "Semi-Supervised Semantic Segmentation via Marginal Contextual Information",
arXiv 2308.13900, on the U2PL recipe of its code base A (``s4mcontext/s4mc``); METHODS.md §3(c)
gives the step-by-step reference this module follows. One training step, on a labeled batch
(x_l, y_l) and an unlabeled batch (x_u, valid_u) from
:class:`leseg.data.semisupervised.SemiSupervisedDataModule`:

1. supervised-only warm-up: for the first ``sup_only_epochs`` epochs (or ``sup_only_steps``
   optimiser steps) only L_sup on x_l; the EMA teacher is then reset to the student;
2. pseudo-labels: the teacher in **eval** mode on x_u → softmax → classes ŷ = argmax;
3. strong augmentation: with probability ``mix_prob`` (0.5) per batch, CutMix (a box of half the
   image area) or ClassMix with a partner drawn from the *other* images of the batch
   (:func:`~leseg.components.mixing.partner_indices`), applied identically to images, ŷ, the
   teacher probabilities and the validity maps;
4. student forward on concat(x_l, x̃_u);
5. teacher forward in **train** mode (no gradient) on concat(x_l, x̃_u): its softmax on x̃_u is the
   p that is refined (``teacher_train_forward=False`` uses the mixed eval-mode probabilities
   instead and saves this forward);
6. S4MC refinement p̃ = p + β(q − max(pq, pE)) with the dataset prior E (estimated on the labeled
   split at setup unless ``prior`` is given); the confidence is the top-1 − top-2 margin;
7. DPA: threshold = the α-th percentile of the *unrefined* margin over valid pixels, α falling
   linearly from 100 − P % to 0 over training (``dpa_schedule`` epoch as the reference, or step);
   pixels whose *refined* margin is ≤ threshold, and padded pixels, are ignored; the class stays ŷ;
8. L_u = U2PL-rescaled CE on the kept pixels (all valid / kept · mean CE);
9. L = L_sup + ``unsup_weight`` · L_u; after the optimiser step the
   :class:`~leseg.callbacks.ema.EMATeacher` callback (returned by :meth:`configure_callbacks`)
   averages the student into the teacher with α_k = min(1 − 1/(k + 1), ``ema_alpha``).

Padded unlabeled pixels never reach a loss: they are excluded from the percentile, the kept set
and the rescaling count, and their teacher probabilities are zeroed before the refinement, so for
their neighbours they act like the image border (zero padding, as in the reference).

Deviations and gaps, stated: the teacher is evaluated (validation, test, eval.py) as soon as the
warm-up is over — the student before; U2PL's contrastive term (``contrastive="u2pl"``) needs pixel
representations that :class:`~leseg.models.segmentor.Segmentor` does not return, so it raises
``NotImplementedError``; an auxiliary-head loss (``aux_weight``) is skipped with a warning for the
same reason (the segmentor has no auxiliary head). Fixed reference bugs (METHODS.md §3(g)): a full
epoch of iterations (not one), and CutMix never pairs an image with itself.

Logged: ``train/loss``, ``train/loss_sup``, ``train/loss_unsup``, ``train/pseudo_keep_ratio``
(kept / valid unlabeled pixels), ``train/dpa_threshold`` (τ), ``train/dpa_drop_percent`` (α).
"""

from __future__ import annotations

import copy
import math
import random
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from lightning.pytorch import Callback
from torch import nn

from leseg.callbacks.ema import EMATeacher
from leseg.components.losses import cross_entropy
from leseg.components.mixing import apply_mix, classmix_masks, cutmix_masks, partner_indices
from leseg.components.ohem import ohem_cross_entropy
from leseg.components.pseudo_labels import (
    DEFAULT_BETA,
    neighbour_prior,
    rescaled_unsup_ce,
    s4mc_pseudo_labels,
)
from leseg.methods.base import SegmentationModule
from leseg.utils.logging import get_logger

log = get_logger(__name__)

SUP_LOSSES = ("ce", "ohem")
MIXES = ("cutmix", "classmix", "none")
DPA_SCHEDULES = ("epoch", "step")
CONTRASTIVE = ("none", "u2pl")


def _choice(value: str, allowed: tuple[str, ...], key: str) -> str:
    value = str(value).lower()
    if value not in allowed:
        raise ValueError(f"{key}={value!r} is not one of {allowed}")
    return value


class S4MC(SegmentationModule):
    """S4MC mean-teacher training (module docstring); evaluation uses the teacher.

    Args:
        net: the student segmentor, images (B, 3, H, W) float32 → logits (B, K, H, W); the
            teacher is a deep copy without gradients (attribute ``teacher``).
        num_classes, ignore_index, optimizer, scheduler, inference, class_names, name: see
            :class:`~leseg.methods.base.SegmentationModule`.
        sup_loss: ``ce`` (VOC) or ``ohem`` (Cityscapes: keep pixels with true-class probability
            ≤ ``ohem_thresh``, at least ``ohem_min_kept``).
        ohem_thresh, ohem_min_kept: OHEM parameters (0.7, 100,000).
        aux_weight: weight of an auxiliary-head CE (Cityscapes 0.4). The segmentor has no
            auxiliary head, so a value > 0 is skipped with a warning.
        unsup_weight: weight of L_u (1.0).
        ema_alpha: EMA decay α (0.99); α_k = min(1 − 1/(k + 1), α) after the warm-up.
        ema_copy_buffers: copy the student's BN statistics into the teacher at each update
            (False: the teacher keeps its own, updated by its train-mode forward, as U2PL).
        sup_only_epochs: supervised-only warm-up length in epochs (VOC 1, Cityscapes 0).
        sup_only_steps: warm-up length in optimiser steps; overrides ``sup_only_epochs``.
        teacher_train_forward: run the second, train-mode teacher forward on the mixed batch
            (reference, step 5); False refines the mixed eval-mode probabilities instead.
        mix: ``cutmix``, ``classmix`` or ``none``.
        mix_prob: probability in [0, 1] that a batch is mixed (0.5).
        cutmix_area: CutMix box area as a fraction of the image, in (0, 1) (0.5).
        beta: refinement damping β ≥ 0; None = e^(−1/2).
        connectivity: 4 or 8 neighbours.
        num_neighbours: k neighbours used by the refinement (1).
        prior: E, K values in [0, 1]; None = estimated at ``setup("fit")`` from the labeled
            split's label maps (:func:`~leseg.components.pseudo_labels.neighbour_prior`), classes
            absent from it get the mean of the others.
        prior_max_images: estimate E from at most this many labeled images (evenly spaced);
            None = all.
        drop_percent: DPA's P in [0, 100] (VOC 60: drop 40 % → 0 %).
        dpa_schedule: ``epoch`` (α from current_epoch / max_epochs, the reference) or ``step``
            (from global_step / total steps; needed for iteration-based runs).
        contrastive: ``none``; ``u2pl`` raises ``NotImplementedError`` (see module docstring).

    Raises:
        ValueError: an unknown choice (names the key and the allowed values), a probability or
            weight out of range, or a ``prior`` of the wrong length / outside [0, 1].
        NotImplementedError: ``contrastive="u2pl"``.
    """

    def __init__(
        self,
        net: nn.Module,
        num_classes: int,
        ignore_index: int = 255,
        optimizer: dict[str, Any] | None = None,
        scheduler: dict[str, Any] | None = None,
        inference: dict[str, Any] | None = None,
        class_names: list[str] | None = None,
        name: str = "s4mc",
        sup_loss: str = "ce",
        ohem_thresh: float = 0.7,
        ohem_min_kept: int = 100_000,
        aux_weight: float = 0.0,
        unsup_weight: float = 1.0,
        ema_alpha: float = 0.99,
        ema_copy_buffers: bool = False,
        sup_only_epochs: int = 1,
        sup_only_steps: int | None = None,
        teacher_train_forward: bool = True,
        mix: str = "cutmix",
        mix_prob: float = 0.5,
        cutmix_area: float = 0.5,
        beta: float | None = None,
        connectivity: int = 4,
        num_neighbours: int = 1,
        prior: Sequence[float] | None = None,
        prior_max_images: int | None = None,
        drop_percent: float = 60.0,
        dpa_schedule: str = "epoch",
        contrastive: str = "none",
    ) -> None:
        super().__init__(net, num_classes, ignore_index, optimizer, scheduler, inference,
                         class_names, name)
        self.sup_loss = _choice(sup_loss, SUP_LOSSES, "method.sup_loss")
        self.mix = _choice(mix, MIXES, "method.mix")
        self.dpa_schedule = _choice(dpa_schedule, DPA_SCHEDULES, "method.dpa_schedule")
        self.contrastive = _choice(contrastive, CONTRASTIVE, "method.contrastive")
        if self.contrastive == "u2pl":
            raise NotImplementedError(
                "method.contrastive=u2pl needs pixel representations from the segmentor (U2PL's "
                "256-d representation head next to the classifier); "
                f"{type(net).__name__} returns logits only. Use method.contrastive=none.")
        if not 0.0 <= mix_prob <= 1.0:
            raise ValueError(f"method.mix_prob must be a probability in [0, 1], got {mix_prob}")
        if not 0.0 < cutmix_area < 1.0:
            raise ValueError(f"method.cutmix_area must be in (0, 1), got {cutmix_area}")
        if not 0.0 <= ema_alpha <= 1.0:
            raise ValueError(f"method.ema_alpha must be in [0, 1], got {ema_alpha}")
        if not 0.0 <= drop_percent <= 100.0:
            raise ValueError(f"method.drop_percent must be in [0, 100], got {drop_percent}")
        if unsup_weight < 0 or aux_weight < 0:
            raise ValueError(f"method.unsup_weight and method.aux_weight must be >= 0, got "
                             f"{unsup_weight} and {aux_weight}")
        if sup_only_epochs < 0 or (sup_only_steps is not None and sup_only_steps < 0):
            raise ValueError(f"method.sup_only_epochs / sup_only_steps must be >= 0, got "
                             f"{sup_only_epochs} / {sup_only_steps}")
        if aux_weight > 0:
            warnings.warn(f"method.aux_weight={aux_weight}: {type(net).__name__} has no auxiliary "
                          f"head, so the auxiliary loss is skipped", stacklevel=2)
        self.ohem_thresh, self.ohem_min_kept = float(ohem_thresh), int(ohem_min_kept)
        self.unsup_weight = float(unsup_weight)
        self.ema_alpha, self.ema_copy_buffers = float(ema_alpha), bool(ema_copy_buffers)
        self.sup_only_epochs = int(sup_only_epochs)
        self.sup_only_steps = None if sup_only_steps is None else int(sup_only_steps)
        self.teacher_train_forward = bool(teacher_train_forward)
        self.mix_prob, self.cutmix_area = float(mix_prob), float(cutmix_area)
        self.beta = DEFAULT_BETA if beta is None else float(beta)
        self.connectivity, self.num_neighbours = int(connectivity), int(num_neighbours)
        self.drop_percent = float(drop_percent)
        self.prior_max_images = prior_max_images
        self.prior_configured = prior is not None

        self.teacher = copy.deepcopy(net)
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        # E, saved in checkpoints so that evaluation and resumed runs see the same values
        self.register_buffer("prior", torch.full((num_classes,), float("nan")))
        if prior is not None:
            self.set_prior(prior)
        # True once the warm-up is over: from then on the teacher is the evaluated network
        self.register_buffer("teacher_ready", torch.tensor(False))
        self.warmup_steps = 0
        self.ema_callback: EMATeacher | None = None

    # ------------------------------------------------------------------------ prior E
    def set_prior(self, prior: Sequence[float] | torch.Tensor) -> None:
        """Set E (K values in [0, 1]).

        Raises:
            ValueError: wrong length, NaN, or a value outside [0, 1] (names ``method.prior``).
        """
        values = torch.as_tensor(prior, dtype=torch.float32).flatten()
        if values.numel() != self.num_classes:
            raise ValueError(f"method.prior must have {self.num_classes} values (one per class), "
                             f"got {values.numel()}")
        if torch.isnan(values).any() or (values < 0).any() or (values > 1).any():
            raise ValueError(f"method.prior values must be probabilities in [0, 1], got "
                             f"{values.tolist()}")
        self.prior.copy_(values.to(self.prior.device))

    def estimate_prior(self, label_maps) -> torch.Tensor:
        """E from ground-truth label maps; classes never seen get the mean of the seen ones.

        Args:
            label_maps: iterable of (H, W) integer arrays/tensors (trainIds, 255 = ignore).

        Returns:
            (K,) float32 prior (also stored in the ``prior`` buffer).

        Raises:
            ValueError: no class has a labeled neighbour pair (empty or all-ignore labels).
        """
        estimate = neighbour_prior(label_maps, self.num_classes, self.ignore_index,
                                   self.connectivity)
        seen = ~torch.isnan(estimate)
        if not bool(seen.any()):
            raise ValueError("cannot estimate the S4MC prior E: the labeled split has no pair of "
                             "neighbouring labeled pixels; give method.prior instead")
        filled = torch.where(seen, estimate, estimate[seen].mean())
        self.set_prior(filled)
        return self.prior.clone()

    def setup(self, stage: str) -> None:
        """Class names (base class); for fit, estimate E from the labeled split unless given.

        Raises:
            TypeError: E must be estimated but the DataModule has no ``labeled_label_maps``.
        """
        super().setup(stage)
        if stage != "fit" or self.prior_configured:
            return
        datamodule = getattr(self.trainer, "datamodule", None)
        maps = getattr(datamodule, "labeled_label_maps", None)
        if maps is None:
            raise TypeError(f"S4MC estimates its prior E from the labeled split, but the "
                            f"DataModule {type(datamodule).__name__} has no labeled_label_maps(); "
                            f"use a leseg.data.semisupervised DataModule (data=<name>_semi) or "
                            f"set method.prior")
        prior = self.estimate_prior(maps(self.prior_max_images))
        log.info("S4MC prior E (from the labeled split): "
                 + ", ".join(f"{n}={v:.3f}" for n, v in zip(self.class_names, prior.tolist(),
                                                            strict=True)))

    # --------------------------------------------------------------- teacher and schedule
    def configure_callbacks(self) -> list[Callback]:
        """The EMA teacher callback (α, buffers from the config; warm-up set at train start).

        Created once and returned again by later ``fit``/``test`` calls of the same module.
        """
        if self.ema_callback is None:
            self.ema_callback = EMATeacher(alpha=self.ema_alpha, schedule="warmup_average",
                                           copy_buffers=self.ema_copy_buffers, warmup_steps=0,
                                           student="net", teacher="teacher")
        return [self.ema_callback]

    def steps_per_epoch(self) -> int:
        """Optimiser steps per epoch: ⌈batches / accumulate_grad_batches⌉ of the attached trainer."""
        trainer = self.trainer
        batches = trainer.num_training_batches
        if not math.isfinite(batches):
            raise ValueError("S4MC needs a sized train loader to convert sup_only_epochs into "
                             "steps; set method.sup_only_steps instead")
        return math.ceil(int(batches) / max(1, int(trainer.accumulate_grad_batches)))

    def on_train_start(self) -> None:
        """Fix the warm-up length in steps and hand it to the EMA callback."""
        if self.sup_only_steps is not None:
            self.warmup_steps = self.sup_only_steps
        else:
            self.warmup_steps = self.sup_only_epochs * self.steps_per_epoch()
        if self.ema_callback is not None:
            self.ema_callback.warmup_steps = self.warmup_steps
        if self.dpa_schedule == "epoch" and not (self.trainer.max_epochs or 0) > 0:
            raise ValueError("method.dpa_schedule=epoch needs trainer.max_epochs > 0; use "
                             "method.dpa_schedule=step for iteration-based training")
        self._update_teacher_ready()

    def _update_teacher_ready(self) -> None:
        if not bool(self.teacher_ready) and self.global_step >= self.warmup_steps:
            self.teacher_ready.fill_(True)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Mark the teacher as ready once the warm-up is over (the callback reset it then)."""
        self._update_teacher_ready()

    def in_warmup(self) -> bool:
        """True during the supervised-only warm-up (global_step < warm-up steps)."""
        return self.global_step < self.warmup_steps

    def training_progress(self) -> float:
        """DPA progress in [0, 1]: current_epoch / max_epochs, or global_step / total steps."""
        trainer = self.trainer
        if self.dpa_schedule == "epoch":
            progress = trainer.current_epoch / max(1, int(trainer.max_epochs))
        else:
            progress = self.global_step / max(1, int(trainer.estimated_stepping_batches))
        return min(max(progress, 0.0), 1.0)

    @property
    def eval_net(self) -> nn.Module:
        """The evaluated network: the teacher after the warm-up, the student during it."""
        return self.teacher if bool(self.teacher_ready) else self.net

    def predict_probs(self, images: torch.Tensor, out_size: tuple[int, int] | None = None,
                      tta: bool = False) -> torch.Tensor:
        """Class probabilities (B, K, H', W') of :attr:`eval_net` with the inference protocol."""
        predictor = self.predictor_tta if tta and self.predictor_tta is not None else self.predictor
        return predictor(self.eval_net, images, out_size=out_size)

    # ------------------------------------------------------------------------- losses
    def supervised_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """CE or OHEM CE of logits (B, K, H, W) against labels (B, H, W) int64 (255 ignored)."""
        if self.sup_loss == "ohem":
            return ohem_cross_entropy(logits, labels, self.ignore_index, self.ohem_thresh,
                                      self.ohem_min_kept)
        return cross_entropy(logits, labels, ignore_index=self.ignore_index)

    def unsupervised_loss(self, student_logits: torch.Tensor, teacher_probs: torch.Tensor,
                          classes: torch.Tensor, valid: torch.Tensor, progress: float
                          ) -> tuple[torch.Tensor, dict[str, Any]]:
        """S4MC pseudo-labels (refinement + DPA) and the rescaled unsupervised CE.

        Args:
            student_logits: (B, K, H, W) float student logits on the (mixed) unlabeled images.
            teacher_probs: (B, K, H, W) float teacher softmax on the same images.
            classes: (B, H, W) int64 pseudo-label classes (teacher argmax, mixed like the images).
            valid: (B, H, W) bool, False at padded pixels.
            progress: training progress in [0, 1] for DPA.

        Returns:
            ``(loss, stats)``: scalar L_u, and ``keep_ratio``, ``threshold`` (0-d tensors),
            ``drop_percent`` (float), ``labels`` (B, H, W) int64 filtered pseudo-labels.

        Raises:
            ValueError: the prior E is not set (neither configured nor estimated at setup).
        """
        if bool(torch.isnan(self.prior).any()):
            raise ValueError("S4MC prior E is not set: give method.prior or let setup('fit') "
                             "estimate it from the labeled split")
        with torch.no_grad():
            probs = teacher_probs.float() * valid.unsqueeze(1)  # padded pixels act as border
        labels, _, stats = s4mc_pseudo_labels(
            probs, valid, self.prior, progress, self.drop_percent, self.beta, self.connectivity,
            self.ignore_index, self.num_neighbours, classes=classes)
        loss = rescaled_unsup_ce(student_logits.float(), labels, valid=valid,
                                 ignore_index=self.ignore_index)
        return loss, {**stats, "labels": labels}

    # ----------------------------------------------------------------------- mixing
    def strong_augment(self, images: torch.Tensor, classes: torch.Tensor, valid: torch.Tensor,
                       probs: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], dict[str, Any]]:
        """CutMix / ClassMix the unlabeled batch with probability ``mix_prob``.

        Args:
            images: (B, 3, H, W) float; classes: (B, H, W) int64; valid: (B, H, W) bool;
            probs: (B, K, H, W) float teacher probabilities.

        Returns:
            ``((images, classes, valid, probs), info)``, the four mixed with the same boxes and
            partners; ``info`` holds ``mixed`` (bool) and, when mixed, ``partner`` (B,) and
            ``mask`` (B, H, W) bool (True = taken from the partner).

        Raises:
            ValueError: mixing is enabled and the batch has fewer than 2 images (an image would
                be mixed with itself; names ``data.unlabeled_batch_size``).
        """
        batch, _, height, width = images.shape
        if self.mix != "none" and self.mix_prob > 0 and batch < 2:
            raise ValueError(f"S4MC {self.mix} needs at least 2 unlabeled images per device to draw "
                             f"a partner other than the image itself, got {batch}; increase "
                             f"data.unlabeled_batch_size")
        if self.mix == "none" or random.random() >= self.mix_prob:
            return (images, classes, valid, probs), {"mixed": False}
        partner = partner_indices(batch, device=images.device)
        if self.mix == "cutmix":
            mask = cutmix_masks(batch, height, width, self.cutmix_area, device=images.device)
        else:
            visible = torch.where(valid, classes, torch.full_like(classes, self.ignore_index))
            mask = classmix_masks(visible, partner, self.ignore_index)
        mixed = apply_mix(mask, partner, images, classes, valid, probs)
        return mixed, {"mixed": True, "partner": partner, "mask": mask}

    # ------------------------------------------------------------------ training step
    @staticmethod
    def _streams(batch: Any) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
        if not isinstance(batch, Mapping) or not {"labeled", "unlabeled"} <= set(batch):
            keys = sorted(batch) if isinstance(batch, Mapping) else type(batch).__name__
            raise ValueError(f"S4MC expects batches {{'labeled': ..., 'unlabeled': ...}} from a "
                             f"semi-supervised DataModule (data=<name>_semi), got {keys}")
        return batch["labeled"], batch["unlabeled"]

    def _forward_pair(self, net: nn.Module, x_l: torch.Tensor, x_u: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """One forward over concat(x_l, x_u) (shared BN statistics) when the sizes allow it."""
        if x_l.shape[1:] == x_u.shape[1:]:
            logits = net(torch.cat([x_l, x_u]))
            return logits[: x_l.shape[0]], logits[x_l.shape[0]:]
        return net(x_l), net(x_u)

    def compute_losses(self, labeled: Mapping[str, Any], unlabeled: Mapping[str, Any],
                       progress: float) -> dict[str, Any]:
        """Steps 2–9 of the module docstring on one labeled and one unlabeled batch.

        Args:
            labeled: ``image`` (B_l, 3, H, W) float32, ``label`` (B_l, H, W) int64.
            unlabeled: ``image`` (B_u, 3, H, W) float32, ``valid`` (B_u, H, W) bool.
            progress: training progress in [0, 1] (DPA).

        Returns:
            dict with ``loss`` (scalar, differentiable), ``loss_sup``, ``loss_unsup``,
            ``keep_ratio``, ``threshold``, ``drop_percent``, ``pseudo_labels`` (B_u, H, W),
            ``mix`` (see :meth:`strong_augment`).
        """
        x_l, y_l = labeled["image"], labeled["label"]
        x_u, valid = unlabeled["image"], unlabeled["valid"].bool()
        teacher_was_training = self.teacher.training
        with torch.no_grad():
            self.teacher.eval()
            probs = self.teacher(x_u).float().softmax(dim=1)
            classes = probs.argmax(dim=1)
            (x_u, classes, valid, probs), mix_info = self.strong_augment(x_u, classes, valid, probs)
            if self.teacher_train_forward:
                self.teacher.train()
                _, teacher_logits = self._forward_pair(self.teacher, x_l, x_u)
                probs = teacher_logits.float().softmax(dim=1)
        self.teacher.train(teacher_was_training)

        logits_l, logits_u = self._forward_pair(self.net, x_l, x_u)
        loss_sup = self.supervised_loss(logits_l, y_l)
        loss_unsup, stats = self.unsupervised_loss(logits_u, probs, classes, valid, progress)
        return {"loss": loss_sup + self.unsup_weight * loss_unsup, "loss_sup": loss_sup,
                "loss_unsup": loss_unsup, "keep_ratio": stats["keep_ratio"],
                "threshold": stats["threshold"], "drop_percent": stats["drop_percent"],
                "pseudo_labels": stats["labels"], "mix": mix_info}

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """Supervised loss during the warm-up, S4MC's L_sup + L_u afterwards (scalar float32)."""
        labeled, unlabeled = self._streams(batch)
        n_l = labeled["image"].shape[0]
        if self.in_warmup():
            loss = self.supervised_loss(self(labeled["image"]), labeled["label"])
            self.log("train/loss_sup", loss, batch_size=n_l)
            self.log("train/loss", loss, prog_bar=True, batch_size=n_l)
            return loss
        out = self.compute_losses(labeled, unlabeled, self.training_progress())
        n_u = unlabeled["image"].shape[0]
        self.log("train/loss_sup", out["loss_sup"], batch_size=n_l)
        self.log("train/loss_unsup", out["loss_unsup"], batch_size=n_u)
        self.log("train/pseudo_keep_ratio", out["keep_ratio"], batch_size=n_u)
        self.log("train/dpa_threshold", out["threshold"], batch_size=n_u)
        self.log("train/dpa_drop_percent", float(out["drop_percent"]), batch_size=n_u)
        self.log("train/loss", out["loss"], prog_bar=True, batch_size=n_l + n_u)
        return out["loss"]
