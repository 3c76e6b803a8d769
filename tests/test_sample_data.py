"""train.py and eval.py on the real Cityscapes and VOC frames in $LESEG_SAMPLE_DATA."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from leseg.tasks.eval import evaluate
from leseg.tasks.train import train

from conftest import compose_cfg, sample_data

COMMON = [
    "model=deeplabv3plus_r18", "trainer=cpu", "logger=none", "callbacks=default",
    "~callbacks.progress_bar", "~callbacks.model_summary", "trainer.max_epochs=1",
    "trainer.num_sanity_val_steps=0", "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false", "data.num_workers=0", "data.persistent_workers=false",
    "data.batch_size=2", "model.head.channels=32", "extras.print_config=false",
]


def _train_and_eval(tmp_path: Path, overrides: list[str]) -> tuple[dict, Path]:
    cfg = compose_cfg("train", COMMON + overrides, tmp_path / "train")
    train(cfg)
    info = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    ecfg = compose_cfg("eval", [f"ckpt_path={info['best_checkpoint']}", "extras.print_config=false",
                                "trainer.enable_progress_bar=false"], tmp_path / "eval")
    evaluate(ecfg)
    return json.loads((tmp_path / "eval" / "metrics.json").read_text()), tmp_path / "eval"


@pytest.mark.sample_data
@pytest.mark.slow
def test_cityscapes_sample_train_and_eval(tmp_path: Path) -> None:
    root = sample_data("cityscapes_sample")
    result, eval_dir = _train_and_eval(tmp_path, [
        "data=cityscapes", f"data.root={root}",  # trains on the 8 aachen train frames
        "data.train_transforms.crop_size=[128,128]", "data.train_transforms.scale_range=[0.25,0.5]",
        "inference.crop_size=[256,256]", "inference.stride=[171,171]", "inference.tta.scales=[1.0]",
    ])
    assert 0.0 <= result["results"]["single_scale"]["mIoU"] <= 1.0
    preds = sorted(p.stem for p in (eval_dir / "pred_trainIds").glob("*.png"))
    assert preds == ["frankfurt_000000_000294", "frankfurt_000001_058914"]


@pytest.mark.sample_data
@pytest.mark.slow
def test_voc_sample_train_and_eval(tmp_path: Path) -> None:
    root = sample_data("voc_sample", "VOC2012")
    result, eval_dir = _train_and_eval(tmp_path, [
        "data=voc", f"data.root={root}", "data.train_transforms.crop_size=[128,128]",
        "inference.tta.scales=[0.5,1.0]",
    ])
    assert len(result["results"]["single_scale"]["IoU"]) == 21
    assert [p.stem for p in (eval_dir / "pred_color").glob("*.png")] == ["2007_000033"]
