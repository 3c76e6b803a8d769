"""Widen the first convolution of an already built network to RGB + k input channels.

S5 (Magolor/S5 ``model_wrapper.py``) builds the ImageNet-pretrained RGB network
and *then* replaces its first convolution by one with 4 input channels: the pretrained RGB filters
are kept and the suggestion channel's filter slice is Xavier-uniform initialised.
:func:`leseg.models.backbones.adapt_input_conv` does this for a weights *file* loaded into a
backbone built with ``in_chans = 3 + k``; :func:`widen_input_conv` does it for a network that was
built (and possibly loaded) with 3 channels, so the S5 method can adapt any configured model to
its number of suggestion channels without the config repeating k.
"""

from __future__ import annotations

import torch
from torch import nn

from leseg.models.backbones import adapt_input_conv

__all__ = ["first_conv", "widen_input_conv"]


def first_conv(module: nn.Module) -> tuple[str, nn.Conv2d]:
    """(qualified name, module) of the first ``nn.Conv2d`` in ``module.named_modules()`` order.

    Raises:
        ValueError: the network has no 2-D convolution.
    """
    for name, sub in module.named_modules():
        if isinstance(sub, nn.Conv2d):
            return name, sub
    raise ValueError(f"{type(module).__name__} has no nn.Conv2d to widen")


def widen_input_conv(module: nn.Module, in_chans: int) -> nn.Conv2d:
    """Give the first convolution of ``module`` ``in_chans`` input channels, in place.

    The first 3 (RGB) input slices keep their values; the ``in_chans − 3`` new slices are
    Xavier-uniform (bound sqrt(6 / (fan_in + fan_out)) with the new slice's fans, see
    :func:`~leseg.models.backbones.adapt_input_conv`). A convolution that already has
    ``in_chans`` inputs is left untouched (e.g. a backbone built with ``in_chans = 3 + k`` whose
    weights file was widened at load time). The conv keeps its class (works for weight-standardised
    convs), bias, stride and padding; a ``Backbone`` wrapper's ``in_chans`` attribute is updated.

    Args:
        module: a network (e.g. ``Segmentor.backbone`` or the whole ``Segmentor``).
        in_chans: wanted input channels, ≥ 3.

    Returns:
        The (modified) first convolution; its weight is (O, in_chans, kh, kw).

    Raises:
        ValueError: no convolution; grouped first convolution; the convolution has neither 3 nor
            ``in_chans`` inputs; ``in_chans`` < 3.
    """
    if in_chans < 3:
        raise ValueError(f"widen_input_conv: in_chans must be >= 3 (RGB + suggestions), got "
                         f"{in_chans}")
    name, conv = first_conv(module)
    if conv.in_channels != in_chans:
        if conv.in_channels != 3 or conv.groups != 1:
            raise ValueError(f"widen_input_conv: first convolution {name!r} has "
                             f"{conv.in_channels} input channels (groups={conv.groups}); can only "
                             f"widen an RGB (3-channel, ungrouped) stem to {in_chans}")
        with torch.no_grad():
            widened = adapt_input_conv(conv.weight.data, in_chans)
        conv.weight = nn.Parameter(widened, requires_grad=conv.weight.requires_grad)
        conv.in_channels = in_chans
    for sub in module.modules():
        if hasattr(sub, "in_chans") and isinstance(sub.in_chans, int):
            sub.in_chans = in_chans
    return conv
