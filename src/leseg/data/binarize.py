"""S5's binarisation: per sample, one class of the label map becomes the binary target.

S5's ``get_bi_tgt`` (``transforms_vision.py``): among the 19 Cityscapes classes with more than 100
pixels in the 1024 × 2048 frame, one is chosen uniformly at random and the target is
``label == class``; "object" means a semantic class (all its instances). Differences here, on
purpose:

- the size rule is "at least ``min_pixels`` · (H·W) / (1024·2048)" pixels (scaled with the
  resolution so crops / downscaled frames keep the same relative rule; the reference's fixed
  "> 100" equals ``min_pixels=101`` at full resolution);
- ``ignore_index`` (and any ``exclude_classes``, e.g. VOC background 0) is never chosen; ignored
  pixels are background in the target, as void pixels are in the reference;
- validation / test are deterministic: the class is drawn from a generator seeded with a stable
  hash of the image name (:func:`leseg.utils.seeding.generator_for`), so every evaluation pass sees
  the same target (the reference re-draws at every validation).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from leseg.utils.seeding import generator_for

__all__ = ["BinarizeTarget"]


class BinarizeTarget:
    """Choose one sufficiently large class of a label map; return its binary mask.

    Args:
        min_pixels: minimum class size at ``reference_size`` (S5: 100). At H × W the rule is
            ``count >= max(1, min_pixels · H·W / (ref_H·ref_W))``.
        reference_size: (H, W) at which ``min_pixels`` is stated (Cityscapes 1024 × 2048).
        ignore_index: label value never chosen (255).
        exclude_classes: further labels never chosen (e.g. ``(0,)`` for VOC background).

    Call:
        ``binarize(label, name=None, training=True, generator=None) -> (target, chosen_class)``

        - label: (H, W) integer tensor of trainIds (int64, ``ignore_index`` allowed).
        - name: the image name; required when ``training`` is False (seeds the choice).
        - training: True → draw from ``generator`` (torch's global generator if None);
          False → from ``generator_for(name, "binarize")``, identical on every call.
        - returns target (H, W) bool on ``label.device`` and the chosen class id (int).

    Raises:
        ValueError: bad arguments; a label that is not 2-D integer; ``training=False`` without a
            name; no eligible class (the message names the image and lists the class sizes).
    """

    SALT = "binarize"

    def __init__(self, min_pixels: int = 100, reference_size: Sequence[int] = (1024, 2048),
                 ignore_index: int = 255, exclude_classes: Sequence[int] = ()) -> None:
        if min_pixels < 1:
            raise ValueError(f"BinarizeTarget: min_pixels must be >= 1, got {min_pixels}")
        ref = tuple(int(v) for v in reference_size)
        if len(ref) != 2 or min(ref) < 1:
            raise ValueError(f"BinarizeTarget: reference_size must be (H, W) > 0, got "
                             f"{reference_size!r}")
        self.min_pixels, self.reference_size = int(min_pixels), ref
        self.ignore_index = int(ignore_index)
        self.exclude_classes = tuple(int(c) for c in exclude_classes)

    def threshold(self, height: int, width: int) -> float:
        """Minimum pixel count for a class to be eligible in an H × W label map."""
        scale = height * width / (self.reference_size[0] * self.reference_size[1])
        return max(1.0, self.min_pixels * scale)

    def eligible_classes(self, label: torch.Tensor) -> tuple[list[int], dict[int, int]]:
        """(eligible class ids in increasing order, {class id: pixel count} of all present classes)."""
        classes, counts = torch.unique(label, return_counts=True)
        sizes = {c: n for c, n in zip(classes.tolist(), counts.tolist())
                 if c != self.ignore_index and c not in self.exclude_classes}
        limit = self.threshold(*label.shape)
        return [c for c, n in sizes.items() if n >= limit], sizes

    def __call__(self, label: torch.Tensor, name: str | None = None, training: bool = True,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, int]:
        what = f"image {name!r}" if name is not None else "label"
        if (not isinstance(label, torch.Tensor) or label.ndim != 2
                or label.dtype.is_floating_point or label.dtype == torch.bool):
            got = (f"{label.dtype} {tuple(label.shape)}" if isinstance(label, torch.Tensor)
                   else type(label).__name__)
            raise ValueError(f"BinarizeTarget ({what}): label must be an (H, W) integer tensor, "
                             f"got {got}")
        if not training:
            if name is None:
                raise ValueError("BinarizeTarget: validation/test binarisation (training=False) "
                                 "needs the image name to seed the class choice")
            generator = generator_for(name, self.SALT)
        eligible, sizes = self.eligible_classes(label)
        if not eligible:
            raise ValueError(
                f"BinarizeTarget: {what} has no class with at least "
                f"{self.threshold(*label.shape):.1f} pixels (min_pixels={self.min_pixels} at "
                f"{self.reference_size[0]}x{self.reference_size[1]}, image "
                f"{label.shape[0]}x{label.shape[1]}); class sizes: {sizes}")
        device = generator.device if generator is not None else torch.device("cpu")
        pick = int(torch.randint(len(eligible), (1,), generator=generator, device=device))
        chosen = eligible[pick]
        return label == chosen, chosen

    def __repr__(self) -> str:
        return (f"BinarizeTarget(min_pixels={self.min_pixels}, "
                f"reference_size={self.reference_size}, ignore_index={self.ignore_index}, "
                f"exclude_classes={self.exclude_classes})")
