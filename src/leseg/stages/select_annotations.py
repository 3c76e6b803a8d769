"""Choose which Cityscapes-layout images to annotate, without labels (Hoyer et al., CVPR 2021 §3.4).

Writes split files that ``data.split=`` reads directly::

    python -m leseg.stages.select_annotations --root data/cityscapes_1024x512 \\
        --teacher <ssdepth run>/checkpoints/last.ckpt [--student <depth ckpt>] \\
        --budget 25 50 100 --seed 42 --out data/splits/cityscapes_ds_us
    python train.py experiment=... data.splits_dir=data/splits/cityscapes_ds_us data.split=100

For every candidate image of ``leftImg8bit/<set>`` the frozen depth **teacher** gives decoder
stage-3 features (diversity) and, with a **student** depth network, the depth error of the student
against the teacher (uncertainty); farthest-point sampling on the biased distances
(:mod:`leseg.components.selection`) grows one nested selection over the sorted budgets, starting
from ``--initial`` (a labeled.txt) or from a seeded random image. For each budget ``n`` it writes,
atomically, ``<out>/<n>/labeled.txt`` and ``unlabeled.txt`` (sorted sample names, the layout of
:mod:`leseg.data.splits`) and ``<out>/<n>/selection.json`` (selection order, errors, settings).

Reference differences: the reference trains a fresh ResNet-50 label-selection student on the
current labeled set between budgets (segmentation CE + berHu pseudo-depth, exp 211); here the
student is any depth checkpoint you give (train it between calls and pass the previous
``labeled.txt`` as ``--initial``). Without ``--student`` the error term is 0: pure diversity (DS).
The teacher's disparity is min-max normalised per image before the error (the reference's
pseudo-depth, on which its 0.07 far threshold is stated), the student's is used as predicted: give
a student that predicts on that normalised scale (e.g. distilled with berHu from the teacher, as
the reference's label-selection student is).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from leseg.components.selection import (
    depth_error,
    farthest_point_sampling,
    pairwise_distances,
    selection_features,
)
from leseg.data.cityscapes import list_cityscapes_frames
from leseg.data.io import read_image
from leseg.data.splits import read_split_file, split_file, write_split
from leseg.models.depth.segmentation import DepthDisparity
from leseg.utils.io import atomic_write_json

__all__ = ["candidate_statistics", "main", "select_annotations"]


def _load_batch(paths: Sequence[Path], size: tuple[int, int] | None) -> torch.Tensor:
    images = []
    for path in paths:
        x = torch.from_numpy(np.ascontiguousarray(read_image(path))).permute(2, 0, 1).float() / 255
        if size is not None and tuple(x.shape[-2:]) != tuple(size):
            x = F.interpolate(x[None], size=size, mode="bilinear", align_corners=False,
                              antialias=True)[0]
        images.append(x)
    shapes = {tuple(x.shape) for x in images}
    if len(shapes) > 1:
        raise ValueError(f"images of different sizes {sorted(shapes)} among {[str(p) for p in paths]}"
                         f"; give --height/--width")
    return torch.stack(images)


@torch.no_grad()
def candidate_statistics(paths: Sequence[Path], teacher: DepthDisparity,
                         student: DepthDisparity | None = None,
                         size: tuple[int, int] | None = None, batch_size: int = 4,
                         device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor | None]:
    """Selection features (N, D) and, with a student, depth errors (N,) of the candidates.

    Images are read as RGB in [0, 1] and resized to ``size`` (H, W) when given (multiples of 32).
    """
    feats, errors = [], []
    for start in range(0, len(paths), batch_size):
        x = _load_batch(paths[start:start + batch_size], size).to(device)
        out = teacher.outputs(x)
        feats.append(F.adaptive_avg_pool2d(out[("features", 3)].float(), (4, 8)).cpu())
        if student is not None:
            errors.append(depth_error(student(x), out[("disp", 0)]).cpu())
    features = selection_features(torch.cat(feats))
    return features, (torch.cat(errors) if student is not None else None)


def select_annotations(root: str | Path, teacher: str | Path, budgets: Sequence[int],
                       out: str | Path, set_name: str = "train", student: str | Path | None = None,
                       initial: str | Path | None = None, seed: int = 0,
                       error_weight: float = 1000.0, encoder: str = "resnet101",
                       output_stride: int = 16,
                       decoder_channels: Sequence[int] = (64, 128, 128, 256, 256),
                       aspp: bool = True, size: tuple[int, int] | None = None,
                       batch_size: int = 4, device: str = "cpu") -> dict[int, list[str]]:
    """Select nested annotation sets and write their split files (module docstring).

    Args:
        root: Cityscapes-layout root; candidates are the frames of ``leftImg8bit/<set_name>``.
        teacher: depth checkpoint (SelfSupervisedDepth run or exported file) of the frozen teacher.
        budgets: labeled counts to write (sorted; each ≥ the initial set, ≤ the candidates).
        out: splits directory (``data.splits_dir``).
        student: depth checkpoint of the student for the error term (None: DS only).
        initial: a split file whose names are already labeled (the set starts from them).
        seed: seed of the first random pick (empty initial set).
        error_weight: λ of d' = d + λ · err (1000; 0 = pure diversity).
        encoder, output_stride, decoder_channels, aspp: the depth runs' architecture.
        size: (H, W) the images are resized to (None: as stored).

    Returns:
        budget → the selected names in selection order.

    Raises:
        FileNotFoundError: missing root/frames/checkpoint/initial file (names it).
        ValueError: a budget out of range, initial names that are not candidates, or weights
            that do not fit the architecture.
    """
    frames = list_cityscapes_frames(root, set_name)
    names = list(frames)
    budgets = sorted({int(b) for b in budgets})
    if not budgets:
        raise ValueError("give at least one --budget")
    start: list[int] = []
    if initial is not None:
        given = read_split_file(initial)
        unknown = [n for n in given if n not in frames]
        if unknown:
            raise ValueError(f"{initial}: {len(unknown)} name(s) are not frames of "
                             f"{root}/leftImg8bit/{set_name}: {unknown[:5]}")
        start = [names.index(n) for n in given]
    if budgets[0] < len(start) or budgets[-1] > len(names) or budgets[0] < 1:
        raise ValueError(f"budgets {budgets} must lie in [{max(1, len(start))}, {len(names)}] "
                         f"({len(start)} already labeled, {len(names)} candidates)")
    arch = {"encoder": encoder, "output_stride": output_stride,
            "decoder_channels": tuple(decoder_channels), "aspp": aspp,
            "input_mean": None, "input_std": None}
    teacher_net = DepthDisparity(str(teacher), **arch).to(device)
    student_net = DepthDisparity(str(student), **arch).to(device) if student else None
    features, errors = candidate_statistics([frames[n] for n in names], teacher_net,
                                            student_net, size, batch_size, device)
    distances = pairwise_distances(features)
    bias = None if errors is None else float(error_weight) * errors
    generator = torch.Generator().manual_seed(int(seed))
    result: dict[int, list[str]] = {}
    chosen = start
    for budget in budgets:
        chosen = farthest_point_sampling(distances, budget, chosen, bias, generator=generator)
        picked = [names[i] for i in chosen]
        result[budget] = picked
        labeled = sorted(picked)
        rest = sorted(set(names) - set(picked))
        write_split(out, budget, labeled, rest)
        info: dict[str, Any] = {
            "method": "ds_us" if errors is not None and error_weight > 0 else "ds",
            "order": picked, "initial": len(start), "seed": int(seed),
            "error_weight": float(error_weight), "teacher": str(teacher),
            "student": None if student is None else str(student), "root": str(root),
            "set": set_name, "candidates": len(names)}
        if errors is not None:
            info["errors"] = {names[i]: float(errors[i]) for i in chosen}
        atomic_write_json(Path(out) / str(budget) / "selection.json", info)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Command line (see the module docstring); exit code 2 on bad input."""
    parser = argparse.ArgumentParser(
        prog="python -m leseg.stages.select_annotations",
        description="Unsupervised choice of images to annotate (Hoyer et al. CVPR 2021): depth "
                    "feature diversity + depth-error bias, farthest-point sampling; writes "
                    "<out>/<n>/{labeled,unlabeled}.txt for data.split=<n>.")
    parser.add_argument("--root", required=True, help="Cityscapes-layout root")
    parser.add_argument("--set", default="train", help="leftImg8bit/<set> (default train)")
    parser.add_argument("--teacher", required=True, help="depth checkpoint of the teacher")
    parser.add_argument("--student", default=None, help="depth checkpoint of the student")
    parser.add_argument("--budget", type=int, nargs="+", required=True, help="labeled counts")
    parser.add_argument("--out", required=True, help="splits directory (data.splits_dir)")
    parser.add_argument("--initial", default=None, help="labeled.txt of the current selection")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--error-weight", type=float, default=1000.0)
    parser.add_argument("--encoder", default="resnet101")
    parser.add_argument("--output-stride", type=int, default=16)
    parser.add_argument("--decoder-channels", type=int, nargs=5, default=[64, 128, 128, 256, 256])
    parser.add_argument("--no-aspp", action="store_true")
    parser.add_argument("--height", type=int, default=None)
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    if (args.height is None) != (args.width is None):
        parser.error("give both --height and --width, or neither")
    try:
        result = select_annotations(
            args.root, args.teacher, args.budget, args.out, args.set, args.student, args.initial,
            args.seed, args.error_weight, args.encoder, args.output_stride,
            args.decoder_channels, not args.no_aspp,
            None if args.height is None else (args.height, args.width), args.batch_size,
            args.device)
    except (FileNotFoundError, KeyError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for budget, names in result.items():
        print(f"{split_file(args.out, budget, 'labeled')}: {len(names)} labeled")
    return 0


if __name__ == "__main__":
    sys.exit(main())
