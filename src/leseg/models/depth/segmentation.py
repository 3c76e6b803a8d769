"""Segmentation network initialised from self-supervised depth: the second of Hoyer et al.'s three ways.

Hoyer et al., "Three Ways to Improve Semantic Segmentation with Self-Supervised Depth Estimation"
(CVPR 2021, §3.2 "Transfer learning"; ``models/joint_segmentation_depth_decoder.py``):

* the encoder is the SDE network's ResNet (:class:`~leseg.models.depth.DepthEncoder`, layer
  numbers 0–4);
* the segmentation decoder is a second copy of the depth decoder's architecture
  (:class:`~leseg.models.depth.DepthDecoder`: ASPP first stage, U-Net stages i = 4 … 0, layer
  numbers 5–9), without the sigmoid disparity heads;
* the segmentation head (:func:`segmentation_head`) reads "layer 9" — the last decoder stage
  (stage i = 0, ``channels[0]`` = 64 channels at the full input resolution) — through a 1×1 conv
  without bias to 64 channels followed directly by a 1×1 conv (with bias) to K logits: nothing in
  between, as in the reference's ``JointSegDepthDecoder`` (``models/joint_segmentation_depth_decoder.py``:
  ``project["seg9"]`` then ``head`` with ``head_inter=False`` and no layer dropout; its optional
  intermediate 3×3 conv + BN + ReLU is off in the main config).

**Transfer** (:func:`transfer_depth_weights`): every entry of the encoder (parameters and BN
buffers) and of the decoder's stage convolutions (``conv0.*``, ``conv1.*``, the ASPP included) is
copied from a trained depth network; the disparity heads and the pose network are not used, the
segmentation head is new (random init). The source is a leseg checkpoint of
:class:`~leseg.methods.depth.SelfSupervisedDepth` (keys ``net.encoder.*``, ``net.decoder.*``) or a
file written by :func:`export_depth_weights` (keys ``encoder.*``, ``decoder.*``)::

    python -m leseg.models.depth.segmentation --ckpt <depth run>/checkpoints/last.ckpt --out depth.pt

Input convention: the segmentation DataModules normalise images with the ImageNet mean/std; the
network undoes that (``input_mean`` / ``input_std``) and hands [0, 1] RGB to the depth encoder,
which applies the monodepth2 normalisation (x − 0.45) / 0.225 the weights were trained with.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from leseg.models.depth.decoder import DepthDecoder
from leseg.models.depth.encoder import DepthEncoder

__all__ = ["DepthDisparity", "DepthSegmentor", "export_depth_weights", "load_depth_state",
           "register_input_normalisation", "segmentation_head", "transfer_depth_weights"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: prefixes of the two parts that transfer, in a leseg depth checkpoint and in an exported file
PARTS = ("encoder", "decoder")


def load_depth_state(path: str | Path) -> dict[str, dict[str, torch.Tensor]]:
    """Read the encoder and decoder state of a depth network from a checkpoint or exported file.

    Args:
        path: a Lightning checkpoint of a ``SelfSupervisedDepth`` run (``state_dict`` with keys
            ``net.encoder.*`` / ``net.decoder.*``) or a file of :func:`export_depth_weights`
            (``{"encoder.<key>": tensor, "decoder.<key>": tensor}``, optionally under
            ``state_dict``).

    Returns:
        ``{"encoder": {key: tensor}, "decoder": {key: tensor}}`` (keys without the prefixes).

    Raises:
        FileNotFoundError: no such file (names it).
        KeyError: the file holds no depth encoder/decoder weights (names the file and a few of
            the keys it has).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model.init_from_depth: depth checkpoint {path} not found (train "
                                f"the depth network first, e.g. experiment=ssdepth_*, or export "
                                f"one with python -m leseg.models.depth.segmentation)")
    obj = torch.load(path, map_location="cpu", weights_only=True)
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else {}
    parts: dict[str, dict[str, torch.Tensor]] = {p: {} for p in PARTS}
    for prefix in ("net.", ""):
        for part in PARTS:
            head = f"{prefix}{part}."
            parts[part] = {k[len(head):]: v for k, v in state.items()
                           if isinstance(k, str) and k.startswith(head)}
        if all(parts.values()):
            return parts
    raise KeyError(f"model.init_from_depth: {path} holds no depth encoder+decoder weights "
                   f"(expected keys net.encoder.* and net.decoder.*, or encoder.* and decoder.*); "
                   f"its keys start like {list(state)[:5]}")


