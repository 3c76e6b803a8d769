"""Write the downsampled (1024×512) copy of a Cityscapes-layout dataset that Three Ways trains on.

What each file becomes is :func:`leseg.data.downsample.downsample_content` (Hoyer et al., CVPR
2021: images Lanczos, labels and disparity nearest, camera intrinsics rescaled exactly, vehicle
files copied). This stage writes them on :mod:`leseg.stages.runner`: one item = one output file
at the same relative path, written atomically, skipped when already present (an interrupted run
is resumed by running the same command again), in ``--jobs`` worker processes::

    python -m leseg.stages.downsample --src data/cityscapes --dst data/cityscapes_1024x512 --jobs 8
    python -m leseg.stages downsample stage.src=data/cityscapes stage.dst=data/cityscapes_1024x512
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from leseg.data.downsample import FOLDERS, check_request, downsample_content, list_files
from leseg.stages.runner import run_items
from leseg.utils.io import atomic_write, atomic_write_text

__all__ = ["downsample_dataset", "main"]


def _save(path: Path, content: Image.Image | str) -> None:
    if isinstance(content, str):
        atomic_write_text(path, content)
    else:
        with atomic_write(path, "wb") as f:
            content.save(f, format="PNG")


def downsample_dataset(src: str | os.PathLike, dst: str | os.PathLike, *, height: int = 512,
                       width: int = 1024, splits: Sequence[str] | None = ("train", "val"),
                       folders: Sequence[str] = FOLDERS, jobs: int = 1,
                       progress: bool = False) -> dict[str, int]:
    """Downsample a Cityscapes-layout dataset into ``dst`` (see the module docstring).

    Args:
        src, dst: source and output roots; ``dst`` must differ from ``src``.
        height, width: output size of every image and label (512, 1024).
        splits: split folders to process (None or empty = all).
        folders: top-level folders (subset of :data:`~leseg.data.downsample.FOLDERS`).
        jobs: worker processes (1 = in this process).
        progress: show a progress bar.

    Returns:
        ``{"written": n, "skipped": m}`` (files written now / found present).

    Raises:
        FileNotFoundError: ``src`` missing or none of ``folders`` in it (names them).
        ValueError: unknown folder, ``dst`` == ``src``, non-positive size.
        OSError: an unreadable source file (names it); no partial output file is left.
    """
    check_request(src, dst, height, width, folders)
    src, dst = Path(src), Path(dst)
    kinds = dict((rel, kind) for kind, rel in list_files(src, splits or None, folders))

    def work(rel: str) -> Image.Image | str:
        return downsample_content(kinds[rel], src / rel, height, width, src)

    result = run_items(kinds, lambda rel: dst / rel, work, _save,
                       workers=int(jobs) if int(jobs) > 1 else 0, progress=progress,
                       desc="downsample")
    return {"written": len(result.done), "skipped": len(result.skipped)}


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (see the module docstring); exit code 2 on bad input."""
    parser = argparse.ArgumentParser(prog="python -m leseg.stages.downsample",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", required=True, help="Cityscapes root (full resolution)")
    parser.add_argument("--dst", required=True, help="output root")
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--splits", nargs="*", default=["train", "val"],
                        help="split folders (empty = all)")
    parser.add_argument("--folders", nargs="*", default=list(FOLDERS))
    parser.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        counts = downsample_dataset(args.src, args.dst, height=args.height, width=args.width,
                                    splits=args.splits or None, folders=args.folders,
                                    jobs=args.jobs, progress=args.progress)
    except (FileNotFoundError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{args.dst}: {counts['written']} file(s) written, {counts['skipped']} already present")
    return 0


if __name__ == "__main__":
    sys.exit(main())
