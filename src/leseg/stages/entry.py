"""The entry point of the offline stages: ``python -m leseg.stages <stage> [overrides]``.

``<stage>`` names a stage config ``conf/stage/<stage>.yaml``; Hydra composes it into
``conf/stages.yaml`` with the overrides (``key=value``, as for ``train.py``; ``-m`` sweeps), makes
the run directory ``outputs/stages/<stage>/<time>/`` (``.hydra/`` config, ``stage.log``) and
:func:`run` calls the config's ``stage`` node: ``_target_`` is the stage function, every other
key one of its keyword arguments::

    python -m leseg.stages ssenet_cams ckpt_path=<cam run>/checkpoints/last.ckpt stage.root=<VOC2012>
    python -m leseg.stages downsample stage.src=data/cityscapes stage.dst=data/cityscapes_1024x512
    python -m leseg.stages --help        # the stage configs there are

The stage functions do their own skip-if-done work (:mod:`leseg.stages.runner`), so rerunning the
same command resumes an interrupted stage. Each stage module keeps its own command line as well
(``python -m leseg.stages.ssenet cams --ckpt ...``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

__all__ = ["CONF_DIR", "main", "run", "stage_names"]

CONF_DIR = Path(__file__).resolve().parents[3] / "conf"
"""The repository's ``conf/`` (``conf/stages.yaml``, ``conf/stage/*.yaml``)."""


def stage_names(conf_dir: Path = CONF_DIR) -> list[str]:
    """The stage configs of ``conf/stage/`` (files starting with ``_`` are shared parts)."""
    return sorted(p.stem for p in (conf_dir / "stage").glob("*.yaml") if not p.stem.startswith("_"))


def run(cfg: DictConfig) -> Any:
    """Call the stage function of a composed ``conf/stages.yaml`` config; returns its result.

    ``cfg.stage._target_`` is the function (a dotted path); the other keys of ``cfg.stage``,
    resolved to plain containers, are its keyword arguments. When the stage returns,
    ``<paths.output_dir>/stage_summary.json`` is written (atomically, last: it marks the stage
    finished) with the result when that is JSON-able (the stage's summary: file counts, metrics).

    Raises:
        ValueError: ``cfg.stage`` has no ``_target_`` (names the keys it has).
        Whatever the stage raises (its errors name the bad file or option).
    """
    import hydra

    from leseg.utils.io import atomic_write_json

    stage = cfg.get("stage")
    if not stage or "_target_" not in stage:
        keys = sorted(stage) if stage else []
        raise ValueError(f"stage config needs a _target_ (the function to call; see conf/stage/), "
                         f"got keys {keys}")
    kwargs = OmegaConf.to_container(stage, resolve=True)
    function = hydra.utils.get_method(kwargs.pop("_target_"))
    result = function(**kwargs)  # called directly: the stage's own exception reaches the user
    out_dir = OmegaConf.select(cfg, "paths.output_dir", default=None)
    if out_dir:  # written last, atomically: its presence means the stage finished
        try:
            json.dumps(result)
        except TypeError:
            result = None
        atomic_write_json(Path(out_dir) / "stage_summary.json",
                          {"stage": stage["_target_"], "result": result})
    if out_dir:
        print(f"Run directory: {out_dir}")
    return result


def _usage(conf_dir: Path) -> str:
    return ("usage: python -m leseg.stages <stage> [key=value ...]\n\n"
            f"stages (conf/stage/): {', '.join(stage_names(conf_dir))}\n"
            "e.g. python -m leseg.stages ssenet_evaluate stage.masks=<folder> stage.root=<VOC2012>")


def main(argv: Sequence[str] | None = None, conf_dir: Path = CONF_DIR) -> None:
    """``python -m leseg.stages <stage> [overrides]`` (module docstring).

    Raises:
        SystemExit: no stage, an unknown stage (lists the known ones) or a missing ``conf/``.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if not (conf_dir / "stages.yaml").is_file():
        raise SystemExit(f"leseg.stages: no {conf_dir / 'stages.yaml'}; run from a leseg "
                         "checkout (the stage configs live in its conf/)")
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage(conf_dir))
        raise SystemExit(0 if argv else 2)
    name, rest = argv[0], argv[1:]
    if name not in stage_names(conf_dir):
        raise SystemExit(f"leseg.stages: unknown stage {name!r}; known: "
                         f"{', '.join(stage_names(conf_dir))} (conf/stage/<stage>.yaml)")

    import hydra

    from leseg.utils.config import extras
    from leseg.utils.resolvers import register_resolvers

    register_resolvers()

    @hydra.main(version_base="1.3", config_path=str(conf_dir), config_name="stages")
    def _main(cfg: DictConfig) -> None:
        extras(cfg)
        run(cfg)

    sys.argv = [sys.argv[0], f"stage={name}", *rest]
    _main()
