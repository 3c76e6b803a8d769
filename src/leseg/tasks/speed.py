"""The ``speed`` switches of the train config (channels_last, torch.compile)."""

from __future__ import annotations

import torch
from omegaconf import DictConfig

__all__ = ["apply_speed"]


def apply_speed(model: torch.nn.Module, speed: dict | DictConfig | None) -> torch.nn.Module:
    """Apply the ``speed`` switches of the train config to a built method module (in place).

    Args:
        model: the LightningModule; its segmentation network is ``model.net`` when present.
        speed: ``channels_last`` (bool): store conv weights as NHWC (``torch.channels_last``), which
            lets cuDNN use tensor-core kernels under mixed precision; inputs are converted by the
            first convolution. ``compile`` (bool): ``torch.compile`` the network in place
            (``nn.Module.compile``, so state-dict keys and checkpoints are unchanged);
            ``compile_mode``: ``default`` | ``reduce-overhead`` | ``max-autotune``.
            Mixed precision is ``trainer.precision`` (``bf16-mixed``, ``16-mixed``).

    Returns:
        ``model``.

    Raises:
        ValueError: an unknown key in ``speed`` (names it).
    """
    speed = dict(speed or {})
    unknown = set(speed) - {"channels_last", "compile", "compile_mode"}
    if unknown:
        raise ValueError(f"speed: unknown key(s) {sorted(unknown)}; expected channels_last, "
                         "compile, compile_mode")
    if speed.get("channels_last"):
        model.to(memory_format=torch.channels_last)
    if speed.get("compile"):
        target = getattr(model, "net", model)
        target.compile(mode=speed.get("compile_mode") or "default")
    return model
