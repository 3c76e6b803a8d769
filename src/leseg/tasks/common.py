"""Pieces shared by the train and eval tasks: run metadata, launch checks, checkpoint loading."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig


def run_info(cfg: DictConfig | dict) -> dict[str, Any]:
    """The identifiers of a run: experiment, method, model, data, split, seed (for metrics.json)."""
    get = cfg.get
    data = get("data") or {}
    return {
        "task": get("task_name"),
        "experiment": get("experiment_name"),
        "method": (get("method") or {}).get("name"),
        "model": (get("model") or {}).get("name"),
        "data": data.get("name"),
        "split": str(data.get("split")),
        "seed": get("seed"),
    }


def is_multirun() -> bool:
    """True inside a Hydra multirun job."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def is_cluster_job() -> bool:
    """True inside a multirun job started by Hydra's submitit SLURM launcher.

    Such a job is one SLURM job per sweep point whose tasks (one per GPU, ``tasks_per_node``) are
    started by SLURM itself; Lightning's SLURM environment then wires up DDP without relaunching
    the script, so a multi-GPU trainer is fine there.
    """
    if not HydraConfig.initialized():
        return False
    try:
        target = str(HydraConfig.get().launcher.get("_target_", ""))
    except Exception:  # no launcher node (compose API)
        return False
    return "submitit" in target.lower() and "slurm" in target.lower()


def check_launch(cfg: DictConfig) -> None:
    """Refuse a launch that cannot work: Lightning's DDP re-launch inside a Hydra multirun.

    Lightning's ``ddp`` strategy re-executes ``sys.argv`` for ranks 1..N-1; inside a multirun the
    argv still holds the sweep, so every rank would start its own sweep (LHT issue #393). Jobs of
    the submitit SLURM launcher are allowed (:func:`is_cluster_job`): SLURM starts their ranks.

    Raises:
        ValueError: for ``-m`` together with a multi-device trainer, saying what to do instead.
    """
    trainer = cfg.get("trainer") or {}
    devices = trainer.get("devices", 1)
    multi = devices == -1 or (isinstance(devices, int) and devices > 1) or (
        not isinstance(devices, int | str) and len(devices) > 1)
    if is_multirun() and multi and str(trainer.get("strategy", "auto")).startswith("ddp") \
            and not is_cluster_job():
        raise ValueError(
            "A Hydra multirun (-m) cannot use a multi-device DDP trainer: Lightning would relaunch "
            "the whole sweep on every rank. Sweep with single-device jobs (trainer=gpu), or run each "
            "multi-GPU job on its own (python train.py trainer=ddp ...) or through a cluster "
            "launcher (hydra/launcher=submitit_slurm)."
        )


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a leseg checkpoint with ``weights_only=True`` (no code runs while loading).

    Returns:
        The checkpoint dict; ``ckpt["hyper_parameters"]["config"]`` is the training config.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a leseg checkpoint (no stored training config).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ckpt_path: no checkpoint file at {path}")
    ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    hp = ckpt.get("hyper_parameters") or {}
    if "config" not in hp:
        raise ValueError(
            f"ckpt_path={path} is not a leseg training checkpoint: it has no stored training config "
            "(hyper_parameters.config). Checkpoints written by train.py have one."
        )
    return ckpt


def find_last_checkpoint(output_dir: str | Path, siblings: bool = True) -> Path | None:
    """The checkpoint ``ckpt_path=last`` means for a run writing into ``output_dir``.

    Order: ``<output_dir>/checkpoints/last.ckpt`` if it exists (a rerun into the same directory:
    ``hydra.run.dir=<old run>``, a requeued SLURM job); else, with ``siblings``, the most recently
    modified ``<output_dir>/../*/checkpoints/last.ckpt``, i.e. the newest run of the same
    experiment, data split and seed (single-run directories are
    ``.../<experiment>/<data>-<split>/seed<seed>/<time>``). Multirun jobs pass
    ``siblings=False``: their siblings are other sweep points. None when there is none.
    """
    output_dir = Path(output_dir)
    own = output_dir / "checkpoints" / "last.ckpt"
    if own.is_file():
        return own
    if not siblings:
        return None
    candidates = [p for p in output_dir.parent.glob("*/checkpoints/last.ckpt") if p.is_file()]
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None


