"""LR schedules and parameter groups against hand-computed values."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from leseg.methods.optim import (
    build_optimizer,
    build_scheduler,
    lightning_optimizers,
    lr_factor,
    param_groups,
)


def test_poly_factor_matches_formula() -> None:
    # lr_k = lr_0 (1 - k/K)^0.9: K = 100, k = 50 -> 0.5^0.9 = 0.535886731...
    assert lr_factor(0, 100) == 1.0
    assert lr_factor(50, 100) == pytest.approx(0.5**0.9)
    assert lr_factor(100, 100) == 0.0
    assert lr_factor(150, 100) == 0.0  # clamped past the end


def test_warmup_and_floor_and_step() -> None:
    assert lr_factor(5, 100, warmup_iters=10, warmup_ratio=0.0) == pytest.approx(0.5 * (0.95**0.9))
    assert lr_factor(99, 100, min_lr_ratio=0.1) == 0.1
    assert lr_factor(35, 40, name="step", milestones=(30,), gamma=0.1) == pytest.approx(0.1)
    assert lr_factor(50, 100, name="cosine") == pytest.approx(0.5)
    with pytest.raises(ValueError, match="scheduler.name"):
        lr_factor(1, 10, name="bogus")


def test_head_gets_multiplied_lr_and_scheduler_steps_per_iteration() -> None:
    net = nn.Sequential()
    net.backbone = nn.Linear(2, 2)
    net.head = nn.Linear(2, 2)
    groups = param_groups(net.backbone, net.parameters(), lr=0.01, head_lr_mult=10)
    assert [g["name"] for g in groups] == ["backbone", "head"]
    assert [g["lr"] for g in groups] == [0.01, pytest.approx(0.1)]
    assert sum(len(g["params"]) for g in groups) == 4  # each parameter exactly once
    opt = build_optimizer(groups, name="sgd", lr=0.01, weight_decay=5e-4)
    assert opt.param_groups[0]["weight_decay"] == 5e-4 and opt.param_groups[0]["momentum"] == 0.9
    sched = build_scheduler(opt, total_steps=10, name="poly", power=1.0)
    for _ in range(5):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.005)
    assert opt.param_groups[1]["lr"] == pytest.approx(0.05)


def test_unknown_optimizer_is_named() -> None:
    with pytest.raises(ValueError, match="optimizer.name='lamb'"):
        build_optimizer([{"params": [torch.zeros(1, requires_grad=True)], "lr": 1.0}], name="lamb")


def test_lightning_optimizers_count_steps_or_epochs() -> None:
    trainer = type("T", (), {"max_epochs": 10, "estimated_stepping_batches": 100})()

    def lr_after(n: int, **sched) -> tuple[float, str]:
        opt = torch.optim.SGD(nn.Linear(2, 1).parameters(), lr=1.0)
        conf = lightning_optimizers(opt, sched, trainer)
        assert conf["optimizer"] is opt and conf["lr_scheduler"]["frequency"] == 1
        for _ in range(n):
            opt.step()
            conf["lr_scheduler"]["scheduler"].step()
        return opt.param_groups[0]["lr"], conf["lr_scheduler"]["interval"]

    # linear poly: over K = 100 optimiser steps by default, over K = 10 epochs with "epoch"
    assert lr_after(50, name="poly", power=1.0) == (pytest.approx(0.5), "step")
    assert lr_after(5, name="poly", power=1.0, interval="epoch") == (pytest.approx(0.5), "epoch")
    # milestones from a config list; x0.1 at epoch 2
    assert lr_after(2, name="step", milestones=[2], gamma=0.1, interval="epoch")[0] == \
        pytest.approx(0.1)
    with pytest.raises(ValueError, match="method.scheduler.interval"):
        lr_after(0, name="constant", interval="iteration")

