"""Audit a mean teacher's pseudo-labels against the ground truth of the unlabeled images.

Semi-supervised runs on datasets whose "unlabeled" images do have masks (the synthetic datasets,
or a labeled set split into labeled / unlabeled lists) can measure what the unsupervised loss is
taught: per class, how many pixels the S4MC filter (refinement + DPA, S4MC ``loss_helper.py``)
keeps at a given training progress, and how many of those carry the right class. A class whose
kept pixels all carry another class is being *unlearned* on the unlabeled stream (confirmation
bias), which no amount of extra training on that stream can fix::

    python -m leseg.stages.pseudo_label_audit --ckpt <s4mc run>/checkpoints/last.ckpt \\
        [--progress 0 0.5 1] [--max-images N] [--json audit.json]
    python -m leseg.stages pseudo_label_audit ckpt_path=<s4mc run>/checkpoints/last.ckpt \\
        [stage.progress=[0,0.5,1]] [stage.max_images=N]      # report and summary in the run dir

It rebuilds the method and the DataModule from the training config stored in the checkpoint,
evaluates the EMA teacher (the student before the warm-up ended) in eval mode on the split's
unlabeled images with the validation transforms, and prints one table per progress value.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

import hydra
import numpy as np
import torch
from omegaconf import DictConfig

from leseg.components.pseudo_labels import DEFAULT_BETA, s4mc_pseudo_labels


def pseudo_label_confusion(teacher_probs: torch.Tensor, target: torch.Tensor,
                           prior: torch.Tensor, progress: Sequence[float],
                           drop_percent: float = 60.0, beta: float = DEFAULT_BETA,
                           connectivity: int = 4, ignore_index: int = 255,
                           num_neighbours: int = 1, partition: str = "global"
                           ) -> tuple[np.ndarray, dict[float, np.ndarray]]:
    """Confusion matrices of the teacher's argmax and of the kept S4MC pseudo-labels.

    Args:
        teacher_probs: (B, K, H, W) float teacher softmax.
        target: (B, H, W) int64 ground truth in [0, K) ∪ {ignore_index}; ignored pixels are left
            out of every count.
        prior: (K,) float neighbour prior E of the refinement.
        progress: training progress values in [0, 1] at which to apply DPA.
        drop_percent, beta, connectivity, ignore_index, num_neighbours, partition: as in
            :func:`~leseg.components.pseudo_labels.s4mc_pseudo_labels` (``partition``: the
            DPA threshold over the batch, ``global``, or per pseudo-label class, ``per_class``).

    Returns:
        ``(argmax, kept)``: (K, K) int64 counts, rows = ground truth, columns = the teacher's
        argmax over all labeled pixels; and per progress value the same counts over the pixels
        the filter keeps (columns = their pseudo-label).

    Raises:
        ValueError: ``teacher_probs`` and ``target`` sizes differ.
    """
    b, k, h, w = teacher_probs.shape
    if tuple(target.shape) != (b, h, w):
        raise ValueError(f"target shape {tuple(target.shape)} does not match teacher_probs "
                         f"{tuple(teacher_probs.shape)} (expected ({b}, {h}, {w}))")
    gt = target.long()
    labeled = gt != ignore_index
    classes = teacher_probs.argmax(dim=1)

    def counts(mask: torch.Tensor, pred: torch.Tensor) -> np.ndarray:
        idx = gt[mask] * k + pred[mask]
        return torch.bincount(idx, minlength=k * k).reshape(k, k).cpu().numpy().astype(np.int64)

    valid = torch.ones_like(labeled)
    kept = {}
    for p in progress:
        labels, _, _ = s4mc_pseudo_labels(teacher_probs, valid, prior, float(p), drop_percent,
                                          beta, connectivity, ignore_index, num_neighbours,
                                          classes=classes, partition=partition)
        kept[float(p)] = counts(labeled & (labels != ignore_index), labels)
    return counts(labeled, classes), kept


def audit_table(argmax: np.ndarray, kept: dict[float, np.ndarray],
                class_names: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """Markdown report and JSON-ready summary of :func:`pseudo_label_confusion` counts.

    Per class (classes absent from both ground truth and predictions are left out): ground-truth
    share of pixels, share predicted by the argmax, argmax IoU, and per progress value the kept
    share of the class's pixels, their *recall* (kept with the right class / class pixels) and
    the *precision* of the pseudo-label (right / pixels kept with that class), all in %.
    """
    total = max(int(argmax.sum()), 1)
    tp = np.diag(argmax)
    union = argmax.sum(0) + argmax.sum(1) - tp
    present = [c for c in range(len(class_names)) if argmax[c].sum() or argmax[:, c].sum()]
    head = "| class | GT share | argmax share | argmax IoU |"
    rule = "|---|---:|---:|---:|"
    for p in kept:
        head += f" kept @{p:g} | recall @{p:g} | precision @{p:g} |"
        rule += "---:|---:|---:|"
    lines, summary = [head, rule], {"pixels": total, "progress": list(kept), "classes": {}}

    def pct(a: float, b: float) -> float:
        return float("nan") if b == 0 else 100.0 * a / b

    for c in present:
        row = {"gt_share": pct(argmax[c].sum(), total), "argmax_share": pct(argmax[:, c].sum(), total),
               "argmax_iou": pct(tp[c], union[c])}
        cells = [row["gt_share"], row["argmax_share"], row["argmax_iou"]]
        for p, m in kept.items():
            row[f"kept@{p:g}"] = pct(m[c].sum(), argmax[c].sum())
            row[f"recall@{p:g}"] = pct(m[c, c], argmax[c].sum())
            row[f"precision@{p:g}"] = pct(m[c, c], m[:, c].sum())
            cells += [row[f"kept@{p:g}"], row[f"recall@{p:g}"], row[f"precision@{p:g}"]]
        summary["classes"][class_names[c]] = row
        lines.append(f"| {class_names[c]} | " + " | ".join(
            "—" if np.isnan(v) else f"{v:.1f}" for v in cells) + " |")
    for p, m in kept.items():
        summary[f"kept@{p:g}"] = pct(m.sum(), total)
        summary[f"accuracy@{p:g}"] = pct(np.trace(m), m.sum())
    return "\n".join(lines), summary


def audit(ckpt: str, progress: Sequence[float] = (0.0, 0.5, 1.0), max_images: int | None = None,
          batch: int = 4, device: str | None = None, json_path: str | None = None,
          md: str | None = None, command: str | None = None) -> dict[str, Any]:
    """Audit the pseudo-labels of an S4MC checkpoint's teacher (module docstring).

    Args:
        ckpt: an S4MC checkpoint written by ``train.py``.
        progress: training progress values in [0, 1] at which DPA is applied.
        max_images: only the first N unlabeled images (None: all).
        batch: images per forward pass.
        device: where the teacher runs (None: cuda when available).
        json_path, md: write the JSON summary / the markdown report there (atomically).
        command: the command line quoted in the report's first line (None: this call).

    Returns:
        The JSON summary of :func:`audit_table` plus ``checkpoint``, ``images``,
        ``drop_percent``, ``dpa_partition``.

    Raises:
        FileNotFoundError / ValueError: missing or non-leseg checkpoint, or a checkpoint of
            another method (names the file and its ``method.name``).
    """
    from torch.utils.data import DataLoader

    from leseg.utils.checkpoint import load_method
    from leseg.utils.io import atomic_write_json, atomic_write_text
    from leseg.utils.resolvers import register_resolvers

    register_resolvers()
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    progress = [float(q) for q in progress]

    def s4mc_only(cfg: DictConfig) -> None:
        if cfg.method.get("name") != "s4mc":
            raise ValueError(f"--ckpt {ckpt}: pseudo_label_audit needs an S4MC checkpoint "
                             f"(method.name=s4mc), got method.name={cfg.method.get('name')!r}")

    module, cfg = load_method(ckpt, check=s4mc_only, eval_mode=False)
    teacher = module.eval_net.to(device).eval()
    dm = hydra.utils.instantiate(cfg.data)
    dm.setup("fit")
    names = list(dm.unlabeled_dataset.names)
    if max_images is not None:
        names = names[: max_images]
    dataset = dm._make(dm.train_set, "eval", dm.val_transforms, ids=names,
                       ids_source="the split's unlabeled list")
    argmax = None
    kept: dict[float, np.ndarray] = {}
    with torch.no_grad():
        for sample in DataLoader(dataset, batch_size=batch):
            images, labels = sample["image"], sample["label"]
            probs = teacher(images.to(device)).float().softmax(dim=1)
            if probs.shape[-2:] != labels.shape[-2:]:
                probs = torch.nn.functional.interpolate(probs, size=labels.shape[-2:],
                                                        mode="bilinear", align_corners=False)
            a, k = pseudo_label_confusion(probs, labels.to(device), module.prior,
                                          progress, module.drop_percent, module.beta,
                                          module.connectivity, module.ignore_index,
                                          module.num_neighbours, module.dpa_partition)
            argmax = a if argmax is None else argmax + a
            kept = {q: kept.get(q, 0) + m for q, m in k.items()}
    table, summary = audit_table(argmax, kept, list(dm.class_names))
    summary.update({"checkpoint": str(ckpt), "images": len(names),
                    "drop_percent": float(module.drop_percent),
                    "dpa_partition": module.dpa_partition})
    if command is None:
        command = (f"python -m leseg.stages.pseudo_label_audit --ckpt {ckpt} --progress "
                   f"{' '.join(f'{q:g}' for q in progress)}")
    report = (f"Pseudo-label audit of `{ckpt}` on {len(names)} unlabeled images (%, S4MC "
              f"filter P = {module.drop_percent:g}, DPA partition {module.dpa_partition}; "
              f"`kept`, `recall` and `precision` at training progress @p): `{command}`\n\n"
              f"{table}\n")
    print(report)
    print(json.dumps({k: v for k, v in summary.items() if k != "classes"}))
    if json_path:
        atomic_write_json(json_path, summary)
    if md:
        atomic_write_text(md, report)
    return summary


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Command-line entry point (see the module docstring); returns the JSON summary."""
    p = argparse.ArgumentParser(prog="python -m leseg.stages.pseudo_label_audit",
                                description=__doc__.split("\n")[0])
    p.add_argument("--ckpt", required=True, help="an S4MC checkpoint written by train.py")
    p.add_argument("--progress", type=float, nargs="+", default=[0.0, 0.5, 1.0])
    p.add_argument("--max-images", type=int, default=None)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--json", default=None, help="write the summary here (atomically)")
    p.add_argument("--md", default=None, help="write the report here (atomically)")
    args = p.parse_args(argv)
    command = ("python -m leseg.stages.pseudo_label_audit "
               f"{' '.join(argv if argv is not None else sys.argv[1:])}")
    return audit(args.ckpt, args.progress, args.max_images, args.batch, args.device, args.json,
                 args.md, command)


if __name__ == "__main__":
    main(sys.argv[1:])
