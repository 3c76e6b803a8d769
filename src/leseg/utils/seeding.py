"""Per-image random generators that are the same in every process, worker and rerun.

Deterministic evaluation draws its randomness from the image name: S5's class choice
(:class:`leseg.data.binarize.BinarizeTarget`, salt ``"binarize"``) in the data layer and its
suggestion (:class:`leseg.methods.s5.S5`, salt ``"suggestion"``) in the method layer both use
:func:`generator_for`, so it lives here, below both.
"""

from __future__ import annotations

import hashlib

import torch

__all__ = ["generator_for", "stable_seed"]


def stable_seed(name: str, salt: str = "") -> int:
    """A 63-bit seed from ``name`` (and an optional ``salt``) that is the same in every process.

    Python's ``hash`` is salted per process; this uses SHA-256, so workers, DDP ranks and reruns
    agree. Use different salts for independent streams of one image (e.g. ``"binarize"`` for the
    class choice, ``"suggestion"`` for the suggestion generator).

    Raises:
        TypeError: ``name`` is not a string.
    """
    if not isinstance(name, str):
        raise TypeError(f"stable_seed: image name must be a str, got {type(name).__name__}")
    digest = hashlib.sha256(f"{salt}\0{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def generator_for(name: str, salt: str = "", device: torch.device | str = "cpu"
                  ) -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with :func:`stable_seed` (name, salt)."""
    return torch.Generator(device=device).manual_seed(stable_seed(name, salt))
