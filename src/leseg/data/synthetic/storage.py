"""Writing a generated dataset: image writers, the completion marker and the atomic swap onto ``root``.

A dataset is always built in a temporary sibling directory of ``root`` (``.<name>.tmp-*``), the
marker file :data:`MARKER_NAME` is written into it LAST, and only then is the directory renamed onto
``root``; so a directory at ``root`` either holds a complete dataset with its marker, or it was not
made by a finished run of this generator.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

__all__ = ["MARKER_NAME", "build_atomically", "read_marker", "save_png"]

MARKER_NAME = "leseg_synthetic.json"
"""File written last into a complete generated dataset; holds the kind, version and parameters."""

_PNG_MODES = {"RGB": (3, np.uint8), "RGBA": (4, np.uint8), "L": (None, np.uint8),
              "P": (None, np.uint8), "I;16": (None, np.uint16)}


def save_png(path: Path, array: np.ndarray, mode: str,
             palette: np.ndarray | None = None) -> None:
    """Write ``array`` as a PNG (deterministic bytes: no timestamps, fixed compression level).

    Args:
        path: destination file (parent folders are created).
        array: (H, W, 3) uint8 for "RGB", (H, W, 4) uint8 for "RGBA", (H, W) uint8 for "L" and "P",
            (H, W) uint16 for "I;16".
        mode: one of "RGB", "RGBA", "L", "P" (palette image; needs ``palette``), "I;16".
        palette: (256, 3) uint8 colour table for mode "P".

    Raises:
        ValueError: array shape/dtype does not fit ``mode``, or mode "P" without a palette.
    """
    if mode not in _PNG_MODES:
        raise ValueError(f"{path}: unsupported PNG mode {mode!r}; expected one of "
                         f"{sorted(_PNG_MODES)}")
    channels, dtype = _PNG_MODES[mode]
    expected_ndim = 2 if channels is None else 3
    if array.dtype != dtype or array.ndim != expected_ndim or (
            channels is not None and array.shape[2] != channels):
        raise ValueError(f"{path}: mode {mode!r} needs a {expected_ndim}-D {np.dtype(dtype).name} "
                         f"array, got shape {array.shape} dtype {array.dtype}")
    image = Image.fromarray(np.ascontiguousarray(array))
    if mode == "P":
        if palette is None or palette.shape != (256, 3):
            raise ValueError(f"{path}: mode 'P' needs a (256, 3) uint8 palette")
        image.putpalette(palette.astype(np.uint8).tobytes())
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG", compress_level=3)


def read_marker(root: Path) -> dict[str, Any] | None:
    """The parsed marker of a generated dataset at ``root``, or None if there is none (or unreadable)."""
    marker = Path(root) / MARKER_NAME
    try:
        content = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    return content if isinstance(content, dict) else None


def build_atomically(root: Path, identity: Mapping[str, Any],
                     build: Callable[[Path], Mapping[str, Any]],
                     looks_generated: Callable[[Path], bool]) -> Path:
    """Build a dataset in a temporary sibling of ``root``, add the marker, then rename it onto root.

    Args:
        root: final dataset folder.
        identity: JSON-serialisable marker entries that identify the dataset (kind, version,
            parameters); a finished dataset at ``root`` with the same identity is kept as it is.
        build: writes the whole dataset into the folder it is given and returns extra
            (informational) marker entries.
        looks_generated: True if an existing ``root`` without a marker holds only files this
            generator writes (a leftover), i.e. it is safe to replace.

    Returns:
        ``root`` as a Path.

    Raises:
        ValueError: ``root`` exists, has no marker and does not look like a leftover of this
            generator (e.g. real data): it is never deleted.
    """
    root = Path(root)
    identity = json.loads(json.dumps(dict(identity)))
    if root.exists() and read_marker(root) is None and not looks_generated(root):
        raise ValueError(f"{root} exists but holds no {MARKER_NAME} and does not look like a "
                         f"leseg synthetic dataset; refusing to overwrite it. Delete it or choose "
                         f"another data.root")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    try:
        extra = dict(build(tmp))
        marker = {**extra, **identity}
        (tmp / MARKER_NAME).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n")
        existing = read_marker(root) if root.exists() else None
        if existing is not None and all(existing.get(k) == v for k, v in identity.items()):
            shutil.rmtree(tmp)  # another process finished the same dataset meanwhile
            return root
        if root.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{root.name}.old-", dir=root.parent))
            os.replace(root, old / root.name)
            os.replace(tmp, root)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root
