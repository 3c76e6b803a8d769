"""OmegaConf resolvers used in ``conf/`` (registered by the entry points before composing).

- ``${leseg.ckpt_info:<ckpt_path>,<key>}`` — a run identifier (``experiment``, ``data``, ``split``,
  ``seed``) read from the training config stored in a checkpoint; eval.py names its run directory
  after the run it evaluates. Missing keys give ``unknown``.
- ``${leseg.run_stamp:<strftime format>}`` — the run directory's time stamp, identical in every
  process of a distributed run (see :func:`run_stamp`).
- ``${leseg.slug:<text>}`` — ``_`` replaced by ``-``, so a dataset name such as ``synthetic_city``
  fits mmsegmentation's experiment naming, where ``_`` separates fields.
"""

from __future__ import annotations

import functools
import os
from datetime import datetime

from omegaconf import OmegaConf


@functools.lru_cache(maxsize=8)
def _ckpt_info(path: str) -> dict:
    from leseg.utils.checkpoint import load_checkpoint
    from leseg.utils.run import run_info

    try:
        return run_info(load_checkpoint(path)["hyper_parameters"]["config"])
    except (FileNotFoundError, ValueError):
        return {}  # the task itself reports the bad checkpoint with a clear error


def ckpt_info(path: str, key: str) -> str:
    """Return ``run_info(<training config of path>)[key]`` as a string, or ``unknown``."""
    value = _ckpt_info(str(path)).get(key)
    return "unknown" if value is None else str(value)


def slug(text: str) -> str:
    """``synthetic_city`` → ``synthetic-city``."""
    return str(text).replace("_", "-")


def when(value: object, expected: object, then: object, otherwise: object) -> object:
    """``then`` if ``str(value) == str(expected)`` else ``otherwise`` (config switches).

    ``${leseg.when:${oc.select:method.contrastive,none},u2pl,256,0}`` builds U2PL's
    representation head only when the contrastive term is on.
    """
    return then if str(value) == str(expected) else otherwise


_RUN_STAMPS: dict[str, str] = {}


def _parent_start_ticks() -> str:
    """Start time (clock ticks since boot) of the parent process, from /proc; '' if unavailable."""
    try:
        with open(f"/proc/{os.getppid()}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def run_stamp(fmt: str = "%Y-%m-%d_%H-%M-%S_%f") -> str:
    """The last component of a run directory: the same string in every process of one run.

    Processes of one distributed run would otherwise each take their own ``${now:}`` time stamp
    and write into different directories. In order:

    1. ``$LESEG_RUN_STAMP`` if set (any launcher: export one value to every rank);
    2. under ``torchrun`` (``$TORCHELASTIC_RUN_ID``): ``torchrun-<run id>`` when the run id is set
       (``--rdzv-id``; ``--standalone`` makes a unique one); with the default id ``none``, the
       agent process's pid and start time, shared by the ranks of one node only — multi-node
       torchrun needs ``--rdzv-id`` (or ``hydra.run.dir``);
    3. the current time formatted with ``fmt`` (like ``${now:fmt}``).

    The value is memoised per process and format. Ranks launched by Lightning's own DDP launcher
    get the directory of rank 0 from the train task (:func:`leseg.tasks.launch.pin_run_dir`), and
    SLURM jobs started by Hydra's submitit launcher receive an already resolved directory.
    """
    if fmt in _RUN_STAMPS:
        return _RUN_STAMPS[fmt]
    stamp = os.environ.get("LESEG_RUN_STAMP")
    run_id = os.environ.get("TORCHELASTIC_RUN_ID")
    if not stamp and run_id:
        if run_id != "none":
            stamp = f"torchrun-{run_id}"
        else:
            stamp = f"{datetime.now().strftime('%Y-%m-%d')}_torchrun-{os.getppid()}-{_parent_start_ticks()}"
    if not stamp:
        stamp = datetime.now().strftime(fmt)
    _RUN_STAMPS[fmt] = stamp
    return stamp


def register_resolvers() -> None:
    """Register leseg's resolvers (idempotent)."""
    if not OmegaConf.has_resolver("leseg.ckpt_info"):
        OmegaConf.register_new_resolver("leseg.ckpt_info", ckpt_info, use_cache=False)
    if not OmegaConf.has_resolver("leseg.slug"):
        OmegaConf.register_new_resolver("leseg.slug", slug)
    if not OmegaConf.has_resolver("leseg.run_stamp"):
        OmegaConf.register_new_resolver("leseg.run_stamp", run_stamp)
    if not OmegaConf.has_resolver("leseg.when"):
        OmegaConf.register_new_resolver("leseg.when", when)
