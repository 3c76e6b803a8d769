"""Reading images and label maps with errors that name the file, and atomic PNG/text writes.

Every read forces a full decode (``Image.load()``), so a truncated or corrupt file fails here, with
its path in the message, rather than somewhere inside a DataLoader worker.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_MODES_CONVERTED = ("L", "P", "RGBA", "CMYK", "YCbCr")
"""Image modes converted to RGB by :func:`read_image` (any other non-RGB mode is an error)."""
LABEL_MODES = ("L", "P", "I;16", "I")
"""Single-channel PNG modes that hold class indices directly."""


class ImageDecodeError(OSError):
    """An image or label file exists but cannot be decoded (truncated, corrupt, not an image)."""


def _open_decoded(path: str | os.PathLike, kind: str) -> Image.Image:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{kind} file not found: {path}")
    try:
        img = Image.open(path)
        img.load()  # force the full decode: truncated files fail here, not later
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ImageDecodeError(f"cannot decode {kind} file {path}: {err}") from err
    return img


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an RGB image.

    Args:
        path: image file (JPEG/PNG). Modes in :data:`IMAGE_MODES_CONVERTED` (grayscale, palette,
            RGBA — alpha dropped — CMYK, YCbCr) are converted to RGB.

    Returns:
        (H, W, 3) uint8 RGB array, values 0..255.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ImageDecodeError: the file is truncated or not a readable image (names the file).
        ValueError: the image mode cannot be read as RGB (e.g. 16-bit ``I;16``; names the file).
    """
    img = _open_decoded(path, "image")
    if img.mode != "RGB":
        if img.mode not in IMAGE_MODES_CONVERTED:
            raise ValueError(f"image file {path} has mode {img.mode!r}; expected an RGB image "
                             f"(or one of {IMAGE_MODES_CONVERTED})")
        img = img.convert("RGB")
    return np.array(img, dtype=np.uint8)


def read_label(path: str | os.PathLike,
               decode_rgb: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """Read a label map of class indices.

    Palette (mode ``P``) PNGs give their raw palette indices (not colours), grayscale (``L``) PNGs
    their values; 16/32-bit grayscale (``I;16``, ``I``) is read as int32. RGB/RGBA colour masks are
    accepted only when ``decode_rgb`` is given (e.g. ``labels.decode_voc_color_mask``).

    Args:
        path: label file (PNG).
        decode_rgb: maps an (H, W, 3) uint8 colour mask to (H, W) class indices; raises
            ``ValueError`` for unknown colours.

    Returns:
        (H, W) array: uint8 for ``L``/``P``/decoded colour masks, int32 for ``I;16``/``I``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ImageDecodeError: the file is truncated or not a readable image (names the file).
        ValueError: wrong mode (colour mask without ``decode_rgb``, or e.g. ``F``/``LA``), or a
            colour that ``decode_rgb`` does not know (names the file).
    """
    img = _open_decoded(path, "label")
    if img.mode in ("L", "P"):
        return np.array(img, dtype=np.uint8)
    if img.mode in ("I;16", "I"):
        return np.array(img).astype(np.int32)
    if img.mode in ("RGB", "RGBA") and decode_rgb is not None:
        try:
            return decode_rgb(np.asarray(img.convert("RGB"), dtype=np.uint8))
        except ValueError as err:
            raise ValueError(f"label file {path}: {err}") from err
    raise ValueError(f"label file {path} has mode {img.mode!r}; expected a single-channel "
                     f"class-index PNG (mode {', '.join(LABEL_MODES)})"
                     + (" or an RGB colour mask" if decode_rgb is not None else ""))


def check_same_size(image: np.ndarray, label: np.ndarray, image_path: str | os.PathLike,
                    label_path: str | os.PathLike) -> None:
    """Raise unless image (H, W, 3) and label (H, W) have the same height and width.

    Raises:
        ValueError: naming both files and both sizes (as H x W).
    """
    if image.shape[:2] != label.shape[:2]:
        raise ValueError(f"size mismatch: image {image_path} is {image.shape[0]}x{image.shape[1]} "
                         f"(HxW) but label {label_path} is {label.shape[0]}x{label.shape[1]}")


def missing_files_message(paths: Sequence[os.PathLike | str], what: str, hint: str = "") -> str:
    """``"N <what> missing: a, b, c (and M more)<hint>"`` for construction-time existence checks."""
    shown = ", ".join(str(p) for p in paths[:3])
    more = f" (and {len(paths) - 3} more)" if len(paths) > 3 else ""
    return f"{len(paths)} {what} missing: {shown}{more}{hint}"


@contextlib.contextmanager
def _atomic_target(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        from leseg.utils.io import naming_error

        named = naming_error(err, path)  # e.g. ENOSPC: the error names the destination
        if named is err:
            raise
        raise named from err


def write_png_atomic(path: str | os.PathLike, array: np.ndarray,
                     palette: np.ndarray | None = None) -> Path:
    """Write a PNG so that ``path`` holds either the complete new file or its old content.

    The image is written to a temporary file in the same directory and moved onto ``path`` with
    :func:`os.replace`; on any error the temporary file is removed.

    Args:
        path: destination; parent directories are created.
        array: (H, W) integer label map with values 0..255 (saved as mode ``L``, or ``P`` with a
            palette) or (H, W, 3) uint8 RGB image.
        palette: optional (K, 3) uint8 colours (K ≤ 256) for a palette PNG; needs a 2-D ``array``.

    Returns:
        ``Path(path)``.

    Raises:
        ValueError: wrong shape/dtype, values outside 0..255, or a palette with a 3-D array.
    """
    path = Path(path)
    arr = np.asarray(array)
    if arr.ndim == 3 and arr.shape[2] == 3 and arr.dtype == np.uint8:
        if palette is not None:
            raise ValueError(f"write_png_atomic({path}): a palette needs an (H, W) index array")
        img = Image.fromarray(arr)
    elif arr.ndim == 2 and (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise ValueError(f"write_png_atomic({path}): values must lie in 0..255, got "
                             f"[{arr.min()}, {arr.max()}]")
        img = Image.fromarray(arr.astype(np.uint8))  # mode L
        if palette is not None:
            pal = np.asarray(palette, dtype=np.uint8)
            if pal.ndim != 2 or pal.shape[1] != 3 or len(pal) > 256:
                raise ValueError(f"write_png_atomic({path}): palette must be (K<=256, 3), "
                                 f"got {pal.shape}")
            # putpalette turns the L image into mode P and keeps the pixel values as indices.
            flat = np.zeros(256 * 3, dtype=np.uint8)
            flat[: pal.size] = pal.ravel()
            img.putpalette(flat.tolist())
    else:
        raise ValueError(f"write_png_atomic({path}): expected an (H, W) integer array or an "
                         f"(H, W, 3) uint8 array, got shape {arr.shape} dtype {arr.dtype}")
    with _atomic_target(path) as tmp:
        img.save(tmp, format="PNG")
    return path


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` through a temporary file and :func:`os.replace`."""
    path = Path(path)
    with _atomic_target(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return path
