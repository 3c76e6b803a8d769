"""CLI: ``python -m leseg.data.synthetic {city,voc} ROOT [--num-train N] [--num-val N]
[--height H] [--width W] [--seed S]`` → ``ensure_synthetic`` (generate unless already there)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from .generate import ensure_synthetic


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, ensure the dataset exists, print its root; exit code 2 on a ValueError."""
    parser = argparse.ArgumentParser(
        prog="python -m leseg.data.synthetic",
        description="Generate the built-in synthetic_city (Cityscapes layout) or synthetic_voc "
                    "(VOC2012 layout) dataset into ROOT, unless it is already there.")
    parser.add_argument("kind", choices=["city", "voc"], help="which dataset")
    parser.add_argument("root", help="dataset folder (for voc: the VOC2012 folder)")
    for flag in ("num-train", "num-val", "height", "width", "seed"):
        parser.add_argument(f"--{flag}", type=int, default=None,
                            help="generator default if omitted")
    args = parser.parse_args(argv)
    params = {k: v for k, v in vars(args).items() if k not in ("kind", "root") and v is not None}
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        root = ensure_synthetic(args.kind, args.root, **params)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
