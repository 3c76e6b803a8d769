"""Launch checks of the train and eval tasks: Hydra multirun, SLURM jobs and Lightning's DDP."""

from __future__ import annotations

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

__all__ = ["check_launch", "is_cluster_job", "is_multirun", "pin_run_dir"]


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
