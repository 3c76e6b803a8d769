"""Label-fraction subsets (p % of the labelled training images) written as split files.

Fine-tuning "with p % of the labels" (BYOL-seg evaluation) uses the DataModules'
ordinary ``split`` mechanism: this module writes ``<dir>/<p>pct/{labeled,unlabeled}.txt`` and a
run selects it with ``data.splits_dir=<dir> data.split=<p>pct``. Two modes:

- ``random`` (default): a seeded random subset. One permutation per seed (``numpy`` PCG64 seeded
  with the seed) is drawn over the sorted pool and the first n(p) entries are taken, so for one
  seed smaller fractions are subsets of larger ones. Each seed gets its own folder
  ``<out>/fractions-random/seed<k>/``; a run reads the folder of its own seed
  (``data.splits_dir=.../fractions-random/seed${seed}``), so "mean over 3 seeds" averages over
  three different subsets as well as three trainings.
- ``first``: the first n(p) images of the pool in its listed order — sorted names for Cityscapes
  (city-alphabetical, so 1 % of Cityscapes is only "aachen"), file order of the id list for VOC —
  which reproduces the reference project's subsets (``sem_seg/datasets/dataset.py``). Folder
  ``<out>/fractions-first/``.

n(p) = max(1, ⌊N · p / 100⌋) for a pool of N images (the reference's ⌊2975 · p / 100⌋).

Command line::

    python -m leseg.data.fractions --dataset cityscapes --root data/synthetic_city \\
        --percents 1 5 10 --mode random --seeds 0 1 2 --out data/splits/synthetic_city
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from leseg.data.cityscapes import list_cityscapes_frames
from leseg.data.io import write_text_atomic
from leseg.data.splits import SplitLists, read_split_file, split_file
from leseg.data.voc import voc_split_file

__all__ = ["MODES", "fraction_count", "fraction_dir", "fraction_name", "fraction_subset",
           "labeled_pool", "write_fraction_splits"]

MODES = ("random", "first")
DATASETS = ("cityscapes", "voc", "camvid")


def fraction_count(pool_size: int, percent: float) -> int:
    """n(p) = max(1, ⌊N · p / 100⌋) labelled images for p % of a pool of N.

    Raises:
        ValueError: N < 1 or p outside (0, 100].
    """
    if pool_size < 1:
        raise ValueError(f"label fraction of an empty pool (N={pool_size})")
    if not 0.0 < float(percent) <= 100.0:
        raise ValueError(f"label percentage must be in (0, 100], got {percent}")
    return max(1, math.floor(pool_size * float(percent) / 100.0 + 1e-9))


def fraction_name(percent: float) -> str:
    """Split name of p %: ``10pct``, ``0.5pct``, ``100pct`` (the value of ``data.split``)."""
    return f"{float(percent):g}pct"


def fraction_dir(out: str | os.PathLike, mode: str, seed: int | None = None) -> Path:
    """``<out>/fractions-random/seed<k>`` (random mode) or ``<out>/fractions-first``.

    Raises:
        ValueError: unknown mode, or random mode without a seed.
    """
    if mode not in MODES:
        raise ValueError(f"fraction mode must be one of {MODES}, got {mode!r}")
    if mode == "random":
        if seed is None:
            raise ValueError("random label fractions need a seed")
        return Path(out) / "fractions-random" / f"seed{int(seed)}"
    return Path(out) / "fractions-first"


def fraction_subset(pool: Sequence[str], percent: float, mode: str = "random",
                    seed: int | None = 0) -> list[str]:
    """The labelled subset for p % of ``pool``.

    Args:
        pool: sample names in their listed order (used by ``first``; ``random`` sorts them first,
            so the subset does not depend on the listing order).
        percent: p in (0, 100].
        mode: ``random`` (seeded permutation, first n(p)) or ``first`` (first n(p) as listed).
        seed: permutation seed (random mode).

    Returns:
        n(p) names: in permutation order (random) or listed order (first).

    Raises:
        ValueError: unknown mode, duplicate names in the pool, p out of range, random without seed.
    """
    if mode not in MODES:
        raise ValueError(f"fraction mode must be one of {MODES}, got {mode!r}")
    if len(set(pool)) != len(pool):
        raise ValueError("label-fraction pool lists some names twice")
    n = fraction_count(len(pool), percent)
    if mode == "first":
        return list(pool[:n])
    if seed is None:
        raise ValueError("random label fractions need a seed")
    ordered = sorted(pool)
    order = np.random.default_rng(int(seed)).permutation(len(ordered))
    return [ordered[i] for i in order[:n]]


def labeled_pool(dataset: str, root: str | os.PathLike, train_set: str = "train") -> list[str]:
    """The labelled training pool in its listed order.

    Cityscapes: the sorted frames of ``leftImg8bit/<train_set>``; VOC: the ids of
    ``ImageSets/Segmentation/<train_set>.txt`` in file order; CamVid: the frames of
    ``<train_set>.txt`` in file order.

    Raises:
        ValueError: unknown dataset.
        FileNotFoundError: the frames / id list are missing (names the expected path).
    """
    if dataset == "cityscapes":
        return list(list_cityscapes_frames(root, train_set))
    if dataset == "voc":
        return read_split_file(voc_split_file(root, train_set))
    if dataset == "camvid":
        from leseg.data.camvid import list_camvid_frames

        return list(list_camvid_frames(root, train_set))
    raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")


def write_fraction_splits(pool: Sequence[str], percents: Sequence[float], out_dir: str | os.PathLike,
                          mode: str = "random", seed: int | None = 0) -> dict[str, SplitLists]:
    """Write ``<out_dir>/<p>pct/{labeled,unlabeled}.txt`` for each p (atomically, sorted names).

    Args:
        pool: labelled pool (see :func:`labeled_pool`).
        percents: the p values.
        out_dir: the splits directory a run reads (``data.splits_dir``), e.g.
            :func:`fraction_dir` ``(…, mode, seed)``.
        mode, seed: see :func:`fraction_subset`.

    Returns:
        split name → :class:`~leseg.data.splits.SplitLists` (labelled and the rest of the pool).

    Raises:
        ValueError: see :func:`fraction_subset`.
    """
    result: dict[str, SplitLists] = {}
    for percent in percents:
        labeled = sorted(fraction_subset(pool, percent, mode, seed))
        chosen = set(labeled)
        unlabeled = sorted(n for n in pool if n not in chosen)
        name = fraction_name(percent)
        for which, names in (("labeled", labeled), ("unlabeled", unlabeled)):
            write_text_atomic(split_file(out_dir, name, which), "".join(f"{n}\n" for n in names))
        result[name] = SplitLists(labeled, unlabeled)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; see the module docstring."""
    parser = argparse.ArgumentParser(
        prog="python -m leseg.data.fractions",
        description="Write label-fraction split files <out>/fractions-random/seed<k>/<p>pct/ or "
                    "<out>/fractions-first/<p>pct/ ({labeled,unlabeled}.txt).")
    parser.add_argument("--dataset", required=True, choices=DATASETS)
    parser.add_argument("--root", required=True, help="dataset root (Cityscapes root or VOC2012)")
    parser.add_argument("--percents", type=float, nargs="+", required=True)
    parser.add_argument("--mode", choices=MODES, default="random")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0],
                        help="one split folder per seed (random mode)")
    parser.add_argument("--train-set", default="train", help="labelled pool (folder / id list)")
    parser.add_argument("--out", default=None,
                        help="splits directory of the dataset (default data/splits/<dataset>)")
    args = parser.parse_args(argv)
    out = Path(args.out or Path("data") / "splits" / args.dataset)
    try:
        pool = labeled_pool(args.dataset, args.root, args.train_set)
        seeds = args.seeds if args.mode == "random" else [None]
        for seed in seeds:
            target = fraction_dir(out, args.mode, seed)
            for name, lists in write_fraction_splits(pool, args.percents, target, args.mode,
                                                     seed).items():
                print(f"{target / name}: {len(lists.labeled)} labeled, "
                      f"{len(lists.unlabeled)} unlabeled")
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
