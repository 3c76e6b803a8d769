"""Weight Standardisation + Group Normalisation for convolutional backbones.

Qiao et al., "Micro-Batch Training with Batch-Channel Normalization and Weight Standardization"
(arXiv:1903.10520, 2019), §3: every convolution standardises its kernel per output filter before
convolving, Ŵ_o = (W_o − mean(W_o)) / sqrt(var(W_o) + ε), and every BatchNorm is replaced by
GroupNorm (Wu & He, ECCV 2018) with 32 groups. Neither depends on the batch, so training with small
batches (BYOL's target network, fine-tuning with 1–8 images per device) behaves like large batches.

The reference BYOL-for-segmentation project lists "Resnet50_WS_GN" results but ships no code for it
(its old README and ``BYOL_gain.png``); this is our reading of Qiao et al.

:func:`convert_to_ws_gn` swaps the layers of an existing network **in place of** the old ones and
keeps their parameter names, so a WS+GN backbone's state dict has the same keys as the BatchNorm
one minus the BN buffers (``running_mean``, ``running_var``, ``num_batches_tracked``).
:func:`ws_gn_to_bn_state_dict` turns WS+GN weights into weights for the plain BatchNorm network
(the "WS+GN during BYOL only" ablation).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

__all__ = ["DEFAULT_GROUPS", "WS_EPS", "WSConv2d", "convert_to_ws_gn", "is_ws_gn",
           "standardize_weight", "ws_gn_to_bn_state_dict"]

WS_EPS = 1e-5
"""ε added to the per-filter variance (Qiao et al.'s reference code uses 1e-5)."""
DEFAULT_GROUPS = 32
"""GroupNorm groups (Wu & He 2018; Qiao et al. 2019)."""


def standardize_weight(weight: torch.Tensor, eps: float = WS_EPS) -> torch.Tensor:
    """Standardise a convolution kernel per output filter.

    Args:
        weight: (O, I/groups, kh, kw) float kernel.
        eps: added to the variance before the square root (> 0).

    Returns:
        Tensor of the same shape and dtype: (W_o − mean(W_o)) / sqrt(var(W_o) + eps) for each
        output filter o, mean and (biased) variance over its I·kh·kw entries — zero mean and unit
        variance per filter (up to eps). Differentiable with respect to ``weight``.

    Raises:
        ValueError: ``weight`` is not 4-D or ``eps`` is not positive.
    """
    if weight.ndim != 4:
        raise ValueError(f"standardize_weight expects a conv kernel (O, I, kh, kw), got shape "
                         f"{tuple(weight.shape)}")
    if eps <= 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    var, mean = torch.var_mean(weight, dim=(1, 2, 3), keepdim=True, unbiased=False)
    return (weight - mean) / torch.sqrt(var + eps)


class WSConv2d(nn.Conv2d):
    """``nn.Conv2d`` that convolves with :func:`standardize_weight` of its kernel.

    The stored parameter ``weight`` stays unstandardised (so optimisers and EMA updates act on the
    raw weights, as in Qiao et al.); the standardisation is part of the forward pass.

    Args:
        *args, **kwargs: as ``nn.Conv2d``.
        eps: variance ε of the standardisation.

    Forward: (B, in_channels, H, W) float → (B, out_channels, H', W') float.
    """

    def __init__(self, *args, eps: float = WS_EPS, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if eps <= 0:
            raise ValueError(f"WSConv2d eps must be > 0, got {eps}")
        self.eps = float(eps)

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, eps: float = WS_EPS) -> WSConv2d:
        """A WSConv2d with the geometry of ``conv`` that shares its weight and bias parameters."""
        new = cls(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                  padding=conv.padding, dilation=conv.dilation, groups=conv.groups,
                  bias=conv.bias is not None, padding_mode=conv.padding_mode, eps=eps,
                  device="meta")
        new.weight = conv.weight
        new.bias = conv.bias
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self._conv_forward(x, standardize_weight(self.weight, self.eps), self.bias)

    def extra_repr(self) -> str:  # noqa: D102
        return super().extra_repr() + f", eps={self.eps:g}"


def _group_norm_from(bn: nn.BatchNorm2d, num_groups: int, name: str) -> nn.GroupNorm:
    channels = bn.num_features
    if channels % num_groups:
        raise ValueError(f"convert_to_ws_gn: {name} has {channels} channels, not divisible by "
                         f"{num_groups} GroupNorm groups; choose num_groups dividing every width "
                         f"(or use norm=bn for this backbone)")
    gn = nn.GroupNorm(num_groups, channels, eps=bn.eps, affine=bn.affine,
                      device=bn.weight.device if bn.affine else None,
                      dtype=bn.weight.dtype if bn.affine else None)
    if bn.affine:
        gn.weight = bn.weight
        gn.bias = bn.bias
    return gn


def convert_to_ws_gn(model: nn.Module, num_groups: int = DEFAULT_GROUPS,
                     eps: float = WS_EPS) -> nn.Module:
    """Replace every ``nn.Conv2d`` by :class:`WSConv2d` and every ``nn.BatchNorm2d`` by GroupNorm.

    Done in place (module attributes are swapped, so parameter names are unchanged); the conv
    weights and the BN affine parameters (γ, β) are kept, the BN running statistics are dropped.

    Args:
        model: the network (e.g. a timm ``features_only`` ResNet).
        num_groups: GroupNorm groups; must divide the width of every BatchNorm layer.
        eps: WSConv2d variance ε.

    Returns:
        ``model`` itself.

    Raises:
        ValueError: a BatchNorm width not divisible by ``num_groups`` (names the layer).
        TypeError: a subclass of ``nn.Conv2d`` / ``nn.BatchNorm2d`` with its own forward (e.g.
            timm's ``Conv2dSame`` or ``BatchNormAct2d``), which cannot be converted faithfully
            (names the layer and its type).
    """
    if num_groups < 1:
        raise ValueError(f"num_groups must be >= 1, got {num_groups}")
    replacements: list[tuple[nn.Module, str, nn.Module]] = []
    for parent_name, parent in model.named_modules():
        for child_name, child in parent.named_children():
            name = f"{parent_name}.{child_name}" if parent_name else child_name
            if isinstance(child, WSConv2d):
                continue
            if type(child) is nn.Conv2d:
                replacements.append((parent, child_name, WSConv2d.from_conv(child, eps)))
            elif type(child) is nn.BatchNorm2d:
                replacements.append((parent, child_name, _group_norm_from(child, num_groups, name)))
            elif isinstance(child, nn.Conv2d | nn.BatchNorm2d):
                raise TypeError(f"convert_to_ws_gn: cannot convert layer {name} of type "
                                f"{type(child).__name__} (only plain nn.Conv2d / nn.BatchNorm2d)")
    for parent, child_name, new in replacements:
        setattr(parent, child_name, new)
    return model


def ws_gn_to_bn_state_dict(state: Mapping[str, torch.Tensor],
                           eps: float = WS_EPS) -> dict[str, torch.Tensor]:
    """Weights of a WS+GN backbone rewritten for the same backbone with plain convs and BatchNorm.

    Convolution kernels (every 4-D tensor) are replaced by their standardised form — the kernels
    the WS network actually convolved with; every 1-D ``<layer>.weight`` / ``<layer>.bias`` pair
    (the GroupNorm affine parameters) becomes a BatchNorm's γ, β with identity running statistics
    (``running_mean`` 0, ``running_var`` 1, ``num_batches_tracked`` 0), which fine-tuning in train
    mode re-estimates. GroupNorm and BatchNorm normalise over different axes, so the converted
    network is an initialisation, not an equivalent network.

    Args:
        state: flat state dict of a WS+GN backbone (e.g. a BYOL export with ``norm=ws_gn``).
        eps: the WSConv2d ε used in training.

    Returns:
        A new flat state dict (tensors are new or shared with ``state``).

    Raises:
        ValueError: ``state`` already holds BatchNorm buffers (it is not a WS+GN state dict).
    """
    if any(k.endswith(("running_mean", "running_var")) for k in state):
        raise ValueError("ws_gn_to_bn_state_dict: the weights already hold BatchNorm running "
                         "statistics; they are not from a WS+GN backbone")
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        out[key] = standardize_weight(value.float(), eps).to(value.dtype) if value.ndim == 4 \
            else value
    for key, value in state.items():
        if value.ndim == 1 and key.endswith(".weight") and f"{key[:-7]}.bias" in state:
            layer = key[: -len(".weight")]
            out[f"{layer}.running_mean"] = torch.zeros_like(value)
            out[f"{layer}.running_var"] = torch.ones_like(value)
            out[f"{layer}.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
    return out


def is_ws_gn(model: nn.Module) -> bool:
    """True if ``model`` contains a :class:`WSConv2d` (i.e. was converted)."""
    return any(isinstance(m, WSConv2d) for m in model.modules())

