"""Reading leseg checkpoints: the stored training config and the method rebuilt from it.

Every checkpoint written by ``train.py`` carries the whole resolved training config as plain
containers under ``hyper_parameters.config`` (:func:`leseg.utils.config.to_plain`). Whoever needs
the trained module back — ``eval.py``, the offline stages, the visualisations — goes through
:func:`load_method`: load the file (``weights_only=True``), rebuild the config, instantiate
``config.method`` with Hydra (its ``_target_`` names the LightningModule, so this module imports
no method) and load the weights.

This module sits in ``utils`` (the ground floor): it imports torch, Hydra and OmegaConf only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from omegaconf import DictConfig, OmegaConf

__all__ = ["LoadedMethod", "check_checkpoint_compatible", "load_checkpoint", "load_method",
           "training_config"]


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a leseg checkpoint with ``weights_only=True`` (no code runs while loading).

    Returns:
        The checkpoint dict; ``ckpt["hyper_parameters"]["config"]`` is the training config and
        ``ckpt["state_dict"]`` the weights.

    Raises:
        FileNotFoundError: no file at ``path`` (names it).
        ValueError: the file is not a leseg checkpoint (no stored training config; names it).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ckpt_path: no checkpoint file at {path}")
    ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    hp = (ckpt.get("hyper_parameters") or {}) if isinstance(ckpt, dict) else {}
    if "config" not in hp:
        raise ValueError(
            f"ckpt_path={path} is not a leseg training checkpoint: it has no stored training config "
            "(hyper_parameters.config). Checkpoints written by train.py have one."
        )
    return ckpt


def training_config(ckpt: dict[str, Any] | str | Path) -> DictConfig:
    """The training config stored in a checkpoint (a loaded dict or a path), as a ``DictConfig``.

    Raises:
        FileNotFoundError / ValueError: see :func:`load_checkpoint`.
    """
    if not isinstance(ckpt, dict):
        ckpt = load_checkpoint(ckpt)
    return OmegaConf.create(ckpt["hyper_parameters"]["config"])


class LoadedMethod(NamedTuple):
    """What :func:`load_method` returns: the module with its weights, and the config it was built
    from (the stored training config after overrides; ``config.data`` rebuilds its DataModule)."""

    module: torch.nn.Module
    config: DictConfig


def _apply_overrides(cfg: DictConfig, overrides: Mapping[str, Any] | Sequence[str]) -> None:
    if isinstance(overrides, Mapping):
        items = list(overrides.items())
    else:
        items = []
        for item in overrides:
            key, sep, value = str(item).partition("=")
            if not sep:
                raise ValueError(f"override {item!r}: expected key=value")
            items.append((key, OmegaConf.from_dotlist([f"x={value}"]).x))
    for key, value in items:
        OmegaConf.update(cfg, key, value, merge=False, force_add=True)


def load_method(ckpt: str | Path | dict[str, Any], *,
                overrides: Mapping[str, Any] | Sequence[str] | None = None,
                check: Callable[[DictConfig], None] | None = None,
                device: str | torch.device | None = None,
                eval_mode: bool = True) -> LoadedMethod:
    """Rebuild the trained method (a LightningModule) of a ``train.py`` checkpoint.

    The four steps: load the checkpoint (:func:`load_checkpoint`), rebuild its training config,
    ``hydra.utils.instantiate(config.method)``, ``load_state_dict(ckpt["state_dict"])`` (strict).

    Args:
        ckpt: the checkpoint file, or a checkpoint already read with :func:`load_checkpoint`
            (a caller that needs the stored config first, e.g. to build the DataModule).
        overrides: config values replaced before anything is built, as ``{"method.inference":
            node}`` or ``["data.root=/x"]`` (dotted keys; a value replaces the stored one whole).
        check: called with the (overridden) config before the method is built; raise there to
            refuse a checkpoint of the wrong kind (e.g. another method), naming the file.
        device: move the module there (None: leave it on the CPU).
        eval_mode: put the module in eval mode (``module.eval()``).

    Returns:
        :class:`LoadedMethod` ``(module, config)``.

    Raises:
        FileNotFoundError: no file at ``ckpt`` (names it).
        ValueError: not a leseg checkpoint (names it), a malformed override, or whatever
            ``check`` raises.
        RuntimeError: the stored weights do not fit the rebuilt method (``load_state_dict``).
    """
    import hydra

    source = "the given checkpoint" if isinstance(ckpt, dict) else f"ckpt_path={ckpt}"
    if not isinstance(ckpt, dict):
        ckpt = load_checkpoint(ckpt)
    cfg = training_config(ckpt)
    if overrides:
        _apply_overrides(cfg, overrides)
    if check is not None:
        check(cfg)
    if "method" not in cfg or "_target_" not in (cfg.method or {}):
        raise ValueError(f"{source}: the stored training config has no "
                         "method._target_ to rebuild the method from")
    module = hydra.utils.instantiate(cfg.method)
    module.load_state_dict(ckpt["state_dict"])
    if device is not None:
        module = module.to(device)
    if eval_mode:
        module.eval()
    return LoadedMethod(module, cfg)


def _model_signature(config: dict | DictConfig) -> dict[str, Any]:
    data = config.get("data") or {}
    model = config.get("model") or {}
    backbone = model.get("backbone") or {}
    return {"num_classes": data.get("num_classes"), "data": data.get("name"),
            "model": model.get("name"), "backbone": backbone.get("name"),
            "output_stride": backbone.get("output_stride"), "in_chans": backbone.get("in_chans")}


def check_checkpoint_compatible(ckpt_path: str | Path, cfg: DictConfig | dict) -> None:
    """Refuse a checkpoint built for another number of classes or another backbone.

    Compares the training config stored in the checkpoint with ``cfg`` (the run that wants to
    load it: a resumed or fine-tuned training run): ``data.num_classes``,
    ``model.backbone.name``, its ``output_stride`` and ``in_chans``. Without this check the same
    mistake surfaces as a long list of tensor-size mismatches from ``load_state_dict``.

    Raises:
        ValueError: naming the checkpoint, what it was trained for and what the run expects.
        FileNotFoundError / ValueError: see :func:`load_checkpoint`.
    """
    stored = _model_signature(load_checkpoint(ckpt_path)["hyper_parameters"]["config"])
    wanted = _model_signature(cfg)
    diffs = [k for k in ("num_classes", "backbone", "output_stride", "in_chans")
             if stored[k] is not None and wanted[k] is not None and str(stored[k]) != str(wanted[k])]
    if diffs:
        def describe(sig: dict) -> str:
            return (f"{sig['num_classes']} classes (data={sig['data']}), model={sig['model']} "
                    f"with backbone={sig['backbone']} (output_stride={sig['output_stride']}, "
                    f"in_chans={sig['in_chans']})")

        raise ValueError(f"checkpoint {ckpt_path} does not fit this run ({', '.join(diffs)} "
                         f"differ): it was trained for {describe(stored)}, this run builds "
                         f"{describe(wanted)}")
