"""Optimisers and learning-rate schedules built from plain hyper-parameter dicts.

Configs carry the paper's numbers as plain keys (``method.optimizer.lr=0.01``) rather than pickled
``functools.partial`` objects, so every checkpoint loads with ``weights_only=True`` (torch ≥ 2.6).

Poly schedule (DeepLab, Chen et al. 2017, §4.1): ``lr_k = lr_0 · (1 − k/K)^power`` per iteration,
with an optional linear warm-up over the first ``warmup_iters`` iterations and a floor ``min_lr``.
:func:`lightning_optimizers` wraps a schedule for ``configure_optimizers``, counting optimiser
steps or (``interval: epoch``) epochs. AffinityNet / SSENet's four parameter groups (pretrained /
new × weights / biases at ×1 / ×2 / ×10 / ×20) are :func:`four_param_groups`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

OPTIMIZERS = ("sgd", "adamw", "adam")
SCHEDULERS = ("poly", "cosine", "step", "constant")
INTERVALS = ("step", "epoch")


def param_groups(
    backbone: nn.Module | None, rest: Iterable[nn.Parameter], lr: float, head_lr_mult: float = 1.0
) -> list[dict[str, Any]]:
    """Split parameters into a backbone group (``lr``) and a head group (``lr · head_lr_mult``).

    Args:
        backbone: the pretrained trunk (may be None: then everything is one group at ``lr``).
        rest: every other trainable parameter (heads, decoders).
        lr: base learning rate.
        head_lr_mult: multiplier for the new layers (e.g. 10 on VOC in U2PL/S4MC).

    Returns:
        Parameter-group dicts for a ``torch.optim`` optimiser; frozen parameters are left out.
    """
    rest = [p for p in rest if p.requires_grad]
    if backbone is None:
        return [{"params": rest, "lr": lr, "name": "all"}]
    bb = [p for p in backbone.parameters() if p.requires_grad]
    bb_ids = {id(p) for p in bb}
    head = [p for p in rest if id(p) not in bb_ids]
    groups = [{"params": bb, "lr": lr, "name": "backbone"}]
    if head:
        groups.append({"params": head, "lr": lr * head_lr_mult, "name": "head"})
    return groups


def build_optimizer(groups: list[dict[str, Any]], name: str = "sgd", lr: float = 0.01,
                    weight_decay: float = 0.0, momentum: float = 0.9, nesterov: bool = False,
                    betas: tuple[float, float] = (0.9, 0.999), **unused: Any) -> torch.optim.Optimizer:
    """Build ``torch.optim.{SGD,AdamW,Adam}`` over ``groups``.

    ``weight_decay`` is passed by keyword (SSENet's reference passes it positionally into SGD's
    momentum slot; psa ``PolyOptimizer``). Extra keys such as ``head_lr_mult`` are ignored here.

    Raises:
        ValueError: for an unknown optimiser name (the message lists the known ones).
    """
    name = name.lower()
    for g in groups:
        g.setdefault("initial_lr", g["lr"])
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay,
                               nesterov=nesterov)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=tuple(betas), weight_decay=weight_decay)
    raise ValueError(f"method.optimizer.name={name!r} is not one of {OPTIMIZERS}")


def lr_factor(step: int, total_steps: int, name: str = "poly", power: float = 0.9,
              warmup_iters: int = 0, warmup_ratio: float = 1e-6, min_lr_ratio: float = 0.0,
              milestones: tuple[int, ...] = (), gamma: float = 0.1) -> float:
    """Multiplicative LR factor at iteration ``step`` (0-based) of ``total_steps``.

    Args:
        step: current optimiser step k ≥ 0.
        total_steps: K > 0, the number of optimiser steps of the whole run.
        name: ``poly`` ((1 − k/K)^power), ``cosine`` (½(1 + cos(πk/K))), ``step`` (×gamma at each
            milestone) or ``constant``.
        power: poly exponent (0.9 in DeepLab/U2PL/S4MC/AffinityNet).
        warmup_iters: linear warm-up from ``warmup_ratio`` to 1 over this many steps.
        min_lr_ratio: floor as a fraction of the base LR.

    Returns:
        A factor in [min_lr_ratio, 1].
    """
    if total_steps <= 0:
        raise ValueError(f"total_steps must be positive, got {total_steps}")
    k = min(step, total_steps)
    if name == "poly":
        f = (1.0 - k / total_steps) ** power
    elif name == "cosine":
        f = 0.5 * (1.0 + math.cos(math.pi * k / total_steps))
    elif name == "step":
        f = gamma ** sum(k >= m for m in milestones)
    elif name == "constant":
        f = 1.0
    else:
        raise ValueError(f"method.scheduler.name={name!r} is not one of {SCHEDULERS}")
    if warmup_iters > 0 and step < warmup_iters:
        f *= warmup_ratio + (1.0 - warmup_ratio) * step / warmup_iters
    return max(f, min_lr_ratio)


def build_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, name: str = "poly",
                    **kwargs: Any) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-iteration ``LambdaLR`` applying :func:`lr_factor` to every parameter group."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda k: lr_factor(k, total_steps, name=name, **kwargs)
    )


def lightning_optimizers(optimizer: torch.optim.Optimizer, scheduler: Mapping[str, Any],
                         trainer: Any) -> dict[str, Any]:
    """The ``configure_optimizers`` result: ``optimizer`` with a :func:`build_scheduler` schedule.

    Args:
        optimizer: the built optimiser.
        scheduler: plain dict of :func:`build_scheduler` keys plus ``interval``: ``step``
            (default: the schedule counts optimiser steps, its length is
            ``trainer.estimated_stepping_batches``) or ``epoch`` (it counts epochs over
            ``trainer.max_epochs``, e.g. S5's MultiStep at epochs 60/120/150). ``milestones`` (a
            list from the config) become a tuple of ints.
        trainer: the attached Lightning trainer (``estimated_stepping_batches``, ``max_epochs``).

    Returns:
        ``{"optimizer": optimizer, "lr_scheduler": {"scheduler", "interval", "frequency": 1}}``.

    Raises:
        ValueError: ``interval`` is not ``step`` or ``epoch`` (names ``method.scheduler.interval``).
    """
    cfg = dict(scheduler)
    interval = str(cfg.pop("interval", "step"))
    if interval not in INTERVALS:
        raise ValueError(f"method.scheduler.interval must be one of {INTERVALS}, got "
                         f"{interval!r}")
    if "milestones" in cfg:
        cfg["milestones"] = tuple(int(m) for m in cfg["milestones"])
    total = (int(trainer.max_epochs or 1) if interval == "epoch"
             else int(trainer.estimated_stepping_batches))
    sched = build_scheduler(optimizer, max(total, 1), **cfg)
    return {"optimizer": optimizer,
            "lr_scheduler": {"scheduler": sched, "interval": interval, "frequency": 1}}


LR_MULTS = (1.0, 2.0, 10.0, 20.0)


def four_param_groups(model: nn.Module, new_prefixes: Sequence[str], lr: float,
                      weight_decay: float, lr_mults: Sequence[float] = LR_MULTS,
                      ) -> list[dict[str, Any]]:
    """AffinityNet / SSENet parameter groups (psa ``network/resnet38_cls.py``, ``Net.get_parameter_groups``).

    Args:
        model: the network; trainable parameters only (frozen blocks and BN are left out).
        new_prefixes: name prefixes of the randomly initialised layers (e.g. ``("head.",)``).
        lr: base learning rate; weight_decay: applied to weights only.
        lr_mults: multipliers of (pretrained weights, pretrained biases, new weights, new biases).

    Returns:
        Four group dicts (``name`` pretrained_weight / pretrained_bias / new_weight / new_bias,
        ``lr``, ``weight_decay``, ``params``); empty groups are dropped.
    """
    if len(lr_mults) != 4:
        raise ValueError(f"method.optimizer.lr_mults needs 4 values (pretrained w/b, new w/b), "
                         f"got {list(lr_mults)}")
    names = ("pretrained_weight", "pretrained_bias", "new_weight", "new_bias")
    params: list[list[nn.Parameter]] = [[], [], [], []]
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        new = any(name.startswith(prefix) for prefix in new_prefixes)
        bias = name.endswith("bias")
        params[2 * int(new) + int(bias)].append(p)
    return [{"name": n, "params": ps, "lr": lr * m, "initial_lr": lr * m,
             "weight_decay": 0.0 if n.endswith("bias") else weight_decay}
            for n, ps, m in zip(names, params, lr_mults) if ps]


def build_four_group_optimizer(model: nn.Module, new_prefixes: Sequence[str],
                               cfg: dict[str, Any]) -> torch.optim.Optimizer:
    """SGD (or AdamW) over :func:`four_param_groups` from a plain dict ``name, lr, momentum,
    weight_decay, lr_mults``; weight decay is set per group, never passed as momentum."""
    cfg = dict(cfg)
    name = str(cfg.get("name", "sgd")).lower()
    groups = four_param_groups(model, new_prefixes, float(cfg.get("lr", 0.01)),
                               float(cfg.get("weight_decay", 5e-4)),
                               tuple(cfg.get("lr_mults", LR_MULTS)))
    if name == "sgd":
        return torch.optim.SGD(groups, lr=float(cfg.get("lr", 0.01)),
                               momentum=float(cfg.get("momentum", 0.9)))
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=float(cfg.get("lr", 0.01)))
    raise ValueError(f"method.optimizer.name={name!r} is not one of ('sgd', 'adamw')")


def four_group_poly_optimizers(module: Any, new_prefixes: Sequence[str]) -> dict[str, Any]:
    """Lightning ``configure_optimizers`` result shared by SSENetCAM and AffinityNet.

    :func:`build_four_group_optimizer` over ``module.net`` from ``module.hparams.optimizer``
    (default SGD lr 0.01) with ``module.hparams.scheduler`` (default poly 0.9) stepped per
    iteration over the trainer's estimated number of optimiser steps (AffinityNet's
    ``PolyOptimizer``, psa ``tool/torchutils.py``; ``interval: epoch`` counts epochs instead, see
    :func:`lightning_optimizers`).
    """
    optimizer = build_four_group_optimizer(
        module.net, new_prefixes, dict(module.hparams.optimizer or {"name": "sgd", "lr": 0.01}))
    return lightning_optimizers(optimizer, module.hparams.scheduler or {"name": "poly", "power": 0.9},
                                module.trainer)
