"""Weight-standardised convolutions + GroupNorm backbones (Qiao et al. 2019) and their weights."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from leseg.models.backbones import build_backbone
from leseg.models.ws_gn import (
    WSConv2d,
    convert_to_ws_gn,
    standardize_weight,
    ws_gn_to_bn_state_dict,
)


def test_standardize_weight_hand_computed() -> None:
    # filter 0: entries 1, 3 -> mean 2, variance 1; filter 1: 0, 0 -> mean 0, variance 0
    w = torch.tensor([1.0, 3.0, 0.0, 0.0]).view(2, 2, 1, 1)
    out = standardize_weight(w, eps=1e-5)
    s = 1.0 / math.sqrt(1.0 + 1e-5)
    assert out.view(-1).tolist() == pytest.approx([-s, s, 0.0, 0.0])


def test_ws_conv_standardises_every_filter_and_convolves_with_it() -> None:
    torch.manual_seed(0)
    conv = WSConv2d(4, 6, 3, padding=1, bias=True)
    with torch.no_grad():  # filters far from zero mean / unit variance (variance >> eps)
        conv.weight.mul_(10.0 * torch.arange(1, 7).view(6, 1, 1, 1))
        conv.weight.add_(torch.arange(6).view(6, 1, 1, 1))
    effective = standardize_weight(conv.weight, conv.eps)
    flat = effective.view(6, -1)
    assert torch.allclose(flat.mean(dim=1), torch.zeros(6), atol=1e-6)
    assert torch.allclose(flat.var(dim=1, unbiased=False), torch.ones(6), atol=1e-4)
    x = torch.randn(2, 4, 5, 5)
    expected = F.conv2d(x, effective, conv.bias, padding=1)
    assert torch.allclose(conv(x), expected, atol=1e-5)
    # per-filter affine changes of the raw kernel (a·W + b, a > 0) do not change the output
    before = conv(x)
    with torch.no_grad():
        conv.weight.mul_(3.0).add_(-0.7)
    assert torch.allclose(conv(x), before, atol=1e-4)


def test_ws_conv_gradient_flows_to_raw_weights() -> None:
    conv = WSConv2d(2, 3, 1)
    conv(torch.randn(1, 2, 4, 4)).square().sum().backward()
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0


def test_ws_gn_backbone_has_no_batchnorm_and_keeps_parameter_names() -> None:
    bn = build_backbone("resnet18")
    ws = build_backbone("resnet18", norm="ws_gn")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in ws.modules())
    convs = [m for m in ws.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(isinstance(m, WSConv2d) for m in convs)
    norms = [m for m in ws.modules() if isinstance(m, nn.GroupNorm)]
    assert norms and all(m.num_groups == 32 for m in norms)
    bn_keys = {k for k in bn.state_dict() if not k.endswith(("running_mean", "running_var",
                                                             "num_batches_tracked"))}
    assert set(ws.state_dict()) == bn_keys
    assert ws.channels == bn.channels and ws.reductions == bn.reductions


def test_ws_gn_features_do_not_depend_on_the_batch() -> None:
    torch.manual_seed(0)
    ws = build_backbone("resnet18", norm="ws_gn").train()
    x = torch.randn(3, 3, 64, 64)
    together = ws(x)[-1]
    alone = ws(x[:1])[-1]
    assert torch.allclose(together[:1], alone, atol=1e-4)


def test_conversion_errors_name_the_layer() -> None:
    with pytest.raises(ValueError, match=r"norm.*\['bn', 'ws_gn'\]"):
        build_backbone("resnet18", norm="gn")
    odd = nn.Sequential(nn.Conv2d(3, 12, 3), nn.BatchNorm2d(12))
    with pytest.raises(ValueError, match="1 has 12 channels"):
        convert_to_ws_gn(odd, num_groups=32)

    class SameConv(nn.Conv2d):
        def forward(self, x):  # a conv with its own forward cannot be converted faithfully
            return super().forward(x)

    with pytest.raises(TypeError, match="block.conv of type SameConv"):
        convert_to_ws_gn(_nested(SameConv(3, 4, 1)))


def _nested(conv: nn.Module) -> nn.Module:
    root = nn.Module()
    root.block = nn.Module()
    root.block.conv = conv
    return root


def test_batchnorm_file_initialises_a_ws_gn_backbone(tmp_path: Path) -> None:
    bn = build_backbone("resnet18")
    path = tmp_path / "imagenet_like.pth"
    torch.save(bn.body.state_dict(), path)
    ws = build_backbone("resnet18", norm="ws_gn", weights=str(path))  # strict: no key missing
    assert torch.equal(ws.body.conv1.weight, bn.body.conv1.weight)
    assert torch.equal(ws.body.layer1[0].bn1.weight, bn.body.layer1[0].bn1.weight)


def test_ws_gn_file_needs_conversion_for_a_batchnorm_backbone(tmp_path: Path) -> None:
    ws = build_backbone("resnet18", norm="ws_gn")
    path = tmp_path / "ws_gn.pth"
    torch.save(ws.body.state_dict(), path)
    with pytest.raises(ValueError, match=r"missing keys \[bn1.running_mean"):
        build_backbone("resnet18", weights=str(path))

    converted = ws_gn_to_bn_state_dict(ws.body.state_dict())
    conv_path = tmp_path / "ws_gn_as_bn.pth"
    torch.save(converted, conv_path)
    bn = build_backbone("resnet18", weights=str(conv_path))  # strict: every key matched
    kernel = bn.body.layer2[0].conv1.weight.view(bn.body.layer2[0].conv1.weight.shape[0], -1)
    assert torch.allclose(kernel.mean(dim=1), torch.zeros(kernel.shape[0]), atol=1e-6)
    assert torch.equal(bn.body.bn1.running_var, torch.ones(64))
    with pytest.raises(ValueError, match="not from a WS\\+GN backbone"):
        ws_gn_to_bn_state_dict(converted)
