"""The two augmented views of one unlabelled image that BYOL compares.

Two pipelines, selected by name in ``data.views.pipeline``:

``byol`` (default) — Grill et al., "Bootstrap Your Own Latent", NeurIPS 2020, Appendix B, Table 6.
Each view independently: random resized crop (area scale 0.08–1, aspect 3/4–4/3, bicubic) to
``size``, horizontal flip p 0.5, colour jitter (brightness 0.4, contrast 0.4, saturation 0.2,
hue 0.1, applied in random order) with p 0.8, grayscale p 0.2, Gaussian blur (σ uniform in
[0.1, 2.0] px, kernel ≈ 10 % of the view size) with p 1.0 for view 1 and 0.1 for view 2,
solarisation (threshold 128 of 255) with p 0.0 for view 1 and 0.2 for view 2. The paper's
asymmetry between the views is in blur and solarisation only.

``reference`` — the reference project's pipeline as coded (``augmentations.py``): one random
``crop_size`` crop c of the image (zero-padded if the image is smaller), then view 1 = jitter
(0.4, 0.4, 0.4, 0.1) with p 0.8 → grayscale p 0.2 (no spatial change), view 2 = independently
sampled jitter/grayscale → random resized crop of c back to ``crop_size`` (scale 0.3–1.0) →
horizontal flip p 0.5. No blur, no solarisation.

Both return normalised float32 tensors (ImageNet mean/std by default; the reference project used no
normalisation, reproduce it with ``mean=(0, 0, 0), std=(1, 1, 1)``). Randomness comes from torch's
global generator (torchvision transforms), which DataLoader workers seed per worker, so runs are
reproducible under ``seed_everything`` and workers never repeat each other's augmentations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torchvision.transforms.v2 as T
from torchvision.transforms import InterpolationMode

from leseg.data.transforms import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["PIPELINES", "TwoViews", "build_views", "byol_views", "reference_views"]

_JITTER_KEYS = ("brightness", "contrast", "saturation", "hue")


def _size(value: int | Sequence[int], key: str) -> tuple[int, int]:
    """(h, w) from an int or a pair of positive ints."""
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        value = (int(value), int(value))
    try:
        h, w = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"views: {key} must be an int or a pair (h, w) of ints, got "
                         f"{value!r}") from None
    if h < 1 or w < 1 or (h, w) != tuple(value):
        raise ValueError(f"views: {key} must be positive integers (h, w), got {value!r}")
    return h, w


def _prob(value: float, key: str) -> float:
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"views: {key} must be a probability in [0, 1], got {value!r}")
    return float(value)


def _pair_of_probs(value: float | Sequence[float], key: str) -> tuple[float, float]:
    """(p for view 1, p for view 2) from one probability or a pair."""
    if isinstance(value, int | float):
        value = (value, value)
    items = tuple(value)
    if len(items) != 2:
        raise ValueError(f"views: {key} must be one probability or a pair (view 1, view 2), got "
                         f"{value!r}")
    return _prob(items[0], key), _prob(items[1], key)


def _range(value: Sequence[float], key: str, low: float = 0.0) -> tuple[float, float]:
    items = tuple(float(v) for v in value)
    if len(items) != 2 or not low <= items[0] <= items[1]:
        raise ValueError(f"views: {key} must be a pair (lo, hi) with {low} <= lo <= hi, got "
                         f"{value!r}")
    return items


def _jitter(color_jitter: Mapping[str, float] | Sequence[float], p: float) -> T.Transform:
    """Colour jitter (brightness, contrast, saturation, hue) in random order, applied with p."""
    if isinstance(color_jitter, Mapping):
        unknown = sorted(set(color_jitter) - set(_JITTER_KEYS))
        if unknown:
            raise ValueError(f"views: color_jitter has unknown key(s) {unknown}; allowed "
                             f"{list(_JITTER_KEYS)}")
        strengths = [float(color_jitter.get(k, 0.0)) for k in _JITTER_KEYS]
    else:
        strengths = [float(v) for v in color_jitter]
        if len(strengths) != 4:
            raise ValueError(f"views: color_jitter must be (brightness, contrast, saturation, "
                             f"hue), got {color_jitter!r}")
    if any(s < 0 for s in strengths) or strengths[3] > 0.5:
        raise ValueError(f"views: color_jitter strengths must be >= 0 (hue <= 0.5), got "
                         f"{strengths}")
    return T.RandomApply([T.ColorJitter(*strengths)], p=_prob(p, "jitter_p"))


class TwoViews:
    """Callable turning one (H, W, 3) uint8 RGB image into two augmented, normalised views.

    Args:
        view1, view2: transforms on a (3, h, w) uint8 tensor returning a uint8 tensor.
        shared: transform applied once before both views (e.g. the reference's crop), or None.
        mean, std: per-channel normalisation of the [0, 1] image.
        name: pipeline name (for ``repr`` and logs).

    Call: ``views(image)`` with image (H, W, 3) uint8 numpy or (3, H, W) uint8 tensor →
    ``(v1, v2)``, each (3, h, w) float32, ``(x / 255 − mean) / std``.

    Raises:
        ValueError (on call): an image that is not (H, W, 3) / (3, H, W) uint8.
    """

    def __init__(self, view1: Callable[[torch.Tensor], torch.Tensor],
                 view2: Callable[[torch.Tensor], torch.Tensor],
                 shared: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                 name: str = "custom") -> None:
        if len(mean) != 3 or len(std) != 3 or any(float(s) <= 0 for s in std):
            raise ValueError(f"views: mean and std must have 3 entries, std > 0; got mean={mean}, "
                             f"std={std}")
        self.view1, self.view2, self.shared, self.name = view1, view2, shared, name
        self.finish = T.Compose([T.ToDtype(torch.float32, scale=True),
                                 T.Normalize([float(m) for m in mean], [float(s) for s in std])])

    @staticmethod
    def to_tensor(image: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(H, W, 3) uint8 array or (3, H, W) uint8 tensor → (3, H, W) uint8 tensor."""
        if isinstance(image, np.ndarray):
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise ValueError(f"views expect an (H, W, 3) uint8 RGB image, got shape "
                                 f"{image.shape} dtype {image.dtype}")
            return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
        if image.ndim != 3 or image.shape[0] != 3 or image.dtype != torch.uint8:
            raise ValueError(f"views expect a (3, H, W) uint8 tensor, got shape "
                             f"{tuple(image.shape)} dtype {image.dtype}")
        return image

    def __call__(self, image: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Two independently augmented views (3, h, w) float32 of ``image``."""
        x = self.to_tensor(image)
        if self.shared is not None:
            x = self.shared(x)
        return self.finish(self.view1(x)), self.finish(self.view2(x))

    def __repr__(self) -> str:
        return f"TwoViews({self.name!r}, view1={self.view1}, view2={self.view2})"


def byol_views(size: int | Sequence[int] = 224, *, scale: Sequence[float] = (0.08, 1.0),
               ratio: Sequence[float] = (3 / 4, 4 / 3), hflip: float = 0.5,
               color_jitter: Mapping[str, float] | Sequence[float] = (0.4, 0.4, 0.2, 0.1),
               jitter_p: float = 0.8, grayscale_p: float = 0.2,
               blur_p: float | Sequence[float] = (1.0, 0.1),
               blur_sigma: Sequence[float] = (0.1, 2.0), blur_kernel: int | None = None,
               solarize_p: float | Sequence[float] = (0.0, 0.2),
               mean: Sequence[float] = IMAGENET_MEAN,
               std: Sequence[float] = IMAGENET_STD) -> TwoViews:
    """The BYOL paper's asymmetric view pair (see the module docstring for the source).

    Args:
        size: output (h, w) of each view in pixels (224 in the paper).
        scale: area fraction range of the random resized crop.
        ratio: aspect-ratio (w/h) range of the crop *as seen in the output*: for a non-square
            ``size`` the crop's own ratio range is multiplied by w/h so crops are not stretched
            beyond 3/4–4/3.
        hflip: horizontal flip probability.
        color_jitter: (brightness, contrast, saturation, hue) strengths or a mapping with those
            keys (torchvision semantics: factor uniform in [1 − s, 1 + s], hue shift in [−h, h]).
        jitter_p, grayscale_p: probabilities of colour jitter and grayscale.
        blur_p: Gaussian-blur probability for (view 1, view 2), or one value for both.
        blur_sigma: σ range in pixels.
        blur_kernel: odd kernel size; None = the odd number nearest 10 % of min(h, w) (23 at 224).
        solarize_p: solarisation probability for (view 1, view 2), or one value for both.
        mean, std: normalisation.

    Returns:
        :class:`TwoViews` producing two (3, h, w) float32 views.

    Raises:
        ValueError: malformed sizes, probabilities or ranges (the message names the key).
    """
    h, w = _size(size, "size")
    lo, hi = _range(ratio, "ratio", low=1e-6)
    scale = _range(scale, "scale", low=0.0)
    if scale[1] > 1.0 or scale[0] <= 0:
        raise ValueError(f"views: scale must lie in (0, 1], got {scale}")
    kernel = blur_kernel if blur_kernel is not None else max(3, 2 * round(0.05 * min(h, w)) + 1)
    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"views: blur_kernel must be a positive odd integer, got {kernel}")
    sigma = _range(blur_sigma, "blur_sigma", low=1e-6)
    blur = _pair_of_probs(blur_p, "blur_p")
    solarize = _pair_of_probs(solarize_p, "solarize_p")

    def one_view(i: int) -> T.Compose:
        return T.Compose([
            T.RandomResizedCrop((h, w), scale=scale, ratio=(lo * w / h, hi * w / h),
                                interpolation=InterpolationMode.BICUBIC, antialias=True),
            T.RandomHorizontalFlip(_prob(hflip, "hflip")),
            _jitter(color_jitter, jitter_p),
            T.RandomGrayscale(_prob(grayscale_p, "grayscale_p")),
            T.RandomApply([T.GaussianBlur(kernel, sigma=sigma)], p=blur[i]),
            T.RandomSolarize(threshold=128, p=solarize[i]),
        ])

    return TwoViews(one_view(0), one_view(1), mean=mean, std=std, name="byol")


def reference_views(crop_size: int | Sequence[int] = 512, *,
                    color_jitter: Mapping[str, float] | Sequence[float] = (0.4, 0.4, 0.4, 0.1),
                    jitter_p: float = 0.8, grayscale_p: float = 0.2,
                    resized_crop_scale: Sequence[float] = (0.3, 1.0), hflip: float = 0.5,
                    mean: Sequence[float] = IMAGENET_MEAN,
                    std: Sequence[float] = IMAGENET_STD) -> TwoViews:
    """The reference project's view pair (see the module docstring; BYOL-seg in docs/REFERENCES.md).

    Args:
        crop_size: (h, w) of the shared random crop and of both views (512 in the reference).
        color_jitter: (brightness, contrast, saturation, hue) strengths.
        jitter_p, grayscale_p: probabilities of colour jitter and grayscale (both views).
        resized_crop_scale: area range of view 2's random resized crop of the shared crop.
        hflip: view 2's horizontal flip probability.
        mean, std: normalisation.

    Returns:
        :class:`TwoViews` producing two (3, h, w) float32 views.

    Raises:
        ValueError: malformed sizes, probabilities or ranges (the message names the key).
    """
    h, w = _size(crop_size, "crop_size")
    scale = _range(resized_crop_scale, "resized_crop_scale", low=0.0)
    if scale[1] > 1.0 or scale[0] <= 0:
        raise ValueError(f"views: resized_crop_scale must lie in (0, 1], got {scale}")
    shared = T.RandomCrop((h, w), pad_if_needed=True, fill=0)
    view1 = T.Compose([_jitter(color_jitter, jitter_p),
                       T.RandomGrayscale(_prob(grayscale_p, "grayscale_p"))])
    view2 = T.Compose([_jitter(color_jitter, jitter_p),
                       T.RandomGrayscale(_prob(grayscale_p, "grayscale_p")),
                       T.RandomResizedCrop((h, w), scale=scale,
                                           ratio=(3 / 4 * w / h, 4 / 3 * w / h), antialias=True),
                       T.RandomHorizontalFlip(_prob(hflip, "hflip"))])
    return TwoViews(view1, view2, shared=shared, mean=mean, std=std, name="reference")


PIPELINES: dict[str, Callable[..., TwoViews]] = {"byol": byol_views, "reference": reference_views}
"""View pipelines by name (``data.views.pipeline``)."""


def build_views(pipeline: str = "byol", mean: Sequence[float] = IMAGENET_MEAN,
                std: Sequence[float] = IMAGENET_STD, **kwargs: Any) -> TwoViews:
    """Build a named view pipeline from config keys.

    Args:
        pipeline: ``"byol"`` (:func:`byol_views`) or ``"reference"`` (:func:`reference_views`).
        mean, std: normalisation (usually the DataModule's).
        **kwargs: keyword arguments of the chosen builder.

    Raises:
        ValueError: unknown pipeline name (lists the known ones) or malformed values.
        TypeError: a keyword the chosen builder does not take (names it and the pipeline).
    """
    if pipeline not in PIPELINES:
        raise ValueError(f"data.views.pipeline={pipeline!r} is not one of {sorted(PIPELINES)}")
    builder = PIPELINES[pipeline]
    try:
        return builder(mean=mean, std=std, **kwargs)
    except TypeError as err:
        raise TypeError(f"data.views ({pipeline!r} pipeline): {err}") from err

