"""Labeled / unlabeled split files for semi-supervised training: reading and seeded generation.

Layout: ``<splits_dir>/<split>/{labeled,unlabeled}.txt``, where ``<splits_dir>`` is per dataset
(e.g. ``data/splits/voc``) and ``<split>`` is usually the labeled count (``data/splits/voc/366/``).

Accepted line formats (both of the reference repositories, normalised to sample names):

* bare ids (U2PL VOC): ``2007_000033``; Cityscapes names ``aachen_000000_000019``;
* one path (U2PL Cityscapes): ``leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png``;
* image + label paths (UniMatch): ``JPEGImages/2007_000033.jpg SegmentationClass/2007_000033.png``.

Generation (``python -m leseg.data.splits``, or :func:`make_splits`) draws one seeded permutation
of the dataset's labeled pool and takes its first ``n`` entries for each count, so smaller labeled
sets are subsets of larger ones. VOC pool: ``ImageSets/Segmentation/train.txt`` (the 1,464 fine
set); unlabeled = the rest of ``train_aug.txt`` (10,582 SBD-augmented set) if present, else the rest
of ``train.txt``. Cityscapes: all sorted ``leftImg8bit/train`` frames, unlabeled = the rest.
CamVid (SegNet layout): the 367 frames of ``train.txt``; default counts 23, 46, 92, 184 =
⌈367 / k⌉ for k = 16, 8, 4, 2 (the 1/16 … 1/2 protocol), unlabeled = the rest.

Files are written in either of the two formats the reader accepts (``fmt``): ``ids`` (bare names,
U2PL VOC style, the default) or ``pairs`` (``<image> <label>`` paths relative to the dataset root,
UniMatch style, e.g. ``train/0001TP_006690.png trainannot/0001TP_006690.png`` for CamVid).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from leseg.data.camvid import list_camvid_frames
from leseg.data.cityscapes import list_cityscapes_frames
from leseg.data.io import write_text_atomic

DATASETS = ("voc", "cityscapes", "camvid")
DEFAULT_COUNTS: dict[str, tuple[int, ...]] = {
    "voc": (92, 183, 366, 732, 1464),
    "cityscapes": (100, 186, 372, 744, 1488),
    "camvid": (23, 46, 92, 184),  # ceil(367 / k), k = 16, 8, 4, 2
}
FORMATS = ("ids", "pairs")
MAKE_SPLITS_COMMAND = ("python -m leseg.data.splits --dataset {voc,cityscapes,camvid} --root "
                       "<dataset root> --counts <n> [<n> ...] --seed 0 --out <splits_dir>")
_STRIP_SUFFIXES = ("_leftImg8bit.png", "_gtFine_labelTrainIds.png", "_gtFine_labelIds.png",
                   ".jpg", ".jpeg", ".png")


class SplitLists(NamedTuple):
    """Sample names of one split: ``labeled`` (with masks) and ``unlabeled`` (images only)."""

    labeled: list[str]
    unlabeled: list[str]


def sample_name(token: str) -> str:
    """Normalise one split-file entry to a sample name.

    ``JPEGImages/2007_000033.jpg`` → ``2007_000033``;
    ``leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png`` → ``aachen_000000_000019``;
    ``gtFine/train/aachen/aachen_000000_000019_gtFine_labelTrainIds.png`` → the same;
    bare ids are returned unchanged.
    """
    base = token.replace("\\", "/").rsplit("/", 1)[-1]
    for suffix in _STRIP_SUFFIXES:
        if base.lower().endswith(suffix.lower()):
            return base[: -len(suffix)]
    return base


def read_split_file(path: str | os.PathLike) -> list[str]:
    """Read a split / id-list file into sample names, in file order.

    Blank lines and lines starting with ``#`` are skipped. A two-column line (image, label) must
    name the same sample in both columns.

    Args:
        path: the text file.

    Returns:
        list of sample names (may be empty).

    Raises:
        FileNotFoundError: the file does not exist (the message says how to create split files).
        ValueError: a line with more than two columns, columns naming different samples, or a
            duplicated name (names the file and line number).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"split file {path} not found; create split files with:\n  "
                                f"{MAKE_SPLITS_COMMAND}\n(see data/README.md)")
    names: list[str] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        cols = line.split()
        if not cols or cols[0].startswith("#"):
            continue
        if len(cols) > 2:
            raise ValueError(f"{path}:{lineno}: expected an id, a path, or 'image label' paths; "
                             f"got {len(cols)} columns: {line!r}")
        name = sample_name(cols[0])
        if len(cols) == 2 and sample_name(cols[1]) != name:
            raise ValueError(f"{path}:{lineno}: image and label name different samples: {line!r}")
        if name in seen:
            raise ValueError(f"{path}:{lineno}: {name!r} already listed on line {seen[name]}")
        seen[name] = lineno
        names.append(name)
    return names