def resolve_ckpt_path(cfg: DictConfig) -> str | None:
    """``cfg.ckpt_path`` with ``last`` replaced by :func:`find_last_checkpoint` (None if none).

    ``ckpt_path=last`` with no earlier run starts from scratch with a warning, so a preemptible
    job can always be (re)submitted with ``ckpt_path=last``; in a multirun only the job's own
    directory counts. Any other value must be a file.

    Raises:
        FileNotFoundError: ``ckpt_path`` names a file that does not exist.
    """
    value = cfg.get("ckpt_path")
    if value is None:
        return None
    if str(value) == "last":
        found = find_last_checkpoint(cfg.paths.output_dir, siblings=not is_multirun())
        if found is None:
            import warnings

            warnings.warn(f"ckpt_path=last: no checkpoints/last.ckpt in {cfg.paths.output_dir} or "
                          f"its sibling runs {Path(cfg.paths.output_dir).parent}/*/; starting from "
                          "scratch", stacklevel=2)
            return None
        return str(found)
    if not Path(value).is_file():
        raise FileNotFoundError(f"ckpt_path: no checkpoint file at {value}")
    return str(value)


def stored_wandb_id(ckpt_path: str | Path | None) -> str | None:
    """The wandb run id stored in a leseg checkpoint's training config (None if absent)."""
    if ckpt_path is None:
        return None
    try:
        config = load_checkpoint(ckpt_path)["hyper_parameters"]["config"]
    except ValueError:
        return None
    return ((config.get("logger") or {}).get("wandb") or {}).get("id")


WANDB_ID_FILE = "wandb_run_id.txt"


def set_wandb_resume(cfg: DictConfig, ckpt_path: str | Path | None) -> str | None:
    """Fix the wandb run id of a run so that a resumed run continues the same wandb run.

    The id is, in order: ``logger.wandb.id`` when given; the id stored in the resumed checkpoint's
    config; the id in ``<output_dir>/wandb_run_id.txt``; a new random 8-character id. It is written
    to ``cfg.logger.wandb.id`` (so it travels in every checkpoint's stored config) with
    ``resume: allow``, and to ``<output_dir>/wandb_run_id.txt`` (rank 0). Nothing happens without
    a ``logger.wandb`` entry.

    Returns:
        The id, or None without a wandb logger.
    """
    import secrets

    from lightning.pytorch.utilities import rank_zero_only
    from omegaconf import open_dict

    from leseg.utils.io import atomic_write_text

    wandb_cfg = (cfg.get("logger") or {}).get("wandb")
    if not wandb_cfg:
        return None
    id_file = Path(cfg.paths.output_dir) / WANDB_ID_FILE
    run_id = wandb_cfg.get("id") or stored_wandb_id(ckpt_path)
    if not run_id and id_file.is_file():
        run_id = id_file.read_text().strip() or None
    run_id = str(run_id or secrets.token_hex(4))
    with open_dict(cfg):
        cfg.logger.wandb.id = run_id
        cfg.logger.wandb.resume = "allow"
    if rank_zero_only.rank == 0:
        atomic_write_text(id_file, run_id + "\n")
    return run_id


def resume_callbacks(cfg: DictConfig, callbacks: list) -> list:
    """Callbacks every training run gets for exact resume (appended to ``callbacks``).

    - :class:`~leseg.callbacks.resume.RNGStateCheckpoint` (global RNG states in checkpoints);
    - with ``resume.every_n_train_steps = N > 0`` and a configured ``ModelCheckpoint``
      (``callbacks=default``; ``callbacks=none`` adds nothing): a second ``ModelCheckpoint``
      refreshing ``<its dirpath>/last.ckpt`` every N optimiser steps, so a kill mid-epoch loses at
      most N steps; version counters are turned off so both write the same ``last.ckpt``.
    """
    from lightning.pytorch.callbacks import ModelCheckpoint

    from leseg.callbacks.resume import RNGStateCheckpoint

    out = list(callbacks)
    if not any(isinstance(c, RNGStateCheckpoint) for c in out):
        out.append(RNGStateCheckpoint())
    every = int((cfg.get("resume") or {}).get("every_n_train_steps") or 0)
    existing = [c for c in out if isinstance(c, ModelCheckpoint)]
    if every > 0 and existing:
        dirpath = existing[0].dirpath or str(Path(cfg.paths.output_dir) / "checkpoints")
        for c in existing:
            if c.save_last and c.dirpath == dirpath:
                c._enable_version_counter = False  # both callbacks write the same last.ckpt
        out.append(ModelCheckpoint(dirpath=dirpath, every_n_train_steps=every, save_top_k=0,
                                   save_last=True, monitor=None, enable_version_counter=False))
    return out


