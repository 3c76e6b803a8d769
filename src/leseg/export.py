"""Export a trained backbone from a leseg checkpoint to a plain weights file.

    python -m leseg.export <checkpoint.ckpt> [--out FILE] [--network auto|online|target|net]
                           [--to-norm bn]

The file is a flat state dict of the timm feature network (``conv1.weight``, ``layer1.0.bn1.weight``
...; tensors only, saved with ``torch.save``), which ``model.backbone.weights=<file>`` loads into
any backbone built from the same ``model.backbone`` config with every key matched
(:func:`leseg.models.backbones.load_backbone_weights`, strict). A JSON file next to it
(``<file>.json``) records where the weights came from and the backbone config they fit.

Networks: ``online`` — BYOL's online backbone (what BYOL fine-tunes, Grill et al. 2020 §3.3);
``target`` — BYOL's EMA target backbone; ``net`` — the backbone of a segmentation run (supervised,
S4MC, ...); ``trunk`` — the ResNet trunk of a CAM or AffinityNet run (SSENet's
``TimmCAMTrunk``); ``auto`` — ``online`` if the checkpoint has it, else ``trunk``, else ``net``.

``--to-norm bn`` rewrites weights of a ``norm=ws_gn`` backbone for the plain BatchNorm backbone
(standardised kernels, GroupNorm affine → BatchNorm affine with identity statistics; see
:func:`leseg.models.ws_gn.ws_gn_to_bn_state_dict`): the "WS+GN during BYOL only" ablation.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from leseg.models.ws_gn import ws_gn_to_bn_state_dict
from leseg.utils.io import atomic_write, atomic_write_json

__all__ = ["NETWORK_PREFIXES", "backbone_state_dict", "export_backbone", "main"]

NETWORK_PREFIXES = {
    "online": "online.backbone.body.",
    "target": "target.backbone.body.",
    "net": "net.backbone.body.",
    "trunk": "net.backbone.backbone.body.",
}
"""State-dict prefix of each network's timm feature body inside a Lightning checkpoint."""


def _load(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"export: no checkpoint file at {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # report which file failed and how it was read
        raise ValueError(f"export: could not read {path} with torch.load(weights_only=True): "
                         f"{err}") from err
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise ValueError(f"export: {path} is not a Lightning checkpoint (no 'state_dict' entry)")
    return ckpt


def backbone_state_dict(ckpt: dict[str, Any], network: str = "auto",
                        source: str = "checkpoint") -> tuple[dict[str, torch.Tensor], str]:
    """The timm feature-body weights of one network of a loaded checkpoint.

    Args:
        ckpt: a Lightning checkpoint dict (``state_dict`` inside).
        network: ``auto``, ``online``, ``target``, ``net`` or ``trunk`` (see the module
            docstring).
        source: the checkpoint's name for error messages.

    Returns:
        ``(state, network)``: flat state dict with the prefix removed, and the network used.

    Raises:
        ValueError: unknown network, or the checkpoint has no weights under its prefix (the
            message lists the prefixes the checkpoint does have).
    """
    state = ckpt["state_dict"]
    if network == "auto":
        network = next((n for n in ("online", "trunk") if any(
            k.startswith(NETWORK_PREFIXES[n]) for k in state)), "net")
    if network not in NETWORK_PREFIXES:
        raise ValueError(f"export: network must be auto or one of {sorted(NETWORK_PREFIXES)}, "
                         f"got {network!r}")
    prefix = NETWORK_PREFIXES[network]
    out = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not out:
        tops = sorted({".".join(k.split(".")[:3]) for k in state})[:8]
        raise ValueError(f"export: {source} has no weights under {prefix!r} (network={network}); "
                         f"its state dict starts with {tops}")
    return out, network


def export_backbone(ckpt_path: str | Path, out: str | Path | None = None, network: str = "auto",
                    to_norm: str | None = None) -> Path:
    """Write a checkpoint's backbone as a plain weights file (+ ``<out>.json`` provenance).

    Args:
        ckpt_path: Lightning checkpoint written by ``train.py``.
        out: destination; default ``<run dir>/backbone_<network>.pth`` (the checkpoint's
            ``checkpoints/`` folder's parent).
        network: see :func:`backbone_state_dict`.
        to_norm: None (as trained) or ``"bn"`` (WS+GN weights rewritten for a BatchNorm
            backbone).

    Returns:
        The path written (atomically).

    Raises:
        FileNotFoundError: no checkpoint at ``ckpt_path``.
        ValueError: unreadable checkpoint, missing network, unknown ``to_norm``, or ``to_norm="bn"``
            on weights that are not WS+GN.
    """
    ckpt_path = Path(ckpt_path)
    ckpt = _load(ckpt_path)
    state, network = backbone_state_dict(ckpt, network, str(ckpt_path))
    if to_norm not in (None, "bn"):
        raise ValueError(f"export: to_norm must be None or 'bn', got {to_norm!r}")
    if to_norm == "bn":
        state = ws_gn_to_bn_state_dict(state)
    if out is None:
        run_dir = ckpt_path.parent.parent if ckpt_path.parent.name == "checkpoints" \
            else ckpt_path.parent
        suffix = "_bn" if to_norm == "bn" else ""
        out = run_dir / f"backbone_{network}{suffix}.pth"
    out = Path(out)
    state = {k: v.detach().clone().contiguous() for k, v in state.items()}
    with atomic_write(out, "wb") as f:
        torch.save(state, f)
    config = (ckpt.get("hyper_parameters") or {}).get("config") or {}
    backbone_cfg = dict((config.get("model") or {}).get("backbone") or {})
    backbone_cfg.pop("weights", None)
    if to_norm == "bn":
        backbone_cfg["norm"] = "bn"
    atomic_write_json(Path(f"{out}.json"), {
        "source_checkpoint": str(ckpt_path.resolve()),
        "network": network,
        "to_norm": to_norm,
        "experiment": config.get("experiment_name"),
        "seed": config.get("seed"),
        "global_step": ckpt.get("global_step"),
        "num_tensors": len(state),
        "backbone_config": backbone_cfg,
    })
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; see the module docstring. Prints the written path and the override to use."""
    parser = argparse.ArgumentParser(prog="python -m leseg.export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--network", default="auto", choices=["auto", *NETWORK_PREFIXES])
    parser.add_argument("--to-norm", default=None, choices=["bn"])
    args = parser.parse_args(argv)
    try:
        path = export_backbone(args.checkpoint, args.out, args.network, args.to_norm)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(path)
    print(f"fine-tune from it with: model.backbone.weights={path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
