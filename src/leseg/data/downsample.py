"""Downsampling a Cityscapes-layout dataset to the 1024×512 copy that Three Ways trains on: the
pure part (which files, and each file's downsampled content).

Hoyer et al. (Three Ways, CVPR 2021, implementation details) downsample every image and sequence
frame once to 1024×512 with PIL's antialiasing (Lanczos) filter (reference:
``data_preprocessing/prepare_cityscapes.py`` of lhoyer/improving_segmentation_with_selfsupervised_depth,
which writes JPEG quality 98; here PNG); labels are downsampled with nearest neighbour.
:func:`downsample_content` does that for one file of ``leftImg8bit``, ``leftImg8bit_sequence``
(Lanczos), ``gtFine`` PNGs (nearest), ``disparity`` (nearest, disparity values × s_x since they are
in pixels), rewrites ``camera/*.json`` with the intrinsics rescaled exactly (c' = s (c + ½) − ½,
f' = s f; the full-resolution values are kept under ``leseg_original_intrinsic`` for the
reference-bug flag of :mod:`leseg.data.sequences`) and copies ``vehicle/*.json``. File names and
layout are unchanged (PNG output).

Writing the copy — atomically, in worker processes, skipping files already present — is the stage
:mod:`leseg.stages.downsample` (on :mod:`leseg.stages.runner`)::

    python -m leseg.stages.downsample --src data/cityscapes --dst data/cityscapes_1024x512 --jobs 8
    python -m leseg.stages downsample stage.src=data/cityscapes stage.dst=data/cityscapes_1024x512

``python -m leseg.data.downsample ...`` still works: it runs that command line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from leseg.data.camera import load_camera_json, resize_intrinsics

__all__ = ["FOLDERS", "check_request", "downsample_content", "list_files"]

FOLDERS = ("leftImg8bit", "leftImg8bit_sequence", "gtFine", "disparity", "camera", "vehicle")
"""Top-level folders handled (those missing in the source are skipped)."""

_KIND = {"leftImg8bit": "image", "leftImg8bit_sequence": "image", "gtFine": "label",
         "disparity": "disparity", "camera": "camera", "vehicle": "copy"}
_SUFFIX = {"image": ".png", "label": ".png", "disparity": ".png", "camera": ".json",
           "copy": ".json"}


def _reference_size(src_root: Path, camera: Path) -> tuple[int, int]:
    """(H, W) of the image a camera file describes (its annotated ``leftImg8bit`` frame)."""
    rel = camera.relative_to(src_root / "camera")
    stem = rel.name[: -len("_camera.json")]
    for folder in ("leftImg8bit", "leftImg8bit_sequence"):
        image = src_root / folder / rel.parent / f"{stem}_leftImg8bit.png"
        if image.is_file():
            with Image.open(image) as im:
                return im.height, im.width
    raise FileNotFoundError(f"no image for camera file {camera}: expected "
                            f"{src_root}/leftImg8bit/{rel.parent}/{stem}_leftImg8bit.png")


def downsample_content(kind: str, src: str | os.PathLike, height: int, width: int,
                       src_root: str | os.PathLike) -> Image.Image | str:
    """The downsampled content of one source file (nothing is written).

    Args:
        kind: ``image`` (RGB, Lanczos) | ``label`` (nearest) | ``disparity`` (nearest, uint16
            values p > 0 rescaled as (p − 1) · s_x + 1, 0 = invalid) | ``camera`` (intrinsics
            rescaled to the output size) | ``copy`` (text as is).
        src: the source file.
        height, width: output size in pixels.
        src_root: the source dataset root (a camera file's size comes from its image there).

    Returns:
        A PIL image (``image``, ``label``, ``disparity``) or the file's new text (``camera``,
        ``copy``).

    Raises:
        FileNotFoundError / OSError: unreadable source, or no image for a camera file (names it).
        ValueError: unknown ``kind``.
    """
    src_p = Path(src)
    if kind == "copy":
        return src_p.read_text()
    if kind == "camera":
        h0, w0 = _reference_size(Path(src_root), src_p)
        content = json.loads(src_p.read_text())
        original = content.get("leseg_original_intrinsic", content.get("intrinsic"))
        K = resize_intrinsics(load_camera_json(src_p), width / w0, height / h0)
        content["intrinsic"] = {**content.get("intrinsic", {}), "fx": float(K[0, 0]),
                                "fy": float(K[1, 1]), "u0": float(K[0, 2]),
                                "v0": float(K[1, 2])}
        content["leseg_original_intrinsic"] = original
        content["leseg_resize"] = {"from_hw": [h0, w0], "to_hw": [height, width]}
        return json.dumps(content, indent=2) + "\n"
    if kind not in ("image", "label", "disparity"):
        raise ValueError(f"{src_p}: unknown kind {kind!r}; expected one of {sorted(_SUFFIX)}")
    try:
        with Image.open(src_p) as im:
            im.load()
            if kind == "image":
                return im.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)
            if kind == "label":
                return im.resize((width, height), Image.Resampling.NEAREST)
            sx = width / im.width  # disparity: nearest, values are pixels of the image width
            p = np.array(im.resize((width, height), Image.Resampling.NEAREST)).astype(np.float64)
            scaled = np.where(p > 0, np.clip(np.rint((p - 1) * sx) + 1, 1, 65535), 0)
            return Image.fromarray(scaled.astype(np.uint16))
    except OSError as err:
        raise OSError(f"cannot read {src_p}: {err}") from err


def list_files(src: str | os.PathLike, splits: Sequence[str] | None = ("train", "val"),
               folders: Sequence[str] = FOLDERS) -> list[tuple[str, str]]:
    """``(kind, relative path)`` of every file to downsample, sorted per folder.

    Args:
        src: the source root.
        splits: split folders (the path component below each top-level folder; None = all).
        folders: top-level folders (a subset of :data:`FOLDERS`; missing ones are skipped).
    """
    src = Path(src)
    files = []
    for folder in folders:
        base = src / folder
        if not base.is_dir():
            continue
        kind = _KIND[folder]
        for path in sorted(base.rglob(f"*{_SUFFIX[kind]}")):
            rel = path.relative_to(src)
            if splits is not None and rel.parts[1] not in splits:
                continue
            files.append((kind, str(rel)))
    return files


def check_request(src: str | os.PathLike, dst: str | os.PathLike, height: int, width: int,
                  folders: Sequence[str] = FOLDERS) -> None:
    """Refuse a downsampling request that cannot work, before anything is written.

    Raises:
        FileNotFoundError: ``src`` missing or none of ``folders`` in it (names them).
        ValueError: unknown folder, ``dst`` == ``src``, non-positive size.
    """
    src, dst = Path(src), Path(dst)
    unknown = [f for f in folders if f not in _KIND]
    if unknown:
        raise ValueError(f"unknown folder(s) {unknown}; choose from {list(FOLDERS)}")
    if height < 1 or width < 1:
        raise ValueError(f"height and width must be positive, got {height}x{width}")
    if src.resolve() == dst.resolve():
        raise ValueError(f"--dst must differ from --src ({src})")
    if not src.is_dir() or not any((src / f).is_dir() for f in folders):
        raise FileNotFoundError(f"{src} holds none of {list(folders)} (expected a Cityscapes root "
                                f"with leftImg8bit/, leftImg8bit_sequence/, gtFine/, camera/)")


if __name__ == "__main__":  # the command moved to the stages layer; run it from there
    import runpy

    runpy.run_module("leseg.stages.downsample", run_name="__main__", alter_sys=True)
