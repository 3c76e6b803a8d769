"""One wandb run per training run, across resumes: the run id travels in the checkpoint."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from leseg.utils.checkpoint import load_checkpoint

__all__ = ["WANDB_ID_FILE", "set_wandb_resume", "stored_wandb_id"]

WANDB_ID_FILE = "wandb_run_id.txt"


def stored_wandb_id(ckpt_path: str | Path | None) -> str | None:
    """The wandb run id stored in a leseg checkpoint's training config (None if absent)."""
    if ckpt_path is None:
        return None
    try:
        config = load_checkpoint(ckpt_path)["hyper_parameters"]["config"]
    except ValueError:
        return None
    return ((config.get("logger") or {}).get("wandb") or {}).get("id")


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
