"""Speed switches (conf/train.yaml ``speed``): channels_last runs a CPU step; compile is plumbed.

A real ``torch.compile`` on CPU takes far more than 20 s (inductor builds C++ kernels), so only the
flag plumbing is tested here; the GPU benchmark measures what the switches buy.
"""

from __future__ import annotations

import hydra
import pytest
import torch

from leseg.tasks.speed import apply_speed


def _model(make_train_cfg):
    cfg = make_train_cfg()
    return hydra.utils.instantiate(cfg.method), cfg


def test_channels_last_forward_backward_on_cpu(make_train_cfg) -> None:
    model, cfg = _model(make_train_cfg)
    assert cfg.speed.channels_last is False and cfg.speed.compile is False  # defaults: off
    apply_speed(model, {"channels_last": True})
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size != (1, 1)]
    assert convs and all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, cfg.data.num_classes, 32, 32)
    out.mean().backward()
    assert convs[0].weight.grad is not None and torch.isfinite(convs[0].weight.grad).all()


def test_compile_switch_compiles_the_network_in_place(make_train_cfg, monkeypatch) -> None:
    model, _ = _model(make_train_cfg)
    calls = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, **kw: calls.append((self, kw)))
    keys = set(model.state_dict())
    apply_speed(model, {"compile": True, "compile_mode": "max-autotune"})
    assert calls == [(model.net, {"mode": "max-autotune"})]
    assert set(model.state_dict()) == keys  # checkpoints keep their keys
    calls.clear()
    apply_speed(model, {"compile": False})
    assert calls == []
    with pytest.raises(ValueError, match="chanels_last"):
        apply_speed(model, {"chanels_last": True})