def pin_run_dir(output_dir: str | Path) -> None:
    """Make Lightning's DDP launcher start ranks 1..N-1 in this run's directory.

    Lightning relaunches the script for the other local ranks with
    ``hydra.run.dir=<HydraConfig.get().run.dir>``; re-reading that interpolation in rank 0 would
    take a new time stamp. Pinning it to the resolved ``output_dir`` makes all ranks agree on one
    run directory. No-op outside a Hydra run.
    """
    if not HydraConfig.initialized():
        return
    from omegaconf import read_write

    hydra_cfg = HydraConfig.get()
    with read_write(hydra_cfg):
        hydra_cfg.run.dir = str(output_dir)


def _model_signature(config: dict | DictConfig) -> dict[str, Any]:
    data = config.get("data") or {}
    model = config.get("model") or {}
    backbone = model.get("backbone") or {}
    return {"num_classes": data.get("num_classes"), "data": data.get("name"),
            "model": model.get("name"), "backbone": backbone.get("name"),
            "output_stride": backbone.get("output_stride"), "in_chans": backbone.get("in_chans")}


def check_checkpoint_compatible(ckpt_path: str | Path, cfg: DictConfig | dict) -> None:
    """Refuse a checkpoint built for another number of classes or another backbone.

    Compares the training config stored in the checkpoint with ``cfg`` (the run that wants to
    load it: a resumed or fine-tuned training run): ``data.num_classes``,
    ``model.backbone.name``, its ``output_stride`` and ``in_chans``. Without this check the same
    mistake surfaces as a long list of tensor-size mismatches from ``load_state_dict``.

    Raises:
        ValueError: naming the checkpoint, what it was trained for and what the run expects.
        FileNotFoundError / ValueError: see :func:`load_checkpoint`.
    """
    stored = _model_signature(load_checkpoint(ckpt_path)["hyper_parameters"]["config"])
    wanted = _model_signature(cfg)
    diffs = [k for k in ("num_classes", "backbone", "output_stride", "in_chans")
             if stored[k] is not None and wanted[k] is not None and str(stored[k]) != str(wanted[k])]
    if diffs:
        def describe(sig: dict) -> str:
            return (f"{sig['num_classes']} classes (data={sig['data']}), model={sig['model']} "
                    f"with backbone={sig['backbone']} (output_stride={sig['output_stride']}, "
                    f"in_chans={sig['in_chans']})")

        raise ValueError(f"checkpoint {ckpt_path} does not fit this run ({', '.join(diffs)} "
                         f"differ): it was trained for {describe(stored)}, this run builds "
                         f"{describe(wanted)}")


def apply_speed(model: torch.nn.Module, speed: dict | DictConfig | None) -> torch.nn.Module:
    """Apply the ``speed`` switches of the train config to a built method module (in place).

    Args:
        model: the LightningModule; its segmentation network is ``model.net`` when present.
        speed: ``channels_last`` (bool): store conv weights as NHWC (``torch.channels_last``), which
            lets cuDNN use tensor-core kernels under mixed precision; inputs are converted by the
            first convolution. ``compile`` (bool): ``torch.compile`` the network in place
            (``nn.Module.compile``, so state-dict keys and checkpoints are unchanged);
            ``compile_mode``: ``default`` | ``reduce-overhead`` | ``max-autotune``.
            Mixed precision is ``trainer.precision`` (``bf16-mixed``, ``16-mixed``).

    Returns:
        ``model``.

    Raises:
        ValueError: an unknown key in ``speed`` (names it).
    """
    speed = dict(speed or {})
    unknown = set(speed) - {"channels_last", "compile", "compile_mode"}
    if unknown:
        raise ValueError(f"speed: unknown key(s) {sorted(unknown)}; expected channels_last, "
                         "compile, compile_mode")
    if speed.get("channels_last"):
        model.to(memory_format=torch.channels_last)
    if speed.get("compile"):
        target = getattr(model, "net", model)
        target.compile(mode=speed.get("compile_mode") or "default")
    return model
