"""S4MC: semi-supervised segmentation with contextual pseudo-label refinement (mean teacher).

Kimhi et al., "Semi-Supervised Semantic Segmentation via Marginal Contextual Information",
arXiv 2308.13900, on the U2PL recipe of its code base A (``s4mcontext/s4mc``); its ``train_semi.py``
is the step-by-step reference this module follows. One training step, on a labeled batch
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
   linearly from 100 − P % to 0 over training (``dpa_schedule`` epoch as the reference, step, or
   post_warmup: over the steps after the supervised-only warm-up, for long warm-ups);
   pixels whose *refined* margin is ≤ threshold, and padded pixels, are ignored; the class stays ŷ;
8. L_u = U2PL-rescaled CE on the kept pixels (all valid / kept · mean CE);
9. optional U2PL contrastive term L_c (``contrastive="u2pl"``, U2PL §3.3): student
   representations of labeled and mixed unlabeled pixels against the train-mode teacher's, with
   per-class memory queues of unreliable negatives
   (:func:`~leseg.components.contrastive.u2pl_contrastive_loss`); reliable / unreliable unlabeled
   pixels are the α_t % lowest / highest teacher entropies, α_t falling from 20 % to 0;
10. L = L_sup + ``aux_weight`` · L_aux + ``unsup_weight`` · L_u + ``contrastive_weight`` · L_c,
   where L_aux is the supervised criterion on the auxiliary head (Cityscapes 0.4); after the
   optimiser step the
   :class:`~leseg.callbacks.ema.EMATeacher` callback (returned by :meth:`configure_callbacks`)
   averages the student into the teacher. ``ema_schedule=u2pl`` (default) is the reference's
   (U2PL / ``s4mcontext/s4mc`` ``train_semi.py``): for the whole first semi-supervised epoch the
   teacher's parameters are the student's (α_k = 0), then α_k = min(1 − 1/k, ``ema_alpha``), k
   counted from the end of the warm-up; ``warmup_average`` is min(1 − 1/(k + 1), ``ema_alpha``)
   from k = 1 (the schedule leseg used before).

Padded unlabeled pixels never reach a loss: they are excluded from the percentile, the kept set
and the rescaling count, and their teacher probabilities are zeroed before the refinement, so for
their neighbours they act like the image border (zero padding, as in the reference).

With ``eval_net=teacher`` (default, as the reference) the teacher is evaluated (validation, test,
eval.py) as soon as the warm-up is over — the student before; the mean-teacher plumbing (teacher,
EMA callback, warm-up, evaluated network) is
:class:`~leseg.methods.mean_teacher.MeanTeacherSegmentation`. The contrastive term needs a segmentor whose head returns representations
(``model.head.representation_channels=256``) and the auxiliary loss one with an auxiliary head
(``model.aux_head``); both are checked at construction. The teacher probabilities and labels the
contrastive term uses are brought to the representation's resolution (stride 4) by bilinear / nearest
resampling of the full-resolution maps (U2PL reads its decoder's low-resolution softmax directly).
Fixed reference bugs (code base A ``train_semi.py``): a full epoch of iterations (not one), and CutMix never
pairs an image with itself.

Logged: ``train/loss``, ``train/loss_sup``, ``train/loss_unsup``, ``train/loss_aux`` and
``train/loss_contrastive`` (when enabled), ``train/pseudo_keep_ratio``
(kept / valid unlabeled pixels), ``train/dpa_threshold`` (τ), ``train/dpa_drop_percent`` (α).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from leseg.components.contrastive import (
    ClassMemoryQueues,
    all_gather_keys,
    entropy_reliability_masks,
    u2pl_contrastive_loss,
    u2pl_entropy_percent,
    u2pl_queue_sizes,
)
from leseg.components.mixing import apply_mix, classmix_masks, cutmix_masks, partner_indices
from leseg.components.pseudo_labels import (
    DEFAULT_BETA,
    DPA_PARTITIONS,
    neighbour_prior,
    published_prior,
    rescaled_unsup_ce,
    s4mc_pseudo_labels,
)
from leseg.methods.mean_teacher import MeanTeacherSegmentation
from leseg.utils.config import choice
from leseg.utils.logging import get_logger

log = get_logger(__name__)

MIXES = ("cutmix", "classmix", "none")
DPA_SCHEDULES = ("epoch", "step", "post_warmup")
CONTRASTIVE = ("none", "u2pl")
#: U2PL's contrastive hyper-parameters (U2PL §3.3; U2PL VOC config).
U2PL_DEFAULTS: dict[str, Any] = {
    "num_queries": 256,              # anchors per class
    "num_negatives": 50,             # negatives per anchor
    "temperature": 0.5,
    "anchor_prob_thresh": 0.3,       # δ_p: teacher probability of c for an anchor
    "negative_prob_thresh": 1.0,     # δ_n: no constraint
    "low_rank": 3,                   # unreliable pixel is a negative of its 4th-20th classes
    "high_rank": 20,
    "low_entropy_threshold": 20.0,   # α_0 %: reliable / unreliable share, falling to 0
    "queue_size": 30000,             # per class; class 0 (background) gets background_queue_size
    "background_queue_size": 50000,
}


class S4MC(MeanTeacherSegmentation):
    """S4MC mean-teacher training (module docstring); evaluation uses the teacher.

    Args:
        net: the student segmentor, images (B, 3, H, W) float32 → logits (B, K, H, W); the
            teacher is a deep copy without gradients (attribute ``teacher``).
        num_classes, ignore_index, optimizer, scheduler, inference, class_names, name: see
            :class:`~leseg.methods.base.SegmentationModule`.
        sup_loss, ohem_thresh, ohem_min_kept, aux_weight: the supervised criterion, as
            :class:`~leseg.methods.supervised.SupervisedSegmentation` (VOC: ``ce``; Cityscapes:
            ``ohem`` 0.7 / 100,000 pixels with an auxiliary head at 0.4).
        unsup_weight: weight of L_u (1.0).
        ema_alpha: EMA decay α (0.99).
        ema_copy_buffers: copy the student's BN statistics into the teacher at each update
            (False: the teacher keeps its own, updated by its train-mode forward, as U2PL).
        ema_schedule: ``u2pl`` (the reference: teacher = student for the first semi-supervised
            epoch, then min(1 − 1/k, α)) or ``warmup_average`` (min(1 − 1/(k + 1), α) from the
            first step); see :class:`~leseg.methods.mean_teacher.MeanTeacherSegmentation`.
        ema_hold_steps: ``u2pl`` hold length in optimiser steps (None: one epoch).
        eval_net: ``teacher`` (the reference, after the warm-up) or ``student``.
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
        prior: E, K values in [0, 1]; ``voc`` / ``cityscapes`` = the reference's published vectors
            (:func:`~leseg.components.pseudo_labels.published_prior`, 21 / 19 classes); None =
            estimated at ``setup("fit")`` from the labeled
            split's label maps (:func:`~leseg.components.pseudo_labels.neighbour_prior`), classes
            absent from it get the mean of the others.
        prior_max_images: estimate E from at most this many labeled images (evenly spaced);
            None = all.
        drop_percent: DPA's P in [0, 100] (VOC 60: drop 40 % → 0 %).
        dpa_schedule: ``epoch`` (α from current_epoch / max_epochs, the reference), ``step``
            (from global_step / total steps; needed for iteration-based runs) or ``post_warmup``
            ((global_step − warm-up steps) / (total − warm-up steps): the partition starts at
            100 − P % when the pseudo-labels start to be used, whatever the warm-up length; the
            reference's 1-epoch warm-up of 80 makes the three readings equal).
        dpa_partition: ``global`` (the paper: one threshold τ for the batch) or ``per_class``
            (an extension: τ_c per pseudo-label class, so each predicted class loses the same
            share; :func:`~leseg.components.pseudo_labels.dpa_threshold_per_class`).
        contrastive: ``none`` or ``u2pl`` (needs a head with representations,
            ``model.head.representation_channels``).
        contrastive_weight: weight of L_c (1.0).
        u2pl: overrides of :data:`U2PL_DEFAULTS` (anchors, negatives, temperature, ranks,
            entropy share, queue sizes).

    Raises:
        ValueError: an unknown choice (names the key and the allowed values), a probability or
            weight out of range, a ``prior`` of the wrong length / outside [0, 1], an unknown
            ``u2pl`` key, or a loss the network cannot feed (aux head, representations).
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
        ema_schedule: str = "u2pl",
        ema_hold_steps: int | None = None,
        eval_net: str = "teacher",
        sup_only_epochs: int = 1,
        sup_only_steps: int | None = None,
        teacher_train_forward: bool = True,
        mix: str = "cutmix",
        mix_prob: float = 0.5,
        cutmix_area: float = 0.5,
        beta: float | None = None,
        connectivity: int = 4,
        num_neighbours: int = 1,
        prior: Sequence[float] | str | None = None,
        prior_max_images: int | None = None,
        drop_percent: float = 60.0,
        dpa_schedule: str = "epoch",
        dpa_partition: str = "global",
        contrastive: str = "none",
        contrastive_weight: float = 1.0,
        u2pl: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(net, num_classes, ignore_index, optimizer, scheduler, inference,
                         class_names, name, sup_loss, ohem_thresh, ohem_min_kept, aux_weight,
                         ema_alpha=ema_alpha, ema_copy_buffers=ema_copy_buffers,
                         ema_schedule=ema_schedule, ema_hold_steps=ema_hold_steps,
                         eval_net=eval_net, sup_only_epochs=sup_only_epochs,
                         sup_only_steps=sup_only_steps)
        self.mix = choice(mix, MIXES, "method.mix")
        self.dpa_schedule = choice(dpa_schedule, DPA_SCHEDULES, "method.dpa_schedule")
        self.dpa_partition = choice(dpa_partition, DPA_PARTITIONS, "method.dpa_partition")
        self.contrastive = choice(contrastive, CONTRASTIVE, "method.contrastive")
        unknown = set(u2pl or {}) - set(U2PL_DEFAULTS)
        if unknown:
            raise ValueError(f"method.u2pl has unknown keys {sorted(unknown)}; allowed: "
                             f"{sorted(U2PL_DEFAULTS)}")
        self.u2pl = {**U2PL_DEFAULTS, **dict(u2pl or {})}
        if self.contrastive == "u2pl" and not getattr(net, "has_representation", False):
            raise ValueError(
                "method.contrastive=u2pl needs pixel representations: build the head with "
                "model.head.representation_channels=256 (U2PL's representation head); "
                f"{type(net).__name__} has none")
        if contrastive_weight < 0:
            raise ValueError(f"method.contrastive_weight must be >= 0, got {contrastive_weight}")
        if not 0.0 <= mix_prob <= 1.0:
            raise ValueError(f"method.mix_prob must be a probability in [0, 1], got {mix_prob}")
        if not 0.0 < cutmix_area < 1.0:
            raise ValueError(f"method.cutmix_area must be in (0, 1), got {cutmix_area}")
        if not 0.0 <= drop_percent <= 100.0:
            raise ValueError(f"method.drop_percent must be in [0, 100], got {drop_percent}")
        if unsup_weight < 0:
            raise ValueError(f"method.unsup_weight must be >= 0, got {unsup_weight}")
        self.contrastive_weight = float(contrastive_weight)
        self.unsup_weight = float(unsup_weight)
        self.teacher_train_forward = bool(teacher_train_forward)
        self.mix_prob, self.cutmix_area = float(mix_prob), float(cutmix_area)
        self.beta = DEFAULT_BETA if beta is None else float(beta)
        self.connectivity, self.num_neighbours = int(connectivity), int(num_neighbours)
        self.drop_percent = float(drop_percent)
        self.prior_max_images = prior_max_images
        self.prior_configured = prior is not None

        # U2PL's memory queues: buffers, so they are checkpointed and restored on resume
        self.queues: ClassMemoryQueues | None = None
        if self.contrastive == "u2pl":
            self.queues = ClassMemoryQueues(
                num_classes, int(net.head.representation_channels),
                u2pl_queue_sizes(num_classes, int(self.u2pl["queue_size"]),
                                 int(self.u2pl["background_queue_size"])))
        # E, saved in checkpoints so that evaluation and resumed runs see the same values
        self.register_buffer("prior", torch.full((num_classes,), float("nan")))
        if isinstance(prior, str):
            prior = published_prior(prior, num_classes)
        if prior is not None:
            self.set_prior(prior)

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

    # ------------------------------------------------------------------------- schedule
    def on_train_start(self) -> None:
        """Warm-up and EMA hold lengths (base class); ``dpa_schedule=epoch`` needs max_epochs.

        Raises:
            ValueError: ``dpa_schedule=epoch`` without ``trainer.max_epochs`` > 0.
        """
        super().on_train_start()
        if self.dpa_schedule == "epoch" and not (self.trainer.max_epochs or 0) > 0:
            raise ValueError("method.dpa_schedule=epoch needs trainer.max_epochs > 0; use "
                             "method.dpa_schedule=step for iteration-based training")

    def training_progress(self) -> float:
        """DPA progress in [0, 1]: current_epoch / max_epochs, global_step / total steps, or
        (global_step − warm-up) / (total steps − warm-up) for ``post_warmup``."""
        trainer = self.trainer
        if self.dpa_schedule == "epoch":
            progress = trainer.current_epoch / max(1, int(trainer.max_epochs))
        elif self.dpa_schedule == "post_warmup":
            total = int(trainer.estimated_stepping_batches) - self.warmup_steps
            progress = (self.global_step - self.warmup_steps) / max(1, total)
        else:
            progress = self.global_step / max(1, int(trainer.estimated_stepping_batches))
        return min(max(progress, 0.0), 1.0)

    # ------------------------------------------------------------------------- losses
    def contrastive_loss(self, student_rep: torch.Tensor, teacher_rep: torch.Tensor,
                         teacher_probs: torch.Tensor, y_l: torch.Tensor, classes: torch.Tensor,
                         valid: torch.Tensor, progress: float
                         ) -> tuple[torch.Tensor, dict[str, int]]:
        """U2PL's contrastive term on concat(labeled, unlabeled) (S4MC ``train_semi.py``).

        Args:
            student_rep, teacher_rep: (B_l + B_u, D, h, w) representations.
            teacher_probs: (B_l + B_u, K, H, W) train-mode teacher softmax at full resolution.
            y_l: (B_l, H, W) int64 ground truth; classes: (B_u, H, W) int64 teacher pseudo-labels
                (unfiltered); valid: (B_u, H, W) bool.
            progress: training progress in [0, 1] (α_t = 20 % · (1 − progress)).

        Returns:
            ``(loss, stats)`` of :func:`~leseg.components.contrastive.u2pl_contrastive_loss`.
        """
        size = student_rep.shape[-2:]
        n_l = y_l.shape[0]
        with torch.no_grad():
            probs = F.interpolate(teacher_probs.float(), size=size, mode="bilinear",
                                  align_corners=False)
            labels = torch.cat([y_l, torch.where(valid, classes,
                                                 torch.full_like(classes, self.ignore_index))])
            labels = F.interpolate(labels[:, None].float(), size=size, mode="nearest")[:, 0].long()
            valid_small = labels[n_l:] != self.ignore_index
            alpha = u2pl_entropy_percent(progress, 1.0, float(self.u2pl["low_entropy_threshold"]))
            reliable_u, unreliable_u = entropy_reliability_masks(probs[n_l:], valid_small, alpha)
            labeled_valid = labels[:n_l] != self.ignore_index
            reliable = torch.cat([labeled_valid, reliable_u])
            unreliable = torch.cat([torch.zeros_like(labeled_valid), unreliable_u])
            is_labeled = torch.arange(labels.shape[0], device=labels.device) < n_l
        p = self.u2pl
        return u2pl_contrastive_loss(
            student_rep.float(), teacher_rep.float(), probs, labels, reliable, unreliable,
            is_labeled, self.queues, num_queries=int(p["num_queries"]),
            num_negatives=int(p["num_negatives"]),
            anchor_prob_thresh=float(p["anchor_prob_thresh"]),
            negative_prob_thresh=float(p["negative_prob_thresh"]), low_rank=int(p["low_rank"]),
            high_rank=int(p["high_rank"]), temperature=float(p["temperature"]),
            ignore_index=self.ignore_index, gather_keys=all_gather_keys)

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
            self.ignore_index, self.num_neighbours, classes=classes, partition=self.dpa_partition)
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
    def compute_losses(self, labeled: Mapping[str, Any], unlabeled: Mapping[str, Any],
                       progress: float) -> dict[str, Any]:
        """Steps 2–9 of the module docstring on one labeled and one unlabeled batch.

        Args:
            labeled: ``image`` (B_l, 3, H, W) float32, ``label`` (B_l, H, W) int64.
            unlabeled: ``image`` (B_u, 3, H, W) float32, ``valid`` (B_u, H, W) bool.
            progress: training progress in [0, 1] (DPA).

        Returns:
            dict with ``loss`` (scalar, differentiable), ``loss_sup`` (with the weighted aux
            term), ``loss_aux`` (None without), ``loss_unsup``, ``loss_contrastive`` (None
            without), ``keep_ratio``, ``threshold``, ``drop_percent``, ``pseudo_labels``
            (B_u, H, W), ``mix`` (see :meth:`strong_augment`).
        """
        x_l, y_l = labeled["image"], labeled["label"]
        x_u, valid = unlabeled["image"], unlabeled["valid"].bool()
        contrastive = self.contrastive == "u2pl"
        teacher_was_training = self.teacher.training
        teacher_l: dict[str, torch.Tensor] = {}
        teacher_u: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            self.teacher.eval()
            probs = self.teacher(x_u).float().softmax(dim=1)
            classes = probs.argmax(dim=1)
            (x_u, classes, valid, probs), mix_info = self.strong_augment(x_u, classes, valid, probs)
            if self.teacher_train_forward or contrastive:
                # step 5: train-mode teacher pass on concat(x_l, mixed x_u)
                self.teacher.train()
                teacher_l, teacher_u = self.forward_pair(self.teacher, x_l, x_u, contrastive)
                if self.teacher_train_forward:
                    probs = teacher_u["logits"].float().softmax(dim=1)
        self.teacher.train(teacher_was_training)

        student_l, student_u = self.forward_pair(self.net, x_l, x_u, contrastive)
        loss_sup, loss_aux = self.labeled_loss(student_l, y_l)
        loss_unsup, stats = self.unsupervised_loss(student_u["logits"], probs, classes, valid,
                                                   progress)
        loss = loss_sup + self.unsup_weight * loss_unsup
        loss_con = None
        if contrastive:
            teacher_probs = torch.cat([teacher_l["logits"], teacher_u["logits"]]).float()
            loss_con, _ = self.contrastive_loss(
                torch.cat([student_l["rep"], student_u["rep"]]),
                torch.cat([teacher_l["rep"], teacher_u["rep"]]), teacher_probs.softmax(dim=1),
                y_l, classes, valid, progress)
            loss = loss + self.contrastive_weight * loss_con
        return {"loss": loss, "loss_sup": loss_sup, "loss_aux": loss_aux,
                "loss_unsup": loss_unsup, "loss_contrastive": loss_con,
                "keep_ratio": stats["keep_ratio"], "threshold": stats["threshold"],
                "drop_percent": stats["drop_percent"], "pseudo_labels": stats["labels"],
                "mix": mix_info}

    def semi_supervised_step(self, labeled: Mapping[str, Any], unlabeled: Mapping[str, Any]
                             ) -> torch.Tensor:
        """S4MC's L_sup + L_u (+ L_c) after the warm-up (scalar float32), with its logs."""
        out = self.compute_losses(labeled, unlabeled, self.training_progress())
        n_l, n_u = labeled["image"].shape[0], unlabeled["image"].shape[0]
        if out["loss_aux"] is not None:
            self.log("train/loss_aux", out["loss_aux"], batch_size=n_l)
        if out["loss_contrastive"] is not None:
            self.log("train/loss_contrastive", out["loss_contrastive"], batch_size=n_l + n_u)
        self.log("train/loss_sup", out["loss_sup"], batch_size=n_l)
        self.log("train/loss_unsup", out["loss_unsup"], batch_size=n_u)
        self.log("train/pseudo_keep_ratio", out["keep_ratio"], batch_size=n_u)
        self.log("train/dpa_threshold", out["threshold"], batch_size=n_u)
        self.log("train/dpa_drop_percent", float(out["drop_percent"]), batch_size=n_u)
        self.log("train/loss", out["loss"], prog_bar=True, batch_size=n_l + n_u)
        return out["loss"]