def split_file(splits_dir: str | os.PathLike, split: str | int, which: str = "labeled") -> Path:
    """``<splits_dir>/<split>/<which>.txt`` with ``which`` in {labeled, unlabeled}."""
    if which not in ("labeled", "unlabeled"):
        raise ValueError(f"which must be 'labeled' or 'unlabeled', got {which!r}")
    return Path(splits_dir) / str(split) / f"{which}.txt"


def write_split(splits_dir: str | os.PathLike, split: str | int, labeled: Sequence[str],
                unlabeled: Sequence[str], lines: dict[str, str] | None = None) -> None:
    """Write ``<splits_dir>/<split>/{labeled,unlabeled}.txt`` atomically, one entry per line.

    Args:
        lines: name → the line to write for it (e.g. an ``<image> <label>`` pair); None = bare
            names.
    """
    for which, names in (("labeled", labeled), ("unlabeled", unlabeled)):
        text = "".join(f"{lines[n] if lines is not None else n}\n" for n in names)
        write_text_atomic(split_file(splits_dir, split, which), text)


def pair_lines(dataset: str, root: str | os.PathLike, names: Sequence[str]) -> dict[str, str]:
    """``<image> <label>`` line (paths relative to ``root``, UniMatch format) of each train name.

    VOC: ``JPEGImages/<id>.jpg SegmentationClass/<id>.png``; Cityscapes:
    ``leftImg8bit/train/<city>/<n>_leftImg8bit.png gtFine/train/<city>/<n>_gtFine_labelTrainIds.png``
    (the city is the folder the frame is in); CamVid: the paths of ``train.txt`` without the SegNet
    prefix, e.g. ``train/0001TP_006690.png trainannot/0001TP_006690.png``. Every line reads back
    (:func:`read_split_file`) as its name.

    Raises:
        ValueError: unknown dataset, or a Cityscapes / CamVid name that is not a train frame
            (names it).
    """
    root = Path(root)
    if dataset == "voc":
        return {n: f"JPEGImages/{n}.jpg SegmentationClass/{n}.png" for n in names}
    if dataset == "cityscapes":
        frames = list_cityscapes_frames(root, "train")
        lookup = {}
        for n in names:
            if n not in frames:
                raise ValueError(f"{n!r} is not a frame of {root}/leftImg8bit/train")
            city = frames[n].parent.name
            lookup[n] = (f"leftImg8bit/train/{city}/{n}_leftImg8bit.png "
                         f"gtFine/train/{city}/{n}_gtFine_labelTrainIds.png")
        return lookup
    if dataset == "camvid":
        frames = list_camvid_frames(root, "train")
        unknown = [n for n in names if n not in frames]
        if unknown:
            raise ValueError(f"{unknown[:5]} are not frames of CamVid {root} split 'train'")
        return {n: " ".join(p.relative_to(root).as_posix() for p in frames[n]) for n in names}
    raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")


def load_split(splits_dir: str | os.PathLike, split: str | int) -> SplitLists:
    """Read ``<splits_dir>/<split>/{labeled,unlabeled}.txt``.

    Raises:
        FileNotFoundError: either file is missing (names it and the make-splits command).
        ValueError: a malformed file (see :func:`read_split_file`), or a name in both lists.
    """
    labeled_path = split_file(splits_dir, split, "labeled")
    unlabeled_path = split_file(splits_dir, split, "unlabeled")
    lists = SplitLists(read_split_file(labeled_path), read_split_file(unlabeled_path))
    both = sorted(set(lists.labeled) & set(lists.unlabeled))
    if both:
        raise ValueError(f"{len(both)} name(s) appear in both {labeled_path} and {unlabeled_path}: "
                         f"{both[:5]}")
    return lists


