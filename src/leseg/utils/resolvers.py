"""OmegaConf resolvers used in ``conf/`` (registered by the entry points before composing).

- ``${leseg.ckpt_info:<ckpt_path>,<key>}`` — a run identifier (``experiment``, ``data``, ``split``,
  ``seed``) read from the training config stored in a checkpoint; eval.py names its run directory
  after the run it evaluates. Missing keys give ``unknown``.
- ``${leseg.slug:<text>}`` — ``_`` replaced by ``-``, so a dataset name such as ``synthetic_city``
  fits mmsegmentation's experiment naming, where ``_`` separates fields.
"""

from __future__ import annotations

import functools

from omegaconf import OmegaConf


@functools.lru_cache(maxsize=8)
def _ckpt_info(path: str) -> dict:
    from leseg.tasks.common import load_checkpoint, run_info

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


def register_resolvers() -> None:
    """Register leseg's resolvers (idempotent)."""
    if not OmegaConf.has_resolver("leseg.ckpt_info"):
        OmegaConf.register_new_resolver("leseg.ckpt_info", ckpt_info, use_cache=False)
    if not OmegaConf.has_resolver("leseg.slug"):
        OmegaConf.register_new_resolver("leseg.slug", slug)
    if not OmegaConf.has_resolver("leseg.when"):
        OmegaConf.register_new_resolver("leseg.when", when)
