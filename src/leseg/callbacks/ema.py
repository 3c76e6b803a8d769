"""The EMA-teacher callback shared by S4MC, DepthMix (mean teacher) and BYOL (momentum target)."""

from __future__ import annotations

from typing import Any

import lightning as L

from leseg.components.ema import (
    copy_weights,
    cosine_tau,
    ema_update,
    u2pl_alpha,
    warmup_average_alpha,
)

#: α schedules of :class:`EMATeacher`
SCHEDULES = ("warmup_average", "u2pl", "cosine", "constant")


class EMATeacher(L.Callback):
    """Average ``pl_module.<student>`` into ``pl_module.<teacher>`` after each real optimiser step.

    The update runs in ``on_train_batch_end`` only when ``trainer.global_step`` advanced, so gradient
    accumulation is respected (one update per optimiser step, not per batch).

    Args:
        alpha: target decay α (0.99 for S4MC/U2PL and Hoyer et al.; τ_base = 0.996 for BYOL).
        schedule: ``warmup_average`` (α_k = min(1 − 1/(k+1), α); Hoyer et al. / DACS), ``u2pl``
            (α_k = 0 for k ≤ ``hold_steps``, then min(1 − 1/k, α); U2PL / S4MC reference,
            :func:`~leseg.components.ema.u2pl_alpha`), ``cosine`` (BYOL: α → 1 over the run) or
            ``constant``.
        copy_buffers: also copy buffers (BN statistics) from the student.
        warmup_steps: supervised-only warm-up: no averaging for the first ``warmup_steps`` optimiser
            steps; at the end the teacher is reset to the student and averaging starts at k = 1.
        hold_steps: ``u2pl`` only: steps after the warm-up during which the teacher is the student
            (one epoch in the reference; the method sets it at train start).
        student: attribute name of the student module on the LightningModule.
        teacher: attribute name of the teacher module.

    Raises:
        ValueError: an unknown ``schedule`` or a negative ``hold_steps``.
        AttributeError: at fit start, if the LightningModule lacks either attribute.
    """

    def __init__(self, alpha: float = 0.99, schedule: str = "warmup_average",
                 copy_buffers: bool = False, warmup_steps: int = 0, student: str = "net",
                 teacher: str = "teacher", hold_steps: int = 0) -> None:
        if schedule not in SCHEDULES:
            raise ValueError(f"EMATeacher.schedule={schedule!r}: expected one of {SCHEDULES}")
        if hold_steps < 0:
            raise ValueError(f"EMATeacher.hold_steps must be >= 0, got {hold_steps}")
        self.alpha, self.schedule, self.copy_buffers = alpha, schedule, copy_buffers
        self.hold_steps = int(hold_steps)
        self.warmup_steps, self.student, self.teacher = warmup_steps, student, teacher
        self._last_step = -1
        self.last_alpha: float | None = None

    def _modules(self, pl_module: L.LightningModule):
        for name in (self.student, self.teacher):
            if not hasattr(pl_module, name):
                raise AttributeError(f"EMATeacher: {type(pl_module).__name__} has no attribute "
                                     f"{name!r} (configure student=/teacher= names)")
        return getattr(pl_module, self.student), getattr(pl_module, self.teacher)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:  # noqa: D102
        self._modules(pl_module)
        self._last_step = trainer.global_step

    def alpha_at(self, step: int, total_steps: int) -> float:
        """Decay for EMA step ``step`` (1-based, counted after the warm-up)."""
        if self.schedule == "warmup_average":
            return warmup_average_alpha(step, self.alpha)
        if self.schedule == "u2pl":
            return u2pl_alpha(step, self.hold_steps, self.alpha)
        if self.schedule == "cosine":
            return cosine_tau(step, max(total_steps - self.warmup_steps, 1), self.alpha)
        return self.alpha

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:  # noqa: D102
        step = trainer.global_step
        if step == self._last_step:  # accumulating gradients: no optimiser step happened
            return
        self._last_step = step
        student, teacher = self._modules(pl_module)
        if step < self.warmup_steps:
            return
        if step == self.warmup_steps and self.warmup_steps > 0:
            copy_weights(teacher, student)
            return
        k = step - self.warmup_steps
        self.last_alpha = self.alpha_at(k, int(trainer.estimated_stepping_batches))
        ema_update(teacher, student, self.last_alpha, self.copy_buffers)
