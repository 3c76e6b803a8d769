"""Config helpers: the printed/saved config tree, start-up checks, and plain-container export.

Lightning 2.6 loads checkpoints with ``torch.load(weights_only=True)``; an OmegaConf ``DictConfig``
inside the saved hyper-parameters makes that fail (Lightning #20058). :func:`to_plain` converts a config
into plain ``dict``/``list``/scalars, which is what leseg stores in every checkpoint.

Secrets (wandb API keys, tokens, passwords; see :func:`redact`) never reach leseg's own outputs:
the printed and saved config tree, the logged hyper-parameters and the config stored in
checkpoints are redacted. Hydra's own ``.hydra/config.yaml`` is written before leseg runs: keep
secrets in the environment (``WANDB_API_KEY``), not on the command line or in config files.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import rich.syntax
import rich.tree
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from leseg.utils.io import atomic_write_text
from leseg.utils.logging import get_logger

log = get_logger(__name__)

PRINT_ORDER = ("data", "model", "method", "inference", "callbacks", "logger", "trainer", "paths")


REDACTED = "***"
_SECRET_NAME = re.compile(r"key|token|secret|passw|credential", re.IGNORECASE)


def choice(value: str, allowed: tuple[str, ...], key: str) -> str:
    """``value`` lower-cased if it is one of ``allowed`` (a string-valued config option).

    Args:
        value: the configured value (any type; compared as ``str(value).lower()``).
        allowed: the lower-case values the option takes.
        key: the config key, for the error (e.g. ``"method.mix"``).

    Raises:
        ValueError: naming the config ``key`` and the allowed values.
    """
    value = str(value).lower()
    if value not in allowed:
        raise ValueError(f"{key}={value!r} is not one of {allowed}")
    return value


def is_secret_name(name: Any) -> bool:
    """True for a config key or environment variable name that may hold a secret: it contains
    ``key``, ``token``, ``secret``, ``passw`` or ``credential`` (any case), e.g.
    ``WANDB_API_KEY``, ``hf_token``, ``db_password``."""
    return isinstance(name, str) and bool(_SECRET_NAME.search(name))


_SECRET_ENV = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?)$", re.IGNORECASE)


def secret_env_values(min_length: int = 8) -> list[str]:
    """Values of the environment variables whose names end in ``KEY``, ``TOKEN``, ``SECRET``,
    ``PASSWORD``/``PASSWD`` or ``CREDENTIAL(S)`` (``WANDB_API_KEY``, ``HF_TOKEN``, ...), at least
    ``min_length`` characters long and not an existing path, longest first."""
    values = {v for k, v in os.environ.items()
              if _SECRET_ENV.search(k) and len(v) >= min_length and not os.path.exists(v)}
    return sorted(values, key=len, reverse=True)


def redact(obj: Any, secrets: list[str] | None = None) -> Any:
    """A copy of plain containers ``obj`` with secrets replaced by ``"***"``.

    Redacted: the string value of every key whose name :func:`is_secret_name` (numbers and
    booleans are kept, e.g. a ``num_tokens: 196``), and every occurrence, inside any string, of
    the value of a secret-named environment variable (e.g. ``${oc.env:WANDB_API_KEY}``
    interpolated under an innocent key).
    """
    secrets = secret_env_values() if secrets is None else secrets
    if isinstance(obj, dict):
        return {k: (REDACTED if is_secret_name(k) and isinstance(v, str) and v else
                    redact(v, secrets)) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(redact(v, secrets) for v in obj)
    if isinstance(obj, str):
        for value in secrets:
            obj = obj.replace(value, REDACTED)
    return obj


def to_plain(cfg: Any, redact_secrets: bool = True) -> Any:
    """Return ``cfg`` as plain Python containers with interpolations resolved.

    Args:
        cfg: a ``DictConfig``/``ListConfig`` or any plain value.
        redact_secrets: replace keys, tokens and passwords by ``"***"`` (see :func:`redact`);
            this is what goes into checkpoints and logged hyper-parameters.

    Returns:
        ``dict``/``list``/scalars only (safe for ``torch.load(weights_only=True)`` and JSON).
    """
    if isinstance(cfg, DictConfig) or OmegaConf.is_config(cfg):
        cfg = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    return redact(cfg) if redact_secrets else cfg


@rank_zero_only
def print_config_tree(
    cfg: DictConfig, order: Sequence[str] = PRINT_ORDER, save_to: str | Path | None = None
) -> None:
    """Print the composed config as a rich tree (main groups first) and optionally save it.

    Args:
        cfg: the composed Hydra config.
        order: top-level keys printed first, in this order; the rest follow.
        save_to: if given, the same tree as plain text is written atomically to this file
            (``config_tree.log`` in the run directory).
    """
    tree = rich.tree.Tree("CONFIG", style="dim", guide_style="dim")
    keys = [k for k in order if k in cfg] + [k for k in cfg if k not in order]
    for key in keys:
        branch = tree.add(str(key), style="bold", guide_style="dim")
        value = to_plain(cfg[key])  # resolved, secrets redacted
        text = OmegaConf.to_yaml(value) if isinstance(value, dict | list) else str(value)
        branch.add(rich.syntax.Syntax(text, "yaml"))
    rich.print(tree)
    if save_to is not None:
        console = rich.console.Console(record=True, width=120, file=open("/dev/null", "w"))  # noqa: SIM115
        console.print(tree)
        atomic_write_text(save_to, console.export_text())


def extras(cfg: DictConfig) -> None:
    """Start-up conveniences driven by ``cfg.extras``: silence warnings, print and save the config."""
    opts = cfg.get("extras")
    if not opts:
        return
    if opts.get("ignore_warnings"):
        log.info("Silencing Python warnings (extras.ignore_warnings=True)")
        warnings.filterwarnings("ignore")
    if opts.get("print_config"):
        out = Path(cfg.paths.output_dir) / "config_tree.log" if cfg.get("paths") else None
        print_config_tree(cfg, save_to=out)
