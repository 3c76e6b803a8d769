"""Evaluation-time prediction: whole image, sliding window, multi-scale + flip (TTA).

Semantics follow mmsegmentation (``EncoderDecoder.whole_inference`` / ``slide_inference`` and
``SegTTAModel``):

- whole: one forward pass on the full image; logits resized to the image size if needed.
- slide: windows of ``crop_size`` on a regular grid with step ``stride``; the last window of each
  row / column is moved back to end at the image border; an image smaller than the window is
  padded at the bottom / right with 0 (the mean colour after ImageNet normalisation) and the pad is
  cropped from the result; window logits are summed into a canvas and divided by the per-pixel
  number of windows covering the pixel.
- TTA: for every scale s (image resized bilinearly to round(s·H) × round(s·W)) and, with ``flip``,
  also the horizontally flipped image (its logits flipped back), logits are resized to the output
  size, turned into probabilities by softmax and averaged over all passes.

Everything here works on tensors (no Lightning); ``torch.no_grad()`` / ``torch.inference_mode()``
is the caller's choice and both work.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

__all__ = ["MODES", "Predictor", "slide_inference", "slide_windows", "whole_inference"]

MODES = ("whole", "slide")
Model = Callable[[torch.Tensor], torch.Tensor]


def _pair(value: int | Sequence[int], what: str) -> tuple[int, int]:
    """(h, w) from an int or a 2-sequence of positive ints; ValueError naming ``what`` otherwise."""
    if isinstance(value, int):
        value = (value, value)
    try:
        pair = tuple(int(v) for v in value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{what} must be an int or (h, w) pair of ints, got {value!r}") from err
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"{what} must be an int or (h, w) pair of positive ints, got {value!r}")
    return pair  # type: ignore[return-value]


def _check_images(images: torch.Tensor) -> None:
    if images.ndim != 4:
        raise ValueError(f"images must be (B, C, H, W), got shape {tuple(images.shape)}")


def _check_logits(logits: torch.Tensor, batch: int, num_classes: int | None) -> None:
    if logits.ndim != 4 or logits.shape[0] != batch:
        raise ValueError(f"the model must return logits (B={batch}, K, h, w), got shape "
                         f"{tuple(logits.shape)}")
    if num_classes is not None and logits.shape[1] != num_classes:
        raise ValueError(f"the model returned {logits.shape[1]} channels but num_classes="
                         f"{num_classes}")


def _resize(x: torch.Tensor, size: tuple[int, int], align_corners: bool) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=align_corners)


def whole_inference(model: Model, images: torch.Tensor, *,
                    align_corners: bool = False) -> torch.Tensor:
    """Logits of the whole image in one forward pass.

    Args:
        model: maps (B, C, H, W) images to logits (B, K, h, w).
        images: (B, C, H, W) float32 normalised images.
        align_corners: for the bilinear resize of the logits when (h, w) ≠ (H, W).

    Returns:
        (B, K, H, W) float logits.

    Raises:
        ValueError: images not 4-D, or the model output is not (B, K, h, w).
    """
    _check_images(images)
    logits = model(images)
    _check_logits(logits, images.shape[0], None)
    return _resize(logits, tuple(images.shape[-2:]), align_corners)


def slide_windows(height: int, width: int, crop_size: int | Sequence[int],
                  stride: int | Sequence[int]) -> list[tuple[int, int, int, int]]:
    """Sliding-window grid of mmsegmentation's ``slide_inference``.

    Per axis (image size n, window c, stride s): ``max(n − c + s − 1, 0) // s + 1`` windows starting
    at 0, s, 2s, ...; each ends at ``min(start + c, n)`` and starts at ``max(end − c, 0)``, so the last
    window is clamped to the border. Example: n = 11, c = 4, s = 3 → [0, 4), [3, 7), [6, 10), [7, 11).

    Args:
        height, width: image size in pixels.
        crop_size: window (h, w) or one int for a square window.
        stride: step (h, w) or one int; must not exceed the window (else pixels are skipped).

    Returns:
        Windows ``(y1, y2, x1, x2)`` (half-open pixel ranges), row-major order.

    Raises:
        ValueError: non-positive sizes, or a stride larger than the window.
    """
    crop_h, crop_w = _pair(crop_size, "crop_size")
    stride_h, stride_w = _pair(stride, "stride")
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    if stride_h > crop_h or stride_w > crop_w:
        raise ValueError(f"stride {(stride_h, stride_w)} is larger than crop_size "
                         f"{(crop_h, crop_w)}: pixels between windows would get no prediction")

    def starts(size: int, crop: int, step: int) -> list[tuple[int, int]]:
        count = max(size - crop + step - 1, 0) // step + 1
        spans = []
        for i in range(count):
            end = min(i * step + crop, size)
            spans.append((max(end - crop, 0), end))
        return spans

    return [(y1, y2, x1, x2) for y1, y2 in starts(height, crop_h, stride_h)
            for x1, x2 in starts(width, crop_w, stride_w)]


def slide_inference(model: Model, images: torch.Tensor, *, num_classes: int | None = None,
                    crop_size: int | Sequence[int], stride: int | Sequence[int],
                    windows_per_batch: int = 8, align_corners: bool = False) -> torch.Tensor:
    """Sliding-window logits (mmsegmentation semantics, see the module docstring).

    Windows are batched: up to ``windows_per_batch`` windows of all B images go through the model
    in one forward pass of batch size ``windows · B``.

    Args:
        model: maps (N, C, crop_h, crop_w) to logits (N, K, h, w) (resized to the crop if smaller).
        images: (B, C, H, W) float32 normalised images, any size (padded when smaller than the crop).
        num_classes: K, checked against the model output (None: taken from it).
        crop_size: window (h, w) or one int.
        stride: step (h, w) or one int, at most the window (U2PL Cityscapes: crop 769, stride 513).
        windows_per_batch: windows per forward pass (≥ 1); trades memory for speed.
        align_corners: for resizing window logits to the crop size.

    Returns:
        (B, K, H, W) float32 logits (float64 if the model returns float64).

    Raises:
        ValueError: bad sizes (see :func:`slide_windows`), images not 4-D, model output of the
            wrong shape or channel count.
    """
    _check_images(images)
    crop_h, crop_w = _pair(crop_size, "crop_size")
    if windows_per_batch < 1:
        raise ValueError(f"windows_per_batch must be ≥ 1, got {windows_per_batch}")
    batch, _, height, width = images.shape
    pad_h, pad_w = max(crop_h - height, 0), max(crop_w - width, 0)
    if pad_h or pad_w:
        images = F.pad(images, (0, pad_w, 0, pad_h), value=0.0)
    padded_h, padded_w = images.shape[-2:]
    windows = slide_windows(padded_h, padded_w, (crop_h, crop_w), stride)

    canvas: torch.Tensor | None = None
    count = torch.zeros((1, 1, padded_h, padded_w), dtype=torch.float32, device=images.device)
    for first in range(0, len(windows), windows_per_batch):
        chunk = windows[first:first + windows_per_batch]
        crops = torch.cat([images[:, :, y1:y2, x1:x2] for y1, y2, x1, x2 in chunk], dim=0)
        logits = model(crops)
        _check_logits(logits, crops.shape[0], num_classes)
        logits = _resize(logits, (crop_h, crop_w), align_corners)
        if canvas is None:
            dtype = torch.promote_types(logits.dtype, torch.float32)
            canvas = images.new_zeros((batch, logits.shape[1], padded_h, padded_w), dtype=dtype)
        for j, (y1, y2, x1, x2) in enumerate(chunk):
            canvas[:, :, y1:y2, x1:x2] += logits[j * batch:(j + 1) * batch]
            count[:, :, y1:y2, x1:x2] += 1
    assert canvas is not None  # at least one window always exists
    if bool((count == 0).any()):
        raise RuntimeError("sliding-window inference left pixels without a window (bug)")
    logits = canvas / count.to(canvas.dtype)
    return logits[:, :, :height, :width]


class Predictor:
    """Class probabilities with a configured protocol: whole/slide × scales × optional flip.

    Args:
        mode: ``"whole"`` or ``"slide"``.
        crop_size: window (h, w) or one int; required for ``"slide"``, ignored for ``"whole"``.
        stride: window step (h, w) or one int; required for ``"slide"``.
        scales: image scale factors (1.0 = as given); mmseg's ms TTA uses 0.5–1.75.
        flip: also run the horizontally flipped image (its output flipped back).
        align_corners: for every bilinear resize of images and logits.
        windows_per_batch: windows per forward pass in slide mode.

    ``predictor(model, images, out_size=None)``: images (B, C, H, W) float32 → probabilities
    (B, K, H', W') float32 in [0, 1] summing to 1 over K, (H', W') = ``out_size`` or (H, W); the
    mean of ``softmax(resize(logits, out_size))`` over all ``len(scales) · (1 + flip)`` passes.

    Raises:
        ValueError: unknown mode (names the allowed ones), missing or bad crop_size / stride for
            slide mode, empty or non-positive scales.
    """

    def __init__(self, mode: str = "whole", crop_size: int | Sequence[int] | None = None,
                 stride: int | Sequence[int] | None = None, scales: Sequence[float] = (1.0,),
                 flip: bool = False, align_corners: bool = False,
                 windows_per_batch: int = 8) -> None:
        if mode not in MODES:
            raise ValueError(f"inference.mode={mode!r} is not one of {list(MODES)}")
        self.mode = mode
        self.crop_size: tuple[int, int] | None = None
        self.stride: tuple[int, int] | None = None
        if mode == "slide":
            if crop_size is None or stride is None:
                raise ValueError(f"inference.mode=slide needs inference.crop_size and "
                                 f"inference.stride, got crop_size={crop_size}, stride={stride}")
            self.crop_size = _pair(crop_size, "inference.crop_size")
            self.stride = _pair(stride, "inference.stride")
            slide_windows(1, 1, self.crop_size, self.stride)  # validates stride ≤ crop
        self.scales = tuple(float(s) for s in scales)
        if not self.scales or min(self.scales) <= 0:
            raise ValueError(f"inference.tta.scales must be a non-empty list of positive factors, "
                             f"got {list(scales)}")
        self.flip = bool(flip)
        self.align_corners = bool(align_corners)
        if windows_per_batch < 1:
            raise ValueError(f"windows_per_batch must be ≥ 1, got {windows_per_batch}")
        self.windows_per_batch = int(windows_per_batch)

    def logits(self, model: Model, images: torch.Tensor) -> torch.Tensor:
        """One pass of the configured mode: (B, C, H, W) → logits (B, K, H, W)."""
        if self.mode == "slide":
            return slide_inference(model, images, num_classes=getattr(model, "num_classes", None),
                                   crop_size=self.crop_size, stride=self.stride,
                                   windows_per_batch=self.windows_per_batch,
                                   align_corners=self.align_corners)
        return whole_inference(model, images, align_corners=self.align_corners)

    def __call__(self, model: Model, images: torch.Tensor,
                 out_size: Sequence[int] | None = None) -> torch.Tensor:
        """Probabilities (B, K, H', W') averaged over scales and flips (see the class docstring)."""
        _check_images(images)
        height, width = images.shape[-2:]
        size = (height, width) if out_size is None else _pair(out_size, "out_size")
        total: torch.Tensor | None = None
        passes = 0
        for scale in self.scales:
            scaled_size = (max(1, int(height * scale + 0.5)), max(1, int(width * scale + 0.5)))
            scaled = _resize(images, scaled_size, self.align_corners)
            for flipped in (False, True) if self.flip else (False,):
                view = scaled.flip(-1) if flipped else scaled
                logits = self.logits(model, view)
                if flipped:
                    logits = logits.flip(-1)
                logits = _resize(logits, size, self.align_corners)
                probs = logits.float().softmax(dim=1)
                total = probs if total is None else total + probs
                passes += 1
        assert total is not None
        return total / passes

    def __repr__(self) -> str:
        return (f"Predictor(mode={self.mode!r}, crop_size={self.crop_size}, stride={self.stride}, "
                f"scales={self.scales}, flip={self.flip}, align_corners={self.align_corners})")
