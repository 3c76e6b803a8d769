"""The mean-teacher base shared by S4MC and DepthMix (and any future EMA-teacher method).

A mean-teacher method (Tarvainen & Valpola, NeurIPS 2017) trains a *student* ``net`` on labeled
and unlabeled batches while an *EMA teacher* — a frozen copy of the student whose parameters are
an exponential moving average of the student's — produces the pseudo-labels.
:class:`MeanTeacherSegmentation` owns everything that is not the method's own loss:

- the teacher: a deep copy of ``net`` at construction, ``requires_grad=False`` (attribute
  ``teacher``); the average after each optimiser step is the
  :class:`~leseg.callbacks.ema.EMATeacher` callback returned by :meth:`configure_callbacks`
  (decay ``ema_alpha``, schedule ``ema_schedule``, buffers copied with ``ema_copy_buffers``);
- the supervised-only warm-up: ``sup_only_epochs`` epochs (or ``sup_only_steps`` optimiser
  steps) with the labeled loss alone, after which the callback resets the teacher to the student
  (U2PL's ``sup_only_epoch``, ``train_semi.py``);
- the evaluated network: ``eval_net`` = ``teacher`` (U2PL / S4MC, evaluated once the warm-up is
  over, the student before) or ``student`` (Hoyer et al.'s Three Ways code evaluates the
  student); validation, test, eval.py and every caller of :meth:`predict_probs` use it, and the
  choice is a hyper-parameter saved in checkpoints and logged with the config;
- the batch contract ``{'labeled': ..., 'unlabeled': ...}`` of
  :class:`leseg.data.semisupervised.SemiSupervisedDataModule` (:meth:`split_batch`) and a forward
  of two batches through one network (:meth:`forward_pair`).

A subclass implements :meth:`semi_supervised_step` (the loss after the warm-up, returning the
scalar loss and logging its terms) and passes its own keys on to this constructor.

Logged during the warm-up: ``train/loss``, ``train/loss_sup`` and ``train/loss_aux`` (with an
auxiliary head).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

import torch
from lightning.pytorch import Callback
from torch import nn

from leseg.callbacks.ema import EMATeacher
from leseg.methods.supervised import SupervisedSegmentation
from leseg.utils.config import choice

#: networks a mean-teacher method can evaluate (``method.eval_net``)
EVAL_NETS = ("teacher", "student")
#: EMA decay schedules a mean-teacher method can use (``method.ema_schedule``)
EMA_SCHEDULES = ("warmup_average", "u2pl")


class MeanTeacherSegmentation(SupervisedSegmentation):
    """Student + EMA teacher, warm-up, evaluated network (module docstring).

    Args:
        net: the student segmentor, images (B, 3, H, W) float32 → logits (B, K, H, W); the
            teacher is a deep copy of it without gradients (attribute ``teacher``).
        num_classes, ignore_index, optimizer, scheduler, inference, class_names, name, sup_loss,
            ohem_thresh, ohem_min_kept, aux_weight: see
            :class:`~leseg.methods.supervised.SupervisedSegmentation`.
        ema_alpha: target EMA decay α in [0, 1] (0.99).
        ema_copy_buffers: copy the student's buffers (BN statistics) into the teacher at each
            update (False: the teacher keeps its own).
        ema_schedule: ``warmup_average`` (α_k = min(1 − 1/(k + 1), α) from the first step after
            the warm-up; Hoyer et al., DACS) or ``u2pl`` (teacher = student for
            ``ema_hold_steps`` steps after the warm-up, then min(1 − 1/k, α); U2PL / S4MC
            ``train_semi.py``); see :class:`~leseg.callbacks.ema.EMATeacher`.
        ema_hold_steps: ``u2pl`` only: the hold length in optimiser steps; None = one epoch
            (the reference's "first semi-supervised epoch"), fixed at train start.
        eval_net: ``teacher`` or ``student``: the network validation, test and prediction use
            (the teacher only once the warm-up is over; the student before).
        sup_only_epochs: supervised-only warm-up length in epochs (≥ 0; 0 = none).
        sup_only_steps: warm-up length in optimiser steps; overrides ``sup_only_epochs``.

    Raises:
        ValueError: an unknown ``eval_net`` / ``ema_schedule`` (names the key and the allowed
            values), ``ema_alpha`` outside [0, 1], a negative warm-up or hold length.
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
        name: str = "mean_teacher",
        sup_loss: str = "ce",
        ohem_thresh: float = 0.7,
        ohem_min_kept: int = 100_000,
        aux_weight: float = 0.0,
        ema_alpha: float = 0.99,
        ema_copy_buffers: bool = False,
        ema_schedule: str = "warmup_average",
        ema_hold_steps: int | None = None,
        eval_net: str = "teacher",
        sup_only_epochs: int = 0,
        sup_only_steps: int | None = None,
    ) -> None:
        super().__init__(net, num_classes, ignore_index, optimizer, scheduler, inference,
                         class_names, name, sup_loss, ohem_thresh, ohem_min_kept, aux_weight)
        self.eval_net_name = choice(eval_net, EVAL_NETS, "method.eval_net")
        self.ema_schedule = choice(ema_schedule, EMA_SCHEDULES, "method.ema_schedule")
        if not 0.0 <= ema_alpha <= 1.0:
            raise ValueError(f"method.ema_alpha must be in [0, 1], got {ema_alpha}")
        if sup_only_epochs < 0 or (sup_only_steps is not None and sup_only_steps < 0):
            raise ValueError(f"method.sup_only_epochs / sup_only_steps must be >= 0, got "
                             f"{sup_only_epochs} / {sup_only_steps}")
        if ema_hold_steps is not None and ema_hold_steps < 0:
            raise ValueError(f"method.ema_hold_steps must be >= 0 or null, got {ema_hold_steps}")
        self.ema_alpha, self.ema_copy_buffers = float(ema_alpha), bool(ema_copy_buffers)
        self.ema_hold_steps = None if ema_hold_steps is None else int(ema_hold_steps)
        self.sup_only_epochs = int(sup_only_epochs)
        self.sup_only_steps = None if sup_only_steps is None else int(sup_only_steps)
        self.teacher = copy.deepcopy(net)
        self.teacher.requires_grad_(False)
        # True once the warm-up is over: from then on eval_net=teacher evaluates the teacher
        self.register_buffer("teacher_ready", torch.tensor(False))
        self.warmup_steps = 0  # fixed at train start (on_train_start)
        self.ema_callback: EMATeacher | None = None

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any,
                              **kwargs: Any) -> None:
        # checkpoints written before this base (DepthMix) carry no teacher_ready: trained → True
        state_dict.setdefault(prefix + "teacher_ready", torch.tensor(True))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ------------------------------------------------------------------- teacher and EMA
    def configure_callbacks(self) -> list[Callback]:
        """The EMA teacher callback (α, schedule, buffers from the config; warm-up and hold
        lengths set at train start). Created once and returned again by later ``fit``/``test``
        calls of the same module."""
        if self.ema_callback is None:
            self.ema_callback = EMATeacher(alpha=self.ema_alpha, schedule=self.ema_schedule,
                                           copy_buffers=self.ema_copy_buffers, warmup_steps=0,
                                           student="net", teacher="teacher")
        return [self.ema_callback]

    def steps_per_epoch(self, key: str = "method.sup_only_steps") -> int:
        """Optimiser steps per epoch: ⌈batches / accumulate_grad_batches⌉ of the attached trainer.

        Raises:
            ValueError: the train loader has no length (names ``key``, the setting to use).
        """
        trainer = self.trainer
        batches = trainer.num_training_batches
        if not math.isfinite(batches):
            raise ValueError(f"{type(self).__name__} needs a sized train loader to convert epochs "
                             f"into optimiser steps; set {key} instead")
        return math.ceil(int(batches) / max(1, int(trainer.accumulate_grad_batches)))

    def on_train_start(self) -> None:
        """Fix the warm-up (and ``u2pl`` hold) length in steps and hand it to the EMA callback."""
        if self.sup_only_steps is not None:
            self.warmup_steps = self.sup_only_steps
        elif self.sup_only_epochs > 0:
            self.warmup_steps = self.sup_only_epochs * self.steps_per_epoch()
        else:
            self.warmup_steps = 0
        if self.ema_callback is not None:
            self.ema_callback.warmup_steps = self.warmup_steps
            if self.ema_schedule == "u2pl":
                self.ema_callback.hold_steps = (
                    self.ema_hold_steps if self.ema_hold_steps is not None
                    else self.steps_per_epoch("method.ema_hold_steps"))
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

    # ------------------------------------------------------------------------ evaluation
    @property
    def eval_net(self) -> nn.Module:
        """The evaluated network: the teacher when ``eval_net=teacher`` and the warm-up is over,
        otherwise the student. (The config string is ``hparams.eval_net`` / ``eval_net_name``.)"""
        if self.eval_net_name == "teacher" and bool(self.teacher_ready):
            return self.teacher
        return self.net

    def predict_probs(self, images: torch.Tensor, out_size: tuple[int, int] | None = None,
                      tta: bool = False) -> torch.Tensor:
        """Class probabilities (B, K, H', W') in [0, 1] of :attr:`eval_net` with the configured
        inference protocol (``tta`` selects multi-scale + flip when configured)."""
        predictor = self.predictor_tta if tta and self.predictor_tta is not None else self.predictor
        return predictor(self.eval_net, images, out_size=out_size)

    # --------------------------------------------------------------------- batches, forward
    def split_batch(self, batch: Any) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
        """``(labeled, unlabeled)`` of a semi-supervised batch.

        Raises:
            ValueError: the batch is not a mapping with ``labeled`` and ``unlabeled`` (names the
                keys it has and the ``data=<name>_semi`` setting).
        """
        if not isinstance(batch, Mapping) or not {"labeled", "unlabeled"} <= set(batch):
            keys = sorted(batch) if isinstance(batch, Mapping) else type(batch).__name__
            raise ValueError(f"{type(self).__name__} expects batches {{'labeled': ..., "
                             f"'unlabeled': ...}} from a semi-supervised DataModule "
                             f"(data=<name>_semi), got {keys}")
        return batch["labeled"], batch["unlabeled"]

    def net_outputs(self, net: nn.Module, x: torch.Tensor, representation: bool = False
                    ) -> dict[str, torch.Tensor]:
        """Student outputs (:meth:`student_outputs`: ``logits``, ``aux`` when weighted, ``rep``
        when asked for), or another network's ``logits`` (and ``rep``) for x (B, 3, H, W)."""
        if net is self.net:
            return self.student_outputs(x, representation)
        return net.forward_train(x, representation=True) if representation else {"logits": net(x)}

    def forward_pair(self, net: nn.Module, x_l: torch.Tensor, x_u: torch.Tensor,
                     representation: bool = False
                     ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Outputs (:meth:`net_outputs`) on x_l (B_l, 3, H, W) and on x_u (B_u, 3, H', W') from
        one forward over concat(x_l, x_u) — shared BN statistics, as U2PL — when the sizes match,
        else from two forwards."""
        if x_l.shape[1:] == x_u.shape[1:]:
            out = self.net_outputs(net, torch.cat([x_l, x_u]), representation)
            n_l = x_l.shape[0]
            return ({k: v[:n_l] for k, v in out.items()}, {k: v[n_l:] for k, v in out.items()})
        return (self.net_outputs(net, x_l, representation),
                self.net_outputs(net, x_u, representation))

    # ---------------------------------------------------------------------- training step
    def warmup_step(self, labeled: Mapping[str, Any]) -> torch.Tensor:
        """The supervised-only loss (scalar float32) on ``image`` (B, 3, H, W) / ``label``
        (B, H, W) int64, logged as ``train/loss_sup`` and ``train/loss``."""
        n_l = labeled["image"].shape[0]
        loss, loss_aux = self.labeled_loss(self.student_outputs(labeled["image"]),
                                           labeled["label"])
        if loss_aux is not None:
            self.log("train/loss_aux", loss_aux, batch_size=n_l)
        self.log("train/loss_sup", loss, batch_size=n_l)
        self.log("train/loss", loss, prog_bar=True, batch_size=n_l)
        return loss

    def semi_supervised_step(self, labeled: Mapping[str, Any], unlabeled: Mapping[str, Any]
                             ) -> torch.Tensor:
        """The method's loss after the warm-up (scalar float32); subclasses log its terms."""
        raise NotImplementedError(f"{type(self).__name__} must implement semi_supervised_step")

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """Supervised loss during the warm-up, :meth:`semi_supervised_step` afterwards."""
        labeled, unlabeled = self.split_batch(batch)
        if self.in_warmup():
            return self.warmup_step(labeled)
        return self.semi_supervised_step(labeled, unlabeled)
