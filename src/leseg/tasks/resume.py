"""Resuming a training run: which checkpoint ``ckpt_path=last`` means, and the resume callbacks."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from leseg.tasks import launch

__all__ = ["find_last_checkpoint", "resolve_ckpt_path", "resume_callbacks"]


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
        found = find_last_checkpoint(cfg.paths.output_dir, siblings=not launch.is_multirun())
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
