"""Feature-pyramid backbones from timm, with weights read from a local file only.

:func:`build_backbone` wraps ``timm.create_model(name, features_only=True, pretrained=False, ...)``
and returns a :class:`Backbone`: an ``nn.Module`` mapping images (B, in_chans, H, W) to a list of
feature maps, finest level first, with their widths in ``.channels`` and their output strides
(reductions w.r.t. the input) in ``.reductions``.

- Output stride 8 or 16 replaces the strides of the last stages by dilation (DeepLab, Chen et al.
  2017, §3.1; timm's ``output_stride``). HRNet and VGG only run at output stride 32.
- Pretrained weights are never downloaded: ``weights`` is a path to a local file (ImageNet, BYOL or
  any earlier leseg run), read with ``torch.load(..., weights_only=True)``.
- Extra input channels (S5: RGB + k suggestion channels, ``model_wrapper.py``) keep the file's RGB
  filters of the first convolution and get Xavier-uniform filters for the k new channels
  (:func:`adapt_input_conv`).
- ``norm="ws_gn"`` swaps every convolution for a weight-standardised one and every BatchNorm for
  GroupNorm(32) (Qiao et al. 2019; :mod:`leseg.models.ws_gn`), keeping the parameter names.

Default feature levels (``out_indices=None``): every timm level at stride ≥ 4, so for the ResNet
family index 0 is layer1 (stride 4, the DeepLabV3+ low-level feature) and index -1 is layer4. HRNet
keeps timm's five levels (strides 2–32) so that index 2 is the stride-8 "incre" feature, 256 channels,
that S5 uses (Magolor/S5 ``model_wrapper.py``).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from leseg.models.ws_gn import convert_to_ws_gn

__all__ = ["Backbone", "adapt_input_conv", "build_backbone", "load_backbone_weights"]

WEIGHTS_KEY = "model.backbone.weights"
# Model-name prefixes whose timm implementation cannot dilate (timm asserts output_stride == 32).
_FIXED_STRIDE_PREFIXES = ("hrnet", "vgg")
_DILATABLE_OUTPUT_STRIDES = (8, 16, 32)
# Models whose multi-resolution fusion needs H and W divisible by their output stride (timm HRNet
# upsamples branches by fixed factors, so other sizes fail inside the network).
_DIVISIBLE_INPUT_PREFIXES = ("hrnet",)
# Prefixes stripped from every key of a weights file (DDP wrappers, method modules, this class).
_STRIP_PREFIXES = ("module.", "backbone.", "encoder.", "body.")
# Nested containers a weights file may hold the state dict under.
_NESTED_KEYS = ("state_dict", "model", "backbone")
# Classification layers of an ImageNet checkpoint: never part of a feature backbone.
_CLASSIFIER_PREFIXES = ("fc.", "head.", "classifier.", "last_linear.")
# timm keyword arguments that only exist for features_only models.
_FEATURE_ONLY_KWARGS = ("feature_location", "feature_cls", "feature_cfg", "flatten_sequential")
_MAX_LISTED_KEYS = 8
NORMS = ("bn", "ws_gn")


def allowed_output_strides(name: str) -> tuple[int, ...]:
    """Output strides :func:`build_backbone` accepts for timm model ``name``.

    Returns:
        ``(32,)`` for HRNet and VGG (no dilated variant in timm), else ``(8, 16, 32)``.
    """
    return (32,) if name.lower().startswith(_FIXED_STRIDE_PREFIXES) else _DILATABLE_OUTPUT_STRIDES


class Backbone(nn.Module):
    """A timm ``features_only`` network returning a list of feature maps, finest level first.

    Args:
        body: the timm feature network (its ``feature_info`` describes every level it returns).
        levels: positions (into the body's output list) of the levels this backbone returns.
        name: timm model name, e.g. ``"resnet50c"``.
        output_stride: 8, 16 or 32, the stride of the deepest level w.r.t. the input.
        in_chans: number of input channels (3 for RGB, 3 + k for S5's suggestion channels).
        size_divisor: H and W must be multiples of this (32 for HRNet, else 1).

    Attributes:
        channels: width of each returned level, e.g. ``[256, 512, 1024, 2048]`` for ResNet-50.
        reductions: stride of each returned level w.r.t. the input, e.g. ``[4, 8, 8, 8]`` at output
            stride 8.
    """

    def __init__(self, body: nn.Module, levels: Sequence[int], name: str, output_stride: int,
                 in_chans: int, size_divisor: int = 1) -> None:
        super().__init__()
        self.body = body
        self.levels = [int(i) for i in levels]
        all_channels = body.feature_info.channels()
        all_reductions = body.feature_info.reduction()
        self.channels: list[int] = [int(all_channels[i]) for i in self.levels]
        self.reductions: list[int] = [int(all_reductions[i]) for i in self.levels]
        self.name = name
        self.output_stride = int(output_stride)
        self.in_chans = int(in_chans)
        self.size_divisor = int(size_divisor)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps of ``x``.

        Args:
            x: (B, in_chans, H, W) float32 images (ImageNet-normalised RGB first).

        Returns:
            One (B, channels[i], ceil(H / reductions[i]), ceil(W / reductions[i])) float tensor per
            level, finest first.

        Raises:
            ValueError: ``x`` is not 4-D, has a channel count other than ``in_chans``, or H, W are
                not multiples of ``size_divisor``.
        """
        if x.ndim != 4 or x.shape[1] != self.in_chans:
            raise ValueError(f"backbone {self.name} expects images (B, {self.in_chans}, H, W), got "
                             f"shape {tuple(x.shape)}")
        if x.shape[-2] % self.size_divisor or x.shape[-1] % self.size_divisor:
            raise ValueError(f"backbone {self.name} needs H and W divisible by {self.size_divisor}, "
                             f"got {tuple(x.shape[-2:])}; crop, pad or use sliding-window "
                             f"inference with such a crop size")
        features = list(self.body(x))
        return [features[i] for i in self.levels]

    def extra_repr(self) -> str:
        """Name, output stride, channels and reductions in ``print(model)``."""
        return (f"name={self.name!r}, output_stride={self.output_stride}, "
                f"channels={self.channels}, reductions={self.reductions}")


def build_backbone(
    name: str,
    *,
    output_stride: int = 32,
    in_chans: int = 3,
    weights: str | None = None,
    out_indices: Sequence[int] | None = None,
    strict: bool = True,
    norm: str = "bn",
    **timm_kwargs: Any,
) -> Backbone:
    """Build a timm feature backbone, optionally with weights from a local file.

    Args:
        name: timm model name: ``resnet18``, ``resnet50``, ``resnet101``, deep-stem ``resnet50c`` /
            ``resnet101c`` (≈ mmseg ResNetV1c), ``resnet50d``, ``hrnet_w18``, ``hrnet_w48``, ...
        output_stride: stride of the deepest level: 8 or 16 (dilated last stages) or 32.
        in_chans: input channels (3, or 3 + k for S5's k suggestion channels).
        weights: path of a local weights file (never downloaded), or None for random init.
        out_indices: timm feature levels to return; None = the default described in the module
            docstring (levels at stride ≥ 4; all five levels for HRNet).
        strict: raise when the file's keys do not match the model (else warn and load what matches).
        norm: ``"bn"`` (timm's BatchNorm network) or ``"ws_gn"`` (weight-standardised convs +
            GroupNorm(32), see :func:`leseg.models.ws_gn.convert_to_ws_gn`). A BatchNorm weights
            file loads into a ``ws_gn`` backbone without its running statistics; a ``ws_gn`` file
            lacks them for a ``bn`` backbone (missing keys).
        **timm_kwargs: passed on to ``timm.create_model`` (e.g. ``feature_location=""`` for the
            native HRNet branches).

    Returns:
        The :class:`Backbone`.

    Raises:
        ValueError: unknown timm model name; output stride not allowed for the model (the message
            names the model and the allowed values); unknown ``norm``; bad weights file content
            (see :func:`load_backbone_weights`).
        FileNotFoundError: ``weights`` names a file that does not exist.
    """
    if not timm.is_model(name):
        raise ValueError(f"model.backbone.name={name!r} is not a timm model name "
                         f"(see timm.list_models())")
    allowed = allowed_output_strides(name)
    if output_stride not in allowed:
        raise ValueError(f"model.backbone.output_stride={output_stride} is not supported for "
                         f"{name}; allowed values: {list(allowed)}")
    if in_chans < 1:
        raise ValueError(f"model.backbone.in_chans must be ≥ 1, got {in_chans}")
    if norm not in NORMS:
        raise ValueError(f"model.backbone.norm={norm!r} is not one of {list(NORMS)}")
    kwargs = dict(timm_kwargs)
    if out_indices is not None:
        kwargs["out_indices"] = tuple(int(i) for i in out_indices)
    if output_stride != 32:
        kwargs["output_stride"] = output_stride
    try:
        body = timm.create_model(name, features_only=True, pretrained=False, in_chans=in_chans,
                                 **kwargs)
    except AssertionError as err:  # timm asserts on unsupported output strides / out_indices
        raise ValueError(f"timm could not build {name} with output_stride={output_stride}, "
                         f"out_indices={out_indices}, {timm_kwargs}: {err!r}") from err
    reductions = body.feature_info.reduction()
    if max(reductions) > output_stride:
        raise ValueError(f"{name} ignored output_stride={output_stride} (feature strides "
                         f"{reductions}); use output_stride=32 for this model")
    if out_indices is not None or name.lower().startswith("hrnet"):
        levels = list(range(len(reductions)))
    else:
        levels = [i for i, r in enumerate(reductions) if r >= 4]
    if norm == "ws_gn":
        convert_to_ws_gn(body)
    divisor = output_stride if name.lower().startswith(_DIVISIBLE_INPUT_PREFIXES) else 1
    backbone = Backbone(body, levels, name=name, output_stride=output_stride, in_chans=in_chans,
                        size_divisor=divisor)
    if weights is not None:
        full_keys = _full_model_keys(name, in_chans, timm_kwargs)
        load_backbone_weights(body, weights, strict=strict, ignore_keys=full_keys)
    return backbone


def _full_model_keys(name: str, in_chans: int, timm_kwargs: Mapping[str, Any]) -> set[str] | None:
    """State-dict keys of the complete (classification) model, built on the meta device.

    Keys of a weights file that belong to the complete model but not to the feature network (its
    classifier, stages after the last requested level, HRNet's unused heads) are dropped silently.
    Returns None if the model cannot be built that way (then only classifier prefixes are dropped).
    """
    kwargs = {k: v for k, v in timm_kwargs.items() if k not in _FEATURE_ONLY_KWARGS}
    try:
        with torch.device("meta"):
            full = timm.create_model(name, pretrained=False, in_chans=in_chans, **kwargs)
    except Exception:  # an optional refinement; fall back to prefix rules
        return None
    return set(full.state_dict().keys())


def adapt_input_conv(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """Widen an RGB first-convolution kernel to ``in_chans`` input channels.

    The RGB filter slices are kept unchanged; the ``in_chans - 3`` new slices are initialised
    Xavier-uniform (Glorot & Bengio 2010) with the fans of the new slice,
    bound = sqrt(6 / (fan_in + fan_out)), fan_in = (in_chans − 3)·kh·kw, fan_out = O·kh·kw — as S5
    does for its suggestion channel (``model_wrapper.py``).

    Args:
        weight: (O, 3, kh, kw) float kernel of the pretrained first convolution.
        in_chans: target number of input channels, ≥ 3.

    Returns:
        (O, in_chans, kh, kw) kernel, same dtype and device as ``weight`` (a copy when in_chans = 3).

    Raises:
        ValueError: ``weight`` is not a 4-D kernel with 3 input channels, or ``in_chans`` < 3.
    """
    if weight.ndim != 4 or weight.shape[1] != 3:
        raise ValueError(f"adapt_input_conv expects an RGB kernel (O, 3, kh, kw), got shape "
                         f"{tuple(weight.shape)}")
    if in_chans < 3:
        raise ValueError(f"adapt_input_conv widens RGB kernels to in_chans ≥ 3, got {in_chans}")
    extra = torch.empty((weight.shape[0], in_chans - 3, *weight.shape[2:]), dtype=weight.dtype,
                        device=weight.device)
    if extra.shape[1] > 0:
        nn.init.xavier_uniform_(extra)
    return torch.cat([weight.detach().clone(), extra], dim=1)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a weights file into a flat state dict with the common wrapper prefixes removed.

    Accepts a raw state dict or one nested under ``"state_dict"``, ``"model"`` or ``"backbone"``;
    strips leading ``module.``, ``backbone.``, ``encoder.`` (and this module's ``body.``) from every
    key, repeatedly (``module.backbone.conv1.weight`` → ``conv1.weight``).

    Raises:
        FileNotFoundError: ``path`` does not exist (the message names it and the config key).
        ValueError: the file cannot be read with ``weights_only=True`` or holds no tensor mapping.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"backbone weights file {path} does not exist; leseg never downloads weights — put a "
            f"local file there or set {WEIGHTS_KEY}=null (random init)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # report which file failed and how it was read
        raise ValueError(f"could not read backbone weights {path} with torch.load(weights_only="
                         f"True) ({WEIGHTS_KEY}): {err}") from err
    while isinstance(obj, Mapping):
        nested = [k for k in _NESTED_KEYS if isinstance(obj.get(k), Mapping)]
        if not nested:
            break
        obj = obj[nested[0]]
    if not isinstance(obj, Mapping) or not obj:
        raise ValueError(f"backbone weights {path} hold no state dict (expected a mapping of "
                         f"parameter names to tensors, optionally under {list(_NESTED_KEYS)})")
    state: dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"backbone weights {path}: entry {key!r} is a {type(value).__name__}, "
                             f"expected a tensor")
        key = str(key)
        stripped = True
        while stripped:
            stripped = False
            for prefix in _STRIP_PREFIXES:
                if key.startswith(prefix):
                    key, stripped = key[len(prefix):], True
        state[key] = value
    return state


def _first_conv_key(model: nn.Module) -> str | None:
    """State-dict key of the weight of the first convolution (the stem), or None."""
    for module_name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return f"{module_name}.weight" if module_name else "weight"
    return None


def _listed(keys: Sequence[str]) -> str:
    keys = sorted(keys)
    more = f" ... (+{len(keys) - _MAX_LISTED_KEYS} more)" if len(keys) > _MAX_LISTED_KEYS else ""
    return ", ".join(keys[:_MAX_LISTED_KEYS]) + more


def load_backbone_weights(model: nn.Module, path: str | Path, *, strict: bool = True,
                          ignore_keys: set[str] | None = None) -> None:
    """Load a local weights file into a timm feature network, in place.

    Keys are normalised by :func:`read_state_dict`. Keys of classification layers (``fc.``,
    ``head.``, ``classifier.``, ``last_linear.``) and, when ``ignore_keys`` is given, keys of the
    complete model that the feature network does not have, are dropped silently. When the file's
    first convolution has 3 input channels and the model's has more, the kernel is widened with
    :func:`adapt_input_conv`.

    Args:
        model: the timm ``features_only`` network (``Backbone.body``).
        path: local weights file.
        strict: raise on missing / unexpected keys; if False, warn and load the matching keys.
        ignore_keys: state-dict keys of the complete classification model (optional).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: unreadable file; a tensor whose shape differs from the model's (always); missing
            or unexpected keys with ``strict=True``. Messages name the file and the first keys.
    """
    path = Path(path).expanduser()
    state = read_state_dict(path)
    expected = model.state_dict()
    ignore = ignore_keys or set()
    state = {k: v for k, v in state.items()
             if k in expected or not (k.startswith(_CLASSIFIER_PREFIXES) or k in ignore)}

    stem = _first_conv_key(model)
    if stem is not None and stem in state and stem in expected:
        src, dst = state[stem], expected[stem]
        if src.ndim == 4 and src.shape[1] == 3 and dst.shape[1] > 3 and \
                src.shape[0] == dst.shape[0] and src.shape[2:] == dst.shape[2:]:
            state[stem] = adapt_input_conv(src, dst.shape[1])

    mismatched = [f"{k}: file {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
                  for k, v in state.items() if k in expected and v.shape != expected[k].shape]
    if mismatched:
        raise ValueError(f"backbone weights {path} ({WEIGHTS_KEY}) do not fit the model: "
                         f"{_listed(mismatched)}")
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        message = (f"backbone weights {path} ({WEIGHTS_KEY}) do not match the model: "
                   f"{len(missing)} missing keys [{_listed(missing)}], {len(unexpected)} unexpected "
                   f"keys [{_listed(unexpected)}]")
        if strict:
            raise ValueError(message + "; set model.backbone.strict=false to load the rest")
        warnings.warn(message, stacklevel=3)
    model.load_state_dict({k: v for k, v in state.items() if k in expected}, strict=False)

