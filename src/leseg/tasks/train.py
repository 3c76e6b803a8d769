"""The training task: seed → data, model, callbacks, loggers, trainer → fit → test the best checkpoint.

Follows lightning-hydra-template's spine: everything is built with ``hydra.utils.instantiate`` from
the composed config; :func:`train` is wrapped so the run directory is printed and wandb is closed
however it ends.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
import lightning as L
from lightning.pytorch.callbacks import LearningRateMonitor
from omegaconf import DictConfig

from leseg.data.faults import summarize_skips
from leseg.tasks.launch import check_launch, pin_run_dir
from leseg.tasks.resume import resolve_ckpt_path, resume_callbacks
from leseg.tasks.speed import apply_speed
from leseg.tasks.wandb_resume import set_wandb_resume
from leseg.utils.checkpoint import check_checkpoint_compatible
from leseg.utils.config import to_plain
from leseg.utils.instantiate import instantiate_callbacks, instantiate_loggers
from leseg.utils.io import atomic_write_json
from leseg.utils.logging import get_logger
from leseg.utils.run import run_info
from leseg.utils.task import task_wrapper

log = get_logger(__name__)


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if getattr(v, "numel", lambda: 1)() == 1}


def _log_hyperparameters(cfg: DictConfig, model: L.LightningModule, loggers: list) -> None:
    hparams = to_plain(cfg)
    hparams["model/params/total"] = sum(p.numel() for p in model.parameters())
    hparams["model/params/trainable"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    for logger in loggers:
        logger.log_hyperparams(hparams)


@task_wrapper
def train(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train (and by default test) the model described by ``cfg``.

    Writes ``metrics.json`` (run identifiers, final validation and test metrics, best checkpoint)
    into ``cfg.paths.output_dir``; checkpoints go to ``<output_dir>/checkpoints``.

    Resume: ``ckpt_path=<file>`` or ``ckpt_path=last`` (see
    :func:`leseg.tasks.resume.find_last_checkpoint`); with a fixed ``seed`` the resumed run ends
    with the same weights as an uninterrupted one (data stream: :mod:`leseg.data.resumable`; global
    RNG: :class:`leseg.callbacks.resume.RNGStateCheckpoint`; mid-epoch ``last.ckpt`` every
    ``resume.every_n_train_steps`` steps) and logs into the same wandb run.

    Returns:
        ``(metric_dict, object_dict)``: the logged scalar metrics, and the built objects.
    """
    check_launch(cfg)
    pin_run_dir(cfg.paths.output_dir)  # DDP ranks started by Lightning reuse rank 0's directory
    ckpt_path = resolve_ckpt_path(cfg)  # "last" → the newest last.ckpt of this experiment/seed
    if ckpt_path is not None:
        check_checkpoint_compatible(ckpt_path, cfg)  # classes/backbone mismatch: a clear error
        log.info(f"Resuming from {ckpt_path}")
    set_wandb_resume(cfg, ckpt_path)  # a resumed run continues the same wandb run
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)

    log.info(f"Instantiating datamodule <{cfg.data._target_}>")
    datamodule: L.LightningDataModule = hydra.utils.instantiate(cfg.data)
    if getattr(datamodule, "on_bad_sample", "raise") == "skip":  # one log for all workers/ranks
        datamodule.bad_sample_log = Path(cfg.paths.output_dir) / "skipped_samples.jsonl"
    log.info(f"Instantiating method <{cfg.method._target_}> with model <{cfg.model.name}>")
    model: L.LightningModule = hydra.utils.instantiate(cfg.method)
    # The whole resolved config, as plain containers, travels in every checkpoint: eval.py rebuilds
    # the model from it, and torch.load(weights_only=True) accepts it.
    model.hparams["config"] = to_plain(cfg)  # secrets redacted (leseg.utils.config.redact)
    apply_speed(model, cfg.get("speed"))  # channels_last / torch.compile switches

    callbacks = resume_callbacks(cfg, instantiate_callbacks(cfg.get("callbacks")))
    loggers = instantiate_loggers(cfg.get("logger"))
    if not loggers:  # logger=none: LearningRateMonitor would refuse to start
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    trainer: L.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks,
                                                 logger=loggers or False)
    objects = {"cfg": cfg, "datamodule": datamodule, "model": model, "callbacks": callbacks,
               "loggers": loggers, "trainer": trainer}
    _log_hyperparameters(cfg, model, loggers)

    if cfg.get("train", True):
        trainer.fit(model=model, datamodule=datamodule, ckpt_path=ckpt_path)
    metrics = _scalars(trainer.callback_metrics)

    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    if cfg.get("test", True):
        if not best:
            log.warning("No best checkpoint recorded; testing the current weights")
        trainer.test(model=model, datamodule=datamodule, ckpt_path=best or None)
        metrics.update(_scalars(trainer.callback_metrics))

    summary = {**run_info(cfg), "best_checkpoint": best or None, "metrics": metrics}
    if getattr(datamodule, "on_bad_sample", "raise") == "skip":
        summary["skipped_samples"] = summarize_skips(datamodule.bad_sample_log)
        if summary["skipped_samples"]["count"]:
            log.warning(f"{summary['skipped_samples']['count']} bad sample(s) were skipped; "
                        f"see {datamodule.bad_sample_log}")
    if trainer.is_global_zero:
        atomic_write_json(Path(cfg.paths.output_dir) / "metrics.json", summary)
    return metrics, objects