def export_depth_weights(ckpt: str | Path, out: str | Path) -> int:
    """Write the encoder + decoder weights of a depth checkpoint to ``out`` (atomically).

    Returns:
        Number of tensors written. Raises as :func:`load_depth_state`.
    """
    from leseg.utils.io import atomic_write

    parts = load_depth_state(ckpt)
    flat = {f"{part}.{k}": v for part, state in parts.items() for k, v in state.items()}
    with atomic_write(Path(out), "wb") as fh:
        torch.save(flat, fh)
    return len(flat)


def transfer_depth_weights(encoder: nn.Module, decoder: nn.Module, path: str | Path
                           ) -> list[str]:
    """Copy a depth network's encoder and decoder stages into ``encoder`` / ``decoder`` in place.

    Every state entry of ``encoder`` and every ``conv0.*`` / ``conv1.*`` entry of ``decoder`` must
    exist in the file with the same shape; disparity heads (``disp.*``) and pose weights in the
    file are ignored; other entries of ``decoder`` (none for :class:`DepthSegmentor`) are left.

    Args:
        encoder: a :class:`DepthEncoder` (same ResNet and output stride as the depth run).
        decoder: a :class:`DepthDecoder` (same stage widths and ASPP setting).
        path: see :func:`load_depth_state`.

    Returns:
        The transferred keys, as ``encoder.<key>`` / ``decoder.<key>``.

    Raises:
        FileNotFoundError, KeyError: see :func:`load_depth_state`.
        ValueError: a needed key is missing from the file or has another shape (names the file,
            the keys and both shapes, and the settings that must match the depth run).
    """
    source = load_depth_state(path)
    copied: list[str] = []
    problems: list[str] = []
    for part, module in (("encoder", encoder), ("decoder", decoder)):
        own = module.state_dict()
        wanted = {k: v for k, v in own.items()
                  if part == "encoder" or k.startswith(("conv0.", "conv1."))}
        src = source[part]
        for key, value in wanted.items():
            if key not in src:
                problems.append(f"{part}.{key} missing")
            elif tuple(src[key].shape) != tuple(value.shape):
                problems.append(f"{part}.{key} has shape {tuple(src[key].shape)} in the file, "
                                f"{tuple(value.shape)} in the model")
        if problems:
            continue
        own.update({k: src[k].to(own[k].dtype) for k in wanted})
        module.load_state_dict(own, strict=True)
        copied += [f"{part}.{k}" for k in wanted]
    if problems:
        raise ValueError(f"model.init_from_depth: {path} does not fit this network "
                         f"({len(problems)} mismatch(es), e.g. {problems[:3]}); model.encoder, "
                         f"model.output_stride, model.decoder_channels and model.aspp must match "
                         f"the depth run")
    return copied


def register_input_normalisation(module: nn.Module, mean: Sequence[float] | None,
                                 std: Sequence[float] | None) -> None:
    """Register ``input_mean`` / ``input_std`` as non-persistent (1, 3, 1, 1) float32 buffers.

    They hold the DataModule's per-channel image normalisation that the depth networks undo
    before their encoder (which expects [0, 1] RGB); None registers a None buffer (no undoing).
    """
    for name, values in (("input_mean", mean), ("input_std", std)):
        module.register_buffer(name, None if values is None else
                               torch.tensor(list(values), dtype=torch.float32).view(1, 3, 1, 1),
                               persistent=False)