def _pools(dataset: str, root: Path) -> tuple[list[str], list[str], str]:
    """(labeled pool, unlabeled universe, description of the pool's source)."""
    if dataset == "voc":
        seg = root / "ImageSets" / "Segmentation"
        if not seg.is_dir():
            raise FileNotFoundError(f"VOC id lists not found: expected {seg}/train.txt (root must be "
                                    f"the VOC2012 folder, see data/README.md)")
        train_file = seg / "train.txt"
        pool = read_split_file(train_file)
        aug_file = seg / "train_aug.txt"
        universe = read_split_file(aug_file) if aug_file.is_file() else pool
        return pool, universe, str(train_file)
    if dataset == "cityscapes":
        pool = list(list_cityscapes_frames(root, "train"))
        return pool, pool, f"{root}/leftImg8bit/train"
    if dataset == "camvid":
        frames = list_camvid_frames(root, "train")
        pool = list(frames)
        return pool, pool, f"CamVid {root} split 'train'"
    raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")


def make_splits(dataset: str, root: str | os.PathLike, counts: Sequence[int] | None = None,
                seed: int = 0, out: str | os.PathLike | None = None,
                fmt: str = "ids") -> dict[int, SplitLists]:
    """Draw nested, seeded labeled subsets of the dataset's train pool (see module docstring).

    Args:
        dataset: ``"voc"``, ``"cityscapes"`` or ``"camvid"``.
        root: dataset root (the VOC2012 folder, the Cityscapes root, or the CamVid folder).
        counts: labeled counts; None = :data:`DEFAULT_COUNTS` of the dataset.
        seed: seed of the permutation (``numpy.random.default_rng``).
        out: if given, write ``<out>/<n>/{labeled,unlabeled}.txt`` (sorted, one sample per line,
            each file written atomically; existing files are replaced).
        fmt: line format of the written files: ``ids`` (bare names) or ``pairs`` (``<image>
            <label>`` paths relative to ``root``, see :func:`pair_lines`). Both read back to the
            same names.

    Returns:
        count → :class:`SplitLists` (both lists sorted).

    Raises:
        FileNotFoundError: the dataset's train list / frames are missing.
        ValueError: unknown dataset or format, or a count < 1 or larger than the pool (names the
            pool).
    """
    root = Path(root)
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    if fmt not in FORMATS:
        raise ValueError(f"split file format must be one of {FORMATS}, got {fmt!r}")
    counts = sorted(set(int(c) for c in (counts or DEFAULT_COUNTS[dataset])))
    pool, universe, source = _pools(dataset, root)
    pool = sorted(pool)
    too_many = [c for c in counts if c < 1 or c > len(pool)]
    if too_many:
        raise ValueError(f"cannot draw labeled sets of size {too_many}: {source} has {len(pool)} "
                         f"images (counts must be in 1..{len(pool)})")
    order = np.random.default_rng(seed).permutation(len(pool))
    lines = pair_lines(dataset, root, sorted(set(universe))) if out is not None and \
        fmt == "pairs" else None
    result: dict[int, SplitLists] = {}
    for count in counts:
        labeled = sorted(pool[i] for i in order[:count])
        chosen = set(labeled)
        unlabeled = sorted(n for n in set(universe) if n not in chosen)
        result[count] = SplitLists(labeled, unlabeled)
        if out is not None:
            write_split(out, count, labeled, unlabeled, lines)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m leseg.data.splits --dataset voc --root <VOC2012> --out <dir>``."""
    parser = argparse.ArgumentParser(
        prog="python -m leseg.data.splits",
        description="Write seeded, nested labeled/unlabeled split files "
                    "<out>/<n>/{labeled,unlabeled}.txt for semi-supervised training.")
    parser.add_argument("--dataset", required=True, choices=DATASETS)
    parser.add_argument("--root", required=True,
                        help="dataset root: the VOC2012 folder, the Cityscapes root or the CamVid "
                             "folder")
    parser.add_argument("--counts", type=int, nargs="+", default=None,
                        help="labeled counts (default: VOC 92 183 366 732 1464, "
                             "Cityscapes 100 186 372 744 1488, CamVid 23 46 92 184)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--format", choices=FORMATS, default="ids", dest="fmt",
                        help="ids: bare names (U2PL); pairs: '<image> <label>' paths (UniMatch)")
    parser.add_argument("--out", default=None, help="output folder (default: data/splits/<dataset>)")
    args = parser.parse_args(argv)
    out = Path(args.out or Path("data") / "splits" / args.dataset)
    try:
        result = make_splits(args.dataset, args.root, args.counts, args.seed, out, args.fmt)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for count, lists in result.items():
        print(f"{out / str(count)}: {len(lists.labeled)} labeled, {len(lists.unlabeled)} unlabeled")
    return 0


if __name__ == "__main__":
    sys.exit(main())
