"""Write the downsampled (1024×512) copy of a Cityscapes-layout dataset that Three Ways trains on.

Hoyer et al. (CVPR 2021; ``downsample_datasets.py``) downsample every image and sequence frame once
to 1024×512 with PIL's antialiasing filter; labels are downsampled with nearest neighbour. This
command does that for ``leftImg8bit``, ``leftImg8bit_sequence`` (Lanczos), ``gtFine`` PNGs
(nearest), ``disparity`` (nearest, disparity values × s_x since they are in pixels), rewrites
``camera/*.json`` with the intrinsics rescaled exactly (c' = s (c + ½) − ½, f' = s f; the
full-resolution values are kept under ``leseg_original_intrinsic`` for the reference-bug flag of
:mod:`leseg.data.sequences`) and copies ``vehicle/*.json``. File names and layout are unchanged
(PNG output).

Every file is written atomically (temporary file + rename, :func:`leseg.utils.io.atomic_write`),
in parallel worker processes; files already present in the output are skipped, so an interrupted
run is resumed by running the same command again::

    python -m leseg.data.downsample --src data/cityscapes --dst data/cityscapes_1024x512 --jobs 8
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from leseg.data.camera import load_camera_json, resize_intrinsics
from leseg.utils.io import atomic_write, atomic_write_text

__all__ = ["FOLDERS", "downsample_dataset", "downsample_file", "main"]

FOLDERS = ("leftImg8bit", "leftImg8bit_sequence", "gtFine", "disparity", "camera", "vehicle")
"""Top-level folders handled (those missing in the source are skipped)."""

_KIND = {"leftImg8bit": "image", "leftImg8bit_sequence": "image", "gtFine": "label",
         "disparity": "disparity", "camera": "camera", "vehicle": "copy"}
_SUFFIX = {"image": ".png", "label": ".png", "disparity": ".png", "camera": ".json",
           "copy": ".json"}


def _save_png(img: Image.Image, dst: Path) -> None:
    with atomic_write(dst, "wb") as f:
        img.save(f, format="PNG")


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


def downsample_file(job: tuple[str, str, str, str, int, int]) -> str:
    """Write one output file; returns ``"written"`` or ``"skipped"`` (output already present).

    Args:
        job: (kind, source path, destination path, source root, height, width) with kind in
            image | label | disparity | camera | copy.

    Raises:
        FileNotFoundError / OSError: unreadable source (names it). Nothing is left at the
            destination on failure.
    """
    kind, src, dst, src_root, height, width = job
    src_p, dst_p = Path(src), Path(dst)
    if dst_p.is_file():
        return "skipped"
    if kind == "copy":
        atomic_write_text(dst_p, src_p.read_text())
    elif kind == "camera":
        h0, w0 = _reference_size(Path(src_root), src_p)
        content = json.loads(src_p.read_text())
        original = content.get("leseg_original_intrinsic", content.get("intrinsic"))
        K = resize_intrinsics(load_camera_json(src_p), width / w0, height / h0)
        content["intrinsic"] = {**content.get("intrinsic", {}), "fx": float(K[0, 0]),
                                "fy": float(K[1, 1]), "u0": float(K[0, 2]),
                                "v0": float(K[1, 2])}
        content["leseg_original_intrinsic"] = original
        content["leseg_resize"] = {"from_hw": [h0, w0], "to_hw": [height, width]}
        atomic_write_text(dst_p, json.dumps(content, indent=2) + "\n")
    else:
        try:
            with Image.open(src_p) as im:
                im.load()
                if kind == "image":
                    out = im.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)
                elif kind == "label":
                    out = im.resize((width, height), Image.Resampling.NEAREST)
                else:  # disparity: nearest, values are pixels of the image width
                    sx = width / im.width
                    p = np.array(im.resize((width, height), Image.Resampling.NEAREST)).astype(
                        np.float64)
                    scaled = np.where(p > 0, np.clip(np.rint((p - 1) * sx) + 1, 1, 65535), 0)
                    out = Image.fromarray(scaled.astype(np.uint16))
        except OSError as err:
            raise OSError(f"cannot read {src_p}: {err}") from err
        _save_png(out, dst_p)
    return "written"


def _jobs(src: Path, dst: Path, height: int, width: int, splits: Sequence[str] | None,
          folders: Sequence[str]) -> list[tuple[str, str, str, str, int, int]]:
    jobs = []
    for folder in folders:
        base = src / folder
        if not base.is_dir():
            continue
        kind = _KIND[folder]
        for path in sorted(base.rglob(f"*{_SUFFIX[kind]}")):
            rel = path.relative_to(src)
            if splits is not None and rel.parts[1] not in splits:
                continue
            jobs.append((kind, str(path), str(dst / rel), str(src), height, width))
    return jobs


def downsample_dataset(src: str | os.PathLike, dst: str | os.PathLike, *, height: int = 512,
                       width: int = 1024, splits: Sequence[str] | None = ("train", "val"),
                       folders: Sequence[str] = FOLDERS, jobs: int = 1) -> dict[str, int]:
    """Downsample a Cityscapes-layout dataset (see the module docstring).

    Args:
        src, dst: source and output roots; ``dst`` must differ from ``src``.
        height, width: output size of every image and label (512, 1024).
        splits: split folders to process (None = all).
        folders: top-level folders (subset of :data:`FOLDERS`).
        jobs: worker processes (1 = in this process).

    Returns:
        ``{"written": n, "skipped": m}``.

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
    todo = _jobs(src, dst, height, width, splits, folders)
    counts = {"written": 0, "skipped": 0}
    if jobs <= 1:
        results = map(downsample_file, todo)
        for r in results:
            counts[r] += 1
    else:
        with mp.get_context("spawn").Pool(jobs) as pool:
            for r in pool.imap_unordered(downsample_file, todo, chunksize=16):
                counts[r] += 1
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m leseg.data.downsample",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", required=True, help="Cityscapes root (full resolution)")
    parser.add_argument("--dst", required=True, help="output root")
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--splits", nargs="*", default=["train", "val"],
                        help="split folders (empty = all)")
    parser.add_argument("--folders", nargs="*", default=list(FOLDERS))
    parser.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    args = parser.parse_args(argv)
    try:
        counts = downsample_dataset(args.src, args.dst, height=args.height, width=args.width,
                                    splits=args.splits or None, folders=args.folders,
                                    jobs=args.jobs)
    except (FileNotFoundError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{args.dst}: {counts['written']} file(s) written, {counts['skipped']} already present")
    return 0


if __name__ == "__main__":
    sys.exit(main())