def segmentation_head(in_channels: int, head_channels: int, num_classes: int) -> nn.Sequential:
    """The layer-9 segmentation head: 1×1 conv (no bias) → 1×1 conv (bias) to K logits.

    Two linear maps with nothing between them, as the reference's ``JointSegDepthDecoder``
    (``project["seg9"]`` + ``head`` without the optional 3×3 intermediate conv); it is a rank-≤
    ``head_channels`` linear classifier on the 64-channel features, new (random) at transfer.

    Args:
        in_channels: width of the last decoder stage (``decoder_channels[0]``, 64).
        head_channels: width of the projection (64).
        num_classes: K.

    Forward: (B, in_channels, H, W) float → logits (B, K, H, W).
    """
    return nn.Sequential(nn.Conv2d(int(in_channels), int(head_channels), 1, bias=False),
                         nn.Conv2d(int(head_channels), int(num_classes), 1))


class DepthSegmentor(nn.Module):
    """Depth encoder + depth-architecture segmentation decoder + 1×1 head (module docstring).

    Args:
        num_classes: K.
        encoder: timm ResNet name (paper ``resnet101``; ``resnet18`` for CPU runs).
        output_stride: 16 (paper) or 32.
        encoder_weights: local ImageNet weights for a random-decoder start (None = random);
            ignored for the encoder when ``init_from_depth`` is given (it overwrites them).
        decoder_channels: stage widths [64, 128, 128, 256, 256] (must match the depth run).
        aspp: ASPP first decoder stage (paper: True).
        head_channels: width of the 1×1 layer-9 projection (64).
        input_mean, input_std: the DataModule's image normalisation to undo (ImageNet); None =
            the input is already RGB in [0, 1].
        init_from_depth: depth checkpoint / exported file to transfer from (None = no transfer).
        name: model name for logs and result tables.

    Attributes:
        backbone: the encoder (gets the base LR in :class:`~leseg.methods.base.SegmentationModule`;
            paper: 1e-3 vs 1e-2 for the rest → ``head_lr_mult`` 10).
        decoder, head: segmentation decoder and head. ``transferred``: keys copied at init.

    Forward: images (B, 3, H, W) float32 (normalised like the DataModule) → logits (B, K, H, W).
    H, W must be multiples of 32 (the ResNet's pyramid).
    """

    def __init__(self, num_classes: int, encoder: str = "resnet101", output_stride: int = 16,
                 encoder_weights: str | None = None,
                 decoder_channels: Sequence[int] = (64, 128, 128, 256, 256), aspp: bool = True,
                 head_channels: int = 64,
                 input_mean: Sequence[float] | None = IMAGENET_MEAN,
                 input_std: Sequence[float] | None = IMAGENET_STD,
                 init_from_depth: str | None = None, name: str = "depthseg") -> None:
        super().__init__()
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes, self.name = int(num_classes), name
        self.backbone = DepthEncoder(encoder, output_stride=output_stride,
                                     weights=None if init_from_depth else encoder_weights)
        self.decoder = DepthDecoder(self.backbone.channels, decoder_channels, scales=(),
                                    aspp=aspp)
        c0 = int(decoder_channels[0])
        self.head = segmentation_head(c0, head_channels, self.num_classes)
        if (input_mean is None) != (input_std is None):
            raise ValueError("model.input_mean and model.input_std must both be set or both null")
        register_input_normalisation(self, input_mean, input_std)
        self.transferred: list[str] = []
        if init_from_depth:
            self.transferred = transfer_depth_weights(self.backbone, self.decoder, init_from_depth)

    def to_unit_range(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) DataModule-normalised images → RGB in [0, 1] (identity without mean/std)."""
        if self.input_mean is None:
            return images
        return images * self.input_std.to(images) + self.input_mean.to(images)

    def decode(self, images: torch.Tensor) -> dict[Any, torch.Tensor]:
        """Decoder outputs (``("features", i)`` for stages i = 4..0) of normalised images."""
        return self.decoder(self.backbone(self.to_unit_range(images)),
                            out_size=tuple(images.shape[-2:]))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits (B, K, H, W) float of images (B, 3, H, W)."""
        return self.head(self.decode(images)[("features", 0)])


