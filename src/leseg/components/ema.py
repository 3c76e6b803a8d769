"""Exponential moving average of weights: the EMA teacher / momentum encoder.

θ_teacher ← α_k · θ_teacher + (1 − α_k) · θ_student after each optimiser step k (k = 1, 2, ...).

- Mean teacher with warm-up average (Tarvainen & Valpola 2017; Hoyer et al. 2021, DACS):
  α_k = min(1 − 1/(k + 1), α), α = 0.99 — early on the teacher is the true running average.
- U2PL / S4MC reference (``train_semi.py`` of U2PL and of ``s4mcontext/s4mc``): for the whole first
  semi-supervised epoch the teacher's parameters *are* the student's (re-aliased at every step), i.e.
  α_k = 0 for k ≤ one epoch of steps, then α_k = min(1 − 1/k, α) — α itself once k ≥ 1/(1 − α)
  (:func:`u2pl_alpha`).
- BYOL (Grill et al. 2020, §3.2): τ_k = 1 − (1 − τ_base)·(cos(πk/K) + 1)/2, from τ_base to 1.

Only parameters are averaged by default; buffers (BatchNorm running statistics) are copied from the
student when ``copy_buffers`` is true, otherwise the teacher keeps its own (as in U2PL / S4MC
``train_semi.py``, Hoyer et al.'s ``train.py`` and the BYOL-seg project; docs/REFERENCES.md).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def warmup_average_alpha(step: int, alpha: float = 0.99) -> float:
    """α_k = min(1 − 1/(k + 1), α) for optimiser step k ≥ 1 (k = 1 gives 0.5: mostly the student)."""
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    return min(1.0 - 1.0 / (step + 1), alpha)


def u2pl_alpha(step: int, hold_steps: int, alpha: float = 0.99) -> float:
    """U2PL's decay: 0 for steps k ≤ ``hold_steps`` (teacher = student), then min(1 − 1/k, α).

    U2PL's ``train_semi.py`` (inherited unchanged by S4MC's ``s4mcontext/s4mc``) sets
    ``t_params.data = s_params.data`` at every step of epoch ``sup_only_epoch`` — the first
    semi-supervised epoch — and afterwards uses ``min(1 − 1/(i_iter − L·sup_only_epoch + 1), α)``,
    i.e. min(1 − 1/k, α) with k the 1-based optimiser step counted from the end of the warm-up and
    L the steps per epoch. With ``hold_steps`` = L this reproduces it exactly (parameters only;
    U2PL never copies buffers).

    Args:
        step: k ≥ 1, optimiser steps since the end of the supervised-only warm-up.
        hold_steps: steps (≥ 0) during which the teacher follows the student (one epoch in U2PL).
        alpha: target decay in [0, 1].

    Returns:
        α_k in [0, alpha].

    Raises:
        ValueError: step < 1 or hold_steps < 0.
    """
    if step < 1 or hold_steps < 0:
        raise ValueError(f"u2pl_alpha needs step >= 1 and hold_steps >= 0, got {step}, {hold_steps}")
    if step <= hold_steps:
        return 0.0
    return min(1.0 - 1.0 / step, alpha)


def cosine_tau(step: int, total_steps: int, tau_base: float = 0.996) -> float:
    """BYOL's τ_k = 1 − (1 − τ_base)(cos(πk/K) + 1)/2: τ_base at k = 0, 1 at k = K (clamped after)."""
    if total_steps <= 0:
        raise ValueError(f"total_steps must be positive, got {total_steps}")
    k = min(max(step, 0), total_steps)
    return 1.0 - (1.0 - tau_base) * (math.cos(math.pi * k / total_steps) + 1.0) / 2.0


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, alpha: float,
               copy_buffers: bool = False) -> None:
    """In place: teacher ← α·teacher + (1 − α)·student for every parameter (and buffers if asked).

    Args:
        teacher: the averaged model; same architecture (same parameter names and shapes) as student.
        student: the model being optimised.
        alpha: decay in [0, 1]; 0 copies the student, 1 freezes the teacher.
        copy_buffers: copy the student's floating and integer buffers (e.g. BN running stats).

    Raises:
        ValueError: alpha outside [0, 1], or the two models' parameter names differ.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"EMA alpha must be in [0, 1], got {alpha}")
    t_params = dict(teacher.named_parameters())
    s_params = dict(student.named_parameters())
    if t_params.keys() != s_params.keys():
        missing = sorted(set(s_params) ^ set(t_params))[:5]
        raise ValueError(f"EMA teacher and student differ in parameters, e.g. {missing}")
    t_list = [t_params[k] for k in s_params]
    s_list = [s_params[k].detach() for k in s_params]
    torch._foreach_mul_(t_list, alpha)
    torch._foreach_add_(t_list, s_list, alpha=1.0 - alpha)
    if copy_buffers:
        t_bufs = dict(teacher.named_buffers())
        for name, buf in student.named_buffers():
            t_bufs[name].copy_(buf)


@torch.no_grad()
def copy_weights(teacher: nn.Module, student: nn.Module) -> None:
    """Reset the teacher to the student (parameters and buffers), e.g. at the end of a warm-up."""
    teacher.load_state_dict(student.state_dict())
