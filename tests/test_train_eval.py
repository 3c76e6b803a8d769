"""End-to-end: train → checkpoint → test → eval on the tiny synthetic datasets; resume; guards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from omegaconf import open_dict

from leseg.tasks.eval import evaluate
from leseg.tasks.launch import check_launch
from leseg.tasks.train import train
from leseg.utils.checkpoint import load_checkpoint, load_method

from conftest import compose_cfg


@pytest.mark.parametrize("data", ["synthetic_city", "synthetic_voc"])
def test_train_then_eval_writes_everything(make_train_cfg, tmp_path: Path, data: str) -> None:
    cfg = make_train_cfg(data)
    metrics, objects = train(cfg)
    out = Path(cfg.paths.output_dir)
    assert 0.0 <= metrics["test/mIoU"] <= 1.0 and "test/mIoU_ms_flip" in metrics
    info = json.loads((out / "metrics.json").read_text())
    assert info["data"] == data and info["seed"] == 0 and info["metrics"]["test/mIoU"] == metrics["test/mIoU"]
    best = Path(info["best_checkpoint"])
    assert best.is_file() and (out / "checkpoints" / "last.ckpt").is_file()

    # Checkpoints hold only plain containers: torch's default weights_only=True loads them.
    ckpt = torch.load(best, weights_only=True)
    assert ckpt["hyper_parameters"]["config"]["data"]["name"] == data
    # load_method rebuilds the trained module from the stored config alone; an override replaces
    # the stored value whole (here: the protocol without test-time augmentation)
    seen = []
    module, stored = load_method(best, overrides={"method.inference": {"mode": "whole"}},
                                 check=lambda c: seen.append(c.data.name))
    assert seen == [data] and not module.training and not module.has_tta
    assert stored.method.inference == {"mode": "whole"} and stored.data.name == data
    weights = module.state_dict()
    assert weights.keys() == ckpt["state_dict"].keys()
    assert all(torch.equal(weights[k], v) for k, v in ckpt["state_dict"].items())

    eval_dir = tmp_path / "eval"
    ecfg = compose_cfg("eval", [f"ckpt_path={best}", "extras.print_config=false",
                                "trainer.enable_progress_bar=false"], eval_dir)
    emetrics, eobjects = evaluate(ecfg)
    result = json.loads((eval_dir / "metrics.json").read_text())
    assert set(result["results"]) == {"single_scale", "ms_flip"}
    assert result["results"]["single_scale"]["mIoU"] == pytest.approx(emetrics["test/mIoU"])
    # eval on the full val split equals the training run's own test on the same checkpoint
    # whenever the training test saw every val image (limit_test_batches covers all 4 here)
    for name in ("per_class_iou.csv", "per_class_iou.md", "confusion_matrix.png"):
        assert (eval_dir / name).stat().st_size > 0
    n_val = len(eobjects["datamodule"].test_dataloader().dataset)
    assert len(list((eval_dir / "pred_trainIds").glob("*.png"))) == n_val
    assert len(list((eval_dir / "pred_color").glob("*.png"))) == n_val
    assert not list(eval_dir.rglob("*.tmp"))  # nothing half-written


def test_resume_from_checkpoint_continues_training(make_train_cfg) -> None:
    first = make_train_cfg(overrides=("trainer.max_epochs=1", "test=false"), out="first")
    _, objs = train(first)
    last = Path(first.paths.output_dir) / "checkpoints" / "last.ckpt"
    step_after_first = objs["trainer"].global_step
    assert step_after_first == 2

    second = make_train_cfg(overrides=("trainer.max_epochs=2", "test=false", f"ckpt_path={last}"),
                            out="second")
    _, objs2 = train(second)
    assert objs2["trainer"].current_epoch == 2
    assert objs2["trainer"].global_step == 2 * step_after_first  # resumed, not restarted


def test_eval_refuses_a_missing_or_foreign_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no checkpoint file"):
        load_checkpoint(tmp_path / "nope.ckpt")
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(ValueError, match="not a leseg training checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(ValueError, match=f"ckpt_path={foreign}"):
        load_method(foreign)
    with pytest.raises(FileNotFoundError, match="nope.ckpt"):
        load_method(tmp_path / "nope.ckpt")


def test_multirun_with_ddp_is_refused(make_train_cfg, monkeypatch) -> None:
    cfg = make_train_cfg(overrides=("trainer.devices=2", "trainer.strategy=ddp"))
    monkeypatch.setattr("leseg.tasks.launch.is_multirun", lambda: True)
    with pytest.raises(ValueError, match="multirun"):
        check_launch(cfg)
    with open_dict(cfg):
        cfg.trainer.devices = 1
    check_launch(cfg)  # single-device sweep jobs are fine


@pytest.mark.slow
def test_wandb_offline_run_logs_mask_overlays_and_is_closed(make_train_cfg, monkeypatch) -> None:
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = make_train_cfg(overrides=("logger=wandb", "trainer.max_epochs=1", "test=false",
                                    "callbacks.image_logger.num_images=2"))
    train(cfg)
    assert wandb.run is None  # the task wrapper finished the run: the next multirun job starts fresh
    runs = list((Path(cfg.paths.output_dir) / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    media = list(runs[0].rglob("media/images/**/*.png"))
    assert media, "validation images with masks were not logged"
    assert cfg.logger.wandb.group == "synthetic_city-full-supervised"  # seeds share a group
