"""The evaluation task: load a checkpoint, evaluate on a split, write the results.

``python eval.py ckpt_path=<file>`` rebuilds the model from the training config stored in the
checkpoint, evaluates on the same dataset (or the one given with ``data=<name>``), and writes into its
run directory:

- ``metrics.json`` — run identifiers and single-scale and multi-scale+flip results, reported separately;
- ``per_class_iou.csv`` and ``per_class_iou.md`` — IoU per class for both protocols;
- ``confusion_matrix.png`` — row-normalised confusion matrix (single scale);
- ``pred_trainIds/<name>.png`` and ``pred_color/<name>.png`` — predictions.

Offline pipeline stages (``conf/stage/``: SSENet's CAMs, CRF seeds, random walk, …) have their own
entry point, ``python -m leseg.stages <stage> ...`` (:mod:`leseg.stages.entry`).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import numpy as np
from omegaconf import DictConfig

from leseg.callbacks.prediction_writer import PredictionWriter
from leseg.tasks.launch import pin_run_dir
from leseg.utils.checkpoint import load_checkpoint, load_method, training_config
from leseg.utils.instantiate import instantiate_loggers
from leseg.utils.io import atomic_write, atomic_write_json, atomic_write_text
from leseg.utils.logging import get_logger
from leseg.utils.run import run_info
from leseg.utils.task import task_wrapper

log = get_logger(__name__)


def _fmt(x: float) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.2f}"


def per_class_table(class_names: list[str], results: dict[str, dict[str, Any]]) -> tuple[str, str]:
    """CSV and markdown tables of IoU (%) per class, one column per protocol.

    Args:
        class_names: K names.
        results: protocol name → metric dict with ``IoU`` (K floats, NaN = absent) and ``mIoU``.

    Returns:
        ``(csv_text, markdown_text)``.
    """
    protocols = list(results)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["class"] + [f"IoU_{p}" for p in protocols])
    md = ["| class | " + " | ".join(f"IoU {p} (%)" for p in protocols) + " |",
          "|---|" + "---:|" * len(protocols)]
    for k, name in enumerate(class_names):
        vals = [results[p]["IoU"][k] for p in protocols]
        writer.writerow([name] + ["" if math.isnan(v) else f"{v:.6f}" for v in vals])
        md.append(f"| {name} | " + " | ".join(_fmt(v) for v in vals) + " |")
    writer.writerow(["mIoU"] + [f"{results[p]['mIoU']:.6f}" for p in protocols])
    md.append("| **mIoU** | " + " | ".join(f"**{_fmt(results[p]['mIoU'])}**" for p in protocols) + " |")
    return buf.getvalue(), "\n".join(md) + "\n"


def plot_confusion_matrix(confmat: np.ndarray, class_names: list[str], path: str | Path) -> None:
    """Save a row-normalised confusion matrix (rows = ground truth) as a PNG, atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = confmat.astype(np.float64)
    cm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    k = len(class_names)
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * k + 2), max(5, 0.45 * k + 1)))
    im = ax.imshow(cm, cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(k), class_names, rotation=90, fontsize=8)
    ax.set_yticks(range(k), class_names, fontsize=8)
    ax.set_xlabel("prediction")
    ax.set_ylabel("ground truth")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)


def majority_class_miou(confmat: np.ndarray) -> float:
    """mIoU of always predicting the most frequent ground-truth class, from a (K, K) confusion matrix.

    That class gets IoU = its pixel share; every other class present in the ground truth gets 0;
    absent classes are excluded (mmsegmentation's definition). A floor any trained model must beat.
    """
    gt = confmat.sum(axis=1).astype(np.float64)
    if gt.sum() == 0:
        return float("nan")
    return float(gt.max() / gt.sum() / np.count_nonzero(gt))


def _plain_results(result: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in result.items():
        value = value.detach().cpu() if hasattr(value, "detach") else value
        out[key] = value.tolist() if getattr(value, "ndim", 0) else float(value)
    return out


@task_wrapper
def evaluate(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Evaluate ``cfg.ckpt_path`` and write metrics, tables, plot and predictions.

    Raises:
        FileNotFoundError / ValueError: missing or non-leseg checkpoint (see
            :func:`leseg.utils.checkpoint.load_checkpoint`).
        ValueError: the evaluation data has a different number of classes than the checkpoint,
            or a ``stage`` config was given (stages have their own entry, :mod:`leseg.stages.entry`).
    """
    if cfg.get("stage"):  # e.g. the old  python eval.py +stage=ssenet_cams
        raise ValueError("eval.py evaluates a checkpoint; offline stages run with "
                         "python -m leseg.stages <stage> [overrides] (conf/stage/)")
    pin_run_dir(cfg.paths.output_dir)  # DDP ranks started by Lightning reuse rank 0's directory
    ckpt = load_checkpoint(cfg.ckpt_path)
    train_cfg = training_config(ckpt)
    data_cfg = cfg.data if cfg.get("data") else train_cfg.data
    if int(data_cfg.num_classes) != int(train_cfg.data.num_classes):
        raise ValueError(
            f"ckpt_path={cfg.ckpt_path} was trained for {train_cfg.data.num_classes} classes "
            f"({train_cfg.data.name}), but data={data_cfg.name} has {data_cfg.num_classes}"
        )
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)

    datamodule: L.LightningDataModule = hydra.utils.instantiate(data_cfg)
    overrides = {"method.inference": cfg.inference} if cfg.get("inference") else None
    model: L.LightningModule = load_method(ckpt, overrides=overrides, eval_mode=False).module
    out_dir = Path(cfg.paths.output_dir)
    writer = PredictionWriter(str(out_dir), max_images=cfg.get("save_predictions"))
    loggers = instantiate_loggers(cfg.get("logger"))
    trainer: L.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=[writer],
                                                 logger=loggers or False)
    trainer.test(model=model, datamodule=datamodule)

    results = {p: _plain_results(r) for p, r in model.test_results.items()}
    info = {**run_info(train_cfg), "task": "eval", "data": data_cfg.name,
            "split": str(data_cfg.get("split")), "checkpoint": str(cfg.ckpt_path)}
    if trainer.is_global_zero:
        names = list(model.class_names)
        confmat = np.asarray(results["single_scale"].pop("confusion_matrix"))
        info["majority_class_mIoU"] = majority_class_miou(confmat)
        results.get("ms_flip", {}).pop("confusion_matrix", None)
        csv_text, md_text = per_class_table(names, results)
        atomic_write_text(out_dir / "per_class_iou.csv", csv_text)
        atomic_write_text(out_dir / "per_class_iou.md", md_text)
        plot_confusion_matrix(confmat, names, out_dir / "confusion_matrix.png")
        atomic_write_json(out_dir / "metrics.json", {**info, "results": results})
        print(md_text)
    metrics = {f"test/mIoU{'' if p == 'single_scale' else '_' + p}": r["mIoU"]
               for p, r in results.items()}
    return metrics, {"cfg": cfg, "model": model, "datamodule": datamodule, "trainer": trainer}
