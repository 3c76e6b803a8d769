"""S5 visualisation: a PNG grid of image | suggestion | prediction | ground truth for N val images.

Command (key=value arguments; ``data.*`` / ``method.*`` keys override the checkpoint's config)::

    python -m leseg.visualize_s5 ckpt_path=<run>/checkpoints/last.ckpt n=8 \
        [out=<png>] [device=cpu|cuda] [wandb_project=<name>] [data.root=...]

The model and the (binarised) validation data are rebuilt from the training config stored in the
checkpoint (as eval.py does); the first ``n`` validation images in loader order are shown, with
the deterministic per-image class choice and suggestion of validation. Columns:

1. the RGB image, titled with the image name and the chosen class;
2. the suggestion: each of its k channels (values in [0, 1]) as an overlay, channel 0 red, 1 cyan,
   2 yellow, 3 violet (clicks: positive red, negative cyan);
3. the prediction (foreground probability > 0.5) in green, with its foreground IoU;
4. the ground truth (the chosen class) in blue; ignored pixels grey.

The PNG is written atomically (default ``<run dir>/s5_val_grid.png``). When a wandb run is active
(``wandb.run``; or one is started with ``wandb_project=...``, honouring ``WANDB_MODE``) the same
grid is logged as ``val/s5_grid``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from PIL import Image, ImageDraw

from leseg.callbacks.common import denormalize
from leseg.utils.checkpoint import load_method
from leseg.utils.io import atomic_write

__all__ = ["collect_examples", "main", "render_grid", "write_png"]

KEYS = ("ckpt_path", "n", "out", "device", "wandb_project")
_TITLE_H = 14
_CHANNEL_COLOURS = ((255, 30, 30), (0, 230, 230), (255, 220, 0), (200, 0, 255))
_PAD = 2


def _overlay(image: np.ndarray, alpha: np.ndarray, colour: Sequence[int],
             strength: float = 0.6) -> np.ndarray:
    a = (np.clip(alpha, 0.0, 1.0) * strength)[..., None]
    return (image * (1 - a) + np.asarray(colour, dtype=np.float32) * a).round().astype(np.uint8)


def render_grid(examples: Sequence[dict[str, Any]],
                class_names: Sequence[str] | None = None) -> np.ndarray:
    """Render examples into one (H_total, W_total, 3) uint8 RGB grid, one row per example.

    Args:
        examples: dicts with ``image`` (H, W, 3) uint8, ``suggestion`` (k, H, W) float in [0, 1]
            (k may be 0), ``prediction`` (H, W) bool, ``label`` (H, W) int in {0, 1, 255},
            ``name`` str, ``class_id`` int.
        class_names: source class names for the titles (trainId → name); None prints ids.

    Raises:
        ValueError: no examples.
    """
    if not examples:
        raise ValueError("render_grid: no examples to draw")
    tiles = []
    for ex in examples:
        img = ex["image"].astype(np.float32)
        label = np.asarray(ex["label"])
        sugg = np.asarray(ex["suggestion"], dtype=np.float32)
        sugg_img = img.copy()
        for c in range(sugg.shape[0]):  # channel c in _CHANNEL_COLOURS[c] (click: +red, -cyan)
            sugg_img = _overlay(sugg_img, sugg[c], _CHANNEL_COLOURS[c % len(_CHANNEL_COLOURS)])
        gt = label == 1
        pred = np.asarray(ex["prediction"], dtype=bool)
        valid = label != 255
        union = ((pred | gt) & valid).sum()
        iou = ((pred & gt) & valid).sum() / union if union else 1.0
        gt_img = _overlay(img, gt.astype(np.float32), (40, 90, 255), 0.7)
        gt_img[~valid] = (128, 128, 128)
        cid = int(ex["class_id"])
        cname = class_names[cid] if class_names is not None and 0 <= cid < len(class_names) \
            else str(cid)
        panels = [(img.astype(np.uint8), f"{ex['name']} [{cname}]"),
                  (sugg_img.astype(np.uint8), f"suggestion (k={sugg.shape[0]})"),
                  (_overlay(img, pred.astype(np.float32), (30, 220, 30), 0.7),
                   f"prediction IoU {iou:.2f}"),
                  (gt_img, "ground truth")]
        tiles.append([_titled(p, t) for p, t in panels])
    height = max(t.shape[0] for row in tiles for t in row)
    widths = [max(row[c].shape[1] for row in tiles) for c in range(4)]
    canvas = np.full((len(tiles) * (height + _PAD) + _PAD, sum(widths) + 5 * _PAD, 3), 255,
                     dtype=np.uint8)
    for r, row in enumerate(tiles):
        x = _PAD
        for c, tile in enumerate(row):
            y = _PAD + r * (height + _PAD)
            canvas[y:y + tile.shape[0], x:x + tile.shape[1]] = tile
            x += widths[c] + _PAD
    return canvas


def _titled(panel: np.ndarray, title: str) -> np.ndarray:
    head = Image.new("RGB", (panel.shape[1], _TITLE_H), (255, 255, 255))
    ImageDraw.Draw(head).text((2, 1), title, fill=(0, 0, 0))
    return np.concatenate([np.asarray(head), panel], axis=0)


def write_png(grid: np.ndarray, path: str | Path) -> Path:
    """Write an (H, W, 3) uint8 grid as PNG atomically; returns the path."""
    path = Path(path)
    with atomic_write(path) as f:
        Image.fromarray(grid).save(f, format="PNG")
    return path


@torch.no_grad()
def collect_examples(module: Any, loader: Any, n: int, device: str | torch.device = "cpu"
                     ) -> list[dict[str, Any]]:
    """Run an S5 module on the first ``n`` samples of ``loader`` (deterministic suggestions).

    Returns:
        ``n`` (or fewer) dicts as :func:`render_grid` expects.
    """
    module.eval().to(device)
    out: list[dict[str, Any]] = []
    for batch in loader:
        batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        batch["suggestion"] = module.make_suggestions(batch["label"], batch["name"],
                                                      training=False)
        fg = module.predict_foreground(batch)
        for i in range(fg.shape[0]):
            if len(out) >= n:
                return out
            out.append({"image": denormalize(batch["image"][i]),
                        "suggestion": batch["suggestion"][i].float().cpu().numpy(),
                        "prediction": (fg[i] > 0.5).cpu().numpy(),
                        "label": batch["label"][i].cpu().numpy(),
                        "name": str(batch["name"][i]),
                        "class_id": int(batch["class_id"][i]) if "class_id" in batch else -1})
        if len(out) >= n:
            break
    return out


def _parse(argv: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    args: dict[str, str] = {}
    overrides: list[str] = []
    for item in argv:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"visualize_s5: arguments are key=value, got {item!r}")
        if key.startswith(("data.", "method.")):
            overrides.append(item)
        elif key in KEYS:
            args[key] = value
        else:
            raise SystemExit(f"visualize_s5: unknown key {key!r}; known: {list(KEYS)} and "
                             f"data.* / method.* overrides")
    if "ckpt_path" not in args:
        raise SystemExit("visualize_s5: ckpt_path=<checkpoint> is required")
    return args, overrides


def main(argv: Sequence[str] | None = None) -> Path:
    """Entry point (see the module docstring); returns the written PNG path."""
    args, overrides = _parse(sys.argv[1:] if argv is None else argv)
    n = int(args.get("n", 8))
    if n < 1:
        raise SystemExit(f"visualize_s5: n must be >= 1, got {n}")
    def s5_only(cfg: Any) -> None:
        if "suggestion" not in cfg.method:
            raise SystemExit(f"visualize_s5: {args['ckpt_path']} is not an S5 checkpoint "
                             f"(method {cfg.method.get('name')!r})")

    module, cfg = load_method(args["ckpt_path"], overrides=overrides, check=s5_only)
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("validate")
    examples = collect_examples(module, datamodule.val_dataloader(), n,
                                args.get("device", "cpu"))
    names = getattr(datamodule, "source_class_names", None)
    grid = render_grid(examples, names)
    out = Path(args.get("out") or Path(args["ckpt_path"]).resolve().parent.parent
               / "s5_val_grid.png")
    write_png(grid, out)
    _log_wandb(grid, args.get("wandb_project"), cfg)
    print(f"wrote {out} ({len(examples)} images)")
    return out


def _log_wandb(grid: np.ndarray, project: str | None, cfg: Any) -> None:
    try:
        import wandb
    except ImportError:  # pragma: no cover - wandb is a dependency
        return
    started = False
    if wandb.run is None and project:
        wandb.init(project=project, name=f"{cfg.get('experiment_name', 's5')}-visualize",
                   job_type="visualize")
        started = True
    if wandb.run is not None:
        wandb.log({"val/s5_grid": wandb.Image(grid, caption="image | suggestion | prediction | "
                                                        "ground truth")})
    if started:
        wandb.finish()


if __name__ == "__main__":
    main()