class DepthDisparity(nn.Module):
    """Frozen depth network (encoder + decoder) giving scale-0 disparities, e.g. for DepthMix.

    Hoyer et al. (CVPR 2021, §3.3) mix with the disparity of the frozen SDE model (pre-computed
    as pseudo-depth in the reference; computed on the fly here, same values).

    Args:
        weights: depth checkpoint / exported file (see :func:`load_depth_state`); the encoder and
            the whole decoder (scale-0 disparity head included) are loaded strictly.
        encoder, output_stride, decoder_channels, aspp: the depth run's architecture.
        input_mean, input_std: normalisation of the images it is given, undone first (ImageNet
            by default); None = images are RGB in [0, 1].

    Forward: (B, 3, H, W) float32 → disparity (B, 1, H, W) in (0, 1) (larger = closer), without
    gradient; the module always stays in eval mode and has no trainable parameters.

    Raises:
        FileNotFoundError / KeyError: see :func:`load_depth_state`. ValueError: the file's
        weights do not fit the architecture (names the file and the first mismatching keys).
    """

    def __init__(self, weights: str, encoder: str = "resnet101", output_stride: int = 16,
                 decoder_channels: Sequence[int] = (64, 128, 128, 256, 256), aspp: bool = True,
                 input_mean: Sequence[float] | None = IMAGENET_MEAN,
                 input_std: Sequence[float] | None = IMAGENET_STD) -> None:
        super().__init__()
        if not weights:
            raise ValueError("method.depth_net.weights is null: DepthMix needs a trained depth "
                             "network (a SelfSupervisedDepth checkpoint, usually the one given "
                             "as model.init_from_depth)")
        self.encoder = DepthEncoder(encoder, output_stride=output_stride)
        self.decoder = DepthDecoder(self.encoder.channels, decoder_channels, scales=(0,),
                                    aspp=aspp)
        state = load_depth_state(weights)
        for part, module in (("encoder", self.encoder), ("decoder", self.decoder)):
            own = module.state_dict()
            src = {k: v for k, v in state[part].items() if k in own or part == "encoder"}
            bad = sorted(set(own) ^ set(src)) + [k for k in own if k in src and
                                                   src[k].shape != own[k].shape]
            if bad:
                raise ValueError(f"method.depth_net: {weights} does not fit the depth network "
                                 f"({part} keys {bad[:3]}); encoder/output_stride/"
                                 f"decoder_channels/aspp must match the depth run")
            module.load_state_dict(src, strict=True)
        self.weights = str(weights)
        self.requires_grad_(False)
        self.eval()
        register_input_normalisation(self, input_mean, input_std)

    def train(self, mode: bool = True) -> DepthDisparity:
        """Stays in eval mode (frozen BatchNorm statistics)."""
        return super().train(False)

    @torch.no_grad()
    def outputs(self, images: torch.Tensor) -> dict[Any, torch.Tensor]:
        """All decoder outputs: ``("disp", 0)`` and ``("features", i)`` for stages i = 4..0."""
        if self.input_mean is not None:
            images = images * self.input_std.to(images) + self.input_mean.to(images)
        return self.decoder(self.encoder(images), out_size=tuple(images.shape[-2:]))

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.outputs(images)[("disp", 0)]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m leseg.models.depth.segmentation --ckpt <depth ckpt> --out <file>``."""
    parser = argparse.ArgumentParser(
        prog="python -m leseg.models.depth.segmentation",
        description="Export the encoder + decoder of a self-supervised depth checkpoint for "
                    "model.init_from_depth=<file>.")
    parser.add_argument("--ckpt", required=True, help="SelfSupervisedDepth Lightning checkpoint")
    parser.add_argument("--out", required=True, help="output file (.pt)")
    args = parser.parse_args(argv)
    try:
        n = export_depth_weights(args.ckpt, args.out)
    except (FileNotFoundError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {n} tensors to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
