"""The suggestion-generator interface, the name registry and channel concatenation.

A *suggestion* (S5, Magolor/S5 ``transforms_vision.py``) is a hint map derived from the binary
target of one chosen class; the segmenter sees RGB + the k suggestion channels and predicts the
class's mask. Every generator maps

    mask (H, W) bool  →  suggestion (k, H, W) float32

on the mask's device, drawing all randomness from the ``torch.Generator`` it is given (so a
generator seeded per image gives the same suggestion at every validation pass).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

__all__ = [
    "SUGGESTIONS",
    "Combined",
    "SuggestionGenerator",
    "build_suggestion",
    "check_mask",
    "register_suggestion",
]


def check_mask(mask: Any, who: str, need_positive: bool = False) -> torch.Tensor:
    """Validate a binary target: a 2-D bool tensor (H, W); optionally with at least one True pixel.

    Raises:
        TypeError: not a bool tensor.
        ValueError: not 2-D, an empty image, or (``need_positive``) no positive pixel.
    """
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        got = mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise TypeError(f"{who}: mask must be a bool tensor (H, W), got {got}")
    if mask.ndim != 2 or mask.numel() == 0:
        raise ValueError(f"{who}: mask must be a non-empty 2-D tensor (H, W), got shape "
                         f"{tuple(mask.shape)}")
    if need_positive and not bool(mask.any()):
        raise ValueError(f"{who}: mask has no positive pixel; this suggestion needs the chosen "
                         f"class to be present (pick it with BinarizeTarget)")
    return mask


def generator_device(generator: torch.Generator | None) -> torch.device:
    """Device random numbers must be drawn on for ``generator`` (CPU for the default generator)."""
    return generator.device if generator is not None else torch.device("cpu")


class SuggestionGenerator:
    """Base class: ``generator(mask, rng, training=True) -> (k, H, W) float32``.

    Subclasses set :attr:`num_channels` (k) and implement :meth:`generate`. ``__call__`` validates
    the mask and checks the output shape.

    Args of ``__call__``:
        mask: (H, W) bool binary target of the chosen class (CPU or CUDA).
        generator: source of all randomness; ``None`` uses torch's global generator. Draws happen
            on ``generator.device``.
        training: False at validation / test: generators drop training-only randomness (the
            extreme-point jitter). Determinism across passes comes from a per-image seeded
            ``generator`` (``leseg.utils.seeding.generator_for``).

    Returns:
        (k, H, W) float32 on ``mask.device``; value ranges are documented per generator.
    """

    num_channels: int = 1
    name: str = "suggestion"

    def generate(self, mask: torch.Tensor, generator: torch.Generator | None,
                 training: bool) -> torch.Tensor:
        """Produce the (k, H, W) float32 suggestion; ``mask`` is already validated."""
        raise NotImplementedError

    def __call__(self, mask: torch.Tensor, generator: torch.Generator | None = None, *,
                 training: bool = True) -> torch.Tensor:
        check_mask(mask, type(self).__name__)
        out = self.generate(mask, generator, training)
        expected = (self.num_channels, *mask.shape)
        if tuple(out.shape) != expected or out.dtype != torch.float32:
            raise RuntimeError(f"{type(self).__name__} returned {tuple(out.shape)} {out.dtype}, "
                               f"expected {expected} float32")
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_channels={self.num_channels})"


class Combined(SuggestionGenerator):
    """Concatenate the channels of several generators (in order); k = Σ kᵢ.

    The generators run one after the other on the same ``torch.Generator``, so the combined output
    is reproducible from one seed.

    Raises:
        ValueError: empty list. TypeError: an element is not a :class:`SuggestionGenerator`.
    """

    name = "combined"

    def __init__(self, generators: Sequence[SuggestionGenerator]) -> None:
        generators = list(generators)
        if not generators:
            raise ValueError("Combined needs at least one suggestion generator")
        for g in generators:
            if not isinstance(g, SuggestionGenerator):
                raise TypeError(f"Combined expects SuggestionGenerator instances, got "
                                f"{type(g).__name__}")
        self.generators = generators
        self.num_channels = sum(g.num_channels for g in generators)

    def generate(self, mask: torch.Tensor, generator: torch.Generator | None,
                 training: bool) -> torch.Tensor:
        return torch.cat([g(mask, generator, training=training) for g in self.generators], dim=0)

    def __repr__(self) -> str:
        return f"Combined({self.generators!r})"


SUGGESTIONS: dict[str, type[SuggestionGenerator]] = {}


def register_suggestion(name: str) -> Callable[[type[SuggestionGenerator]],
                                               type[SuggestionGenerator]]:
    """Class decorator adding a generator to :data:`SUGGESTIONS` under ``name``.

    Raises:
        ValueError: ``name`` already taken by another class.
    """
    def decorate(cls: type[SuggestionGenerator]) -> type[SuggestionGenerator]:
        if name in SUGGESTIONS and SUGGESTIONS[name] is not cls:
            raise ValueError(f"suggestion name {name!r} already registered to "
                             f"{SUGGESTIONS[name].__name__}")
        SUGGESTIONS[name] = cls
        cls.name = name
        return cls
    return decorate


def build_suggestion(spec: str | Mapping[str, Any] | Sequence[Any] | SuggestionGenerator
                     ) -> SuggestionGenerator:
    """Build a generator from a config value (``method.suggestion=...``).

    ``spec`` is a registered name (``"block"``), a mapping ``{"name": "flood", **kwargs}``, an
    existing generator, or a list of those (→ :class:`Combined`, channels concatenated in order).
    Mappings may be OmegaConf ``DictConfig`` objects (anything with ``keys``/``__getitem__``).

    Raises:
        KeyError: unknown name (the message lists the registered names).
        ValueError: a mapping without a ``name`` key, or an empty list.
        TypeError: wrong constructor arguments (raised by the generator, naming it).
    """
    if isinstance(spec, SuggestionGenerator):
        return spec
    if isinstance(spec, str):
        return _lookup(spec)()
    if isinstance(spec, Mapping) or hasattr(spec, "keys"):
        kwargs = {str(k): spec[k] for k in spec.keys()}
        if "name" not in kwargs:
            raise ValueError(f"suggestion spec {kwargs!r} needs a 'name' key, one of "
                             f"{sorted(SUGGESTIONS)}")
        cls = _lookup(str(kwargs.pop("name")))
        try:
            return cls(**kwargs)
        except TypeError as err:
            raise TypeError(f"bad arguments for suggestion {cls.name!r} ({cls.__name__}): "
                            f"{err}") from err
    if isinstance(spec, Sequence) or hasattr(spec, "__iter__"):
        items = [build_suggestion(s) for s in spec]
        if not items:
            raise ValueError("empty suggestion list")
        return items[0] if len(items) == 1 else Combined(items)
    raise TypeError(f"cannot build a suggestion from {type(spec).__name__}: {spec!r}")


def _lookup(name: str) -> type[SuggestionGenerator]:
    if name not in SUGGESTIONS:
        raise KeyError(f"unknown suggestion {name!r}; registered: {sorted(SUGGESTIONS)}")
    return SUGGESTIONS[name]
