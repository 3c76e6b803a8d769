"""Faults: data.on_bad_sample=skip (corrupt image, wrong label value, missing split id) is logged,
replaced and counted; raise names the file; a disk-full write leaves nothing and names the file."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest
from test_datasets import H, W, _truncate, make_voc_tree

from leseg.data.datamodules import VOCDataModule
from leseg.data.faults import summarize_skips
from leseg.data.io import ImageDecodeError, write_png_atomic
from leseg.data.labels import VOC_COLORMAP
from leseg.utils.io import atomic_write_json, atomic_write_text

IDS = ["2007_000001", "2007_000002", "2007_000003", "2007_000004"]


def _bad_voc(root: Path) -> None:
    """Four train ids: #2 has a truncated JPEG, #3 a label value 21 (VOC has 0..20 and 255)."""
    make_voc_tree(root, {"train": IDS, "val": IDS[:2]})
    _truncate(root / "JPEGImages" / f"{IDS[1]}.jpg")
    bad = np.zeros((H, W), np.uint8)
    bad[1, 1] = 21
    write_png_atomic(root / "SegmentationClass" / f"{IDS[2]}.png", bad, palette=VOC_COLORMAP)


def _dm(root: Path, mode: str, tmp_path: Path) -> VOCDataModule:
    dm = VOCDataModule(name="voc", root=str(root), num_classes=21, batch_size=2,
                       on_bad_sample=mode)
    dm.bad_sample_log = tmp_path / "skipped_samples.jsonl"
    return dm


def test_on_bad_sample_raise_names_the_file(tmp_path: Path) -> None:
    _bad_voc(tmp_path / "VOC2012")
    dm = _dm(tmp_path / "VOC2012", "raise", tmp_path)
    dm.setup("fit")
    with pytest.raises(ImageDecodeError, match=f"{IDS[1]}.jpg"):
        dm.train_dataset[1]
    with pytest.raises(ValueError, match=rf"{IDS[2]}.png.*\[21\]"):
        dm.train_dataset[2]
    with pytest.raises(ValueError, match="on_bad_sample='ignore'"):
        VOCDataModule(name="voc", root=str(tmp_path), num_classes=21, on_bad_sample="ignore")


def test_on_bad_sample_skip_logs_replaces_and_counts(tmp_path: Path) -> None:
    _bad_voc(tmp_path / "VOC2012")
    dm = _dm(tmp_path / "VOC2012", "skip", tmp_path)
    batches = list(dm.train_dataloader())
    assert len(batches) == 2 and all(b["image"].shape[0] == 2 for b in batches)  # count unchanged
    names = [n for b in batches for n in b["name"]]
    assert IDS[1] not in names and IDS[2] not in names  # replaced by the next loadable samples
    summary = summarize_skips(dm.bad_sample_log)
    # index 1 → #2 bad, #3 bad, #4 loads; index 2 → #3 bad, #4 loads: 3 skips, 2 distinct files
    assert summary["count"] == 2 and summary["events"] == 3
    reasons = {s["name"]: s["reason"] for s in summary["samples"]}
    assert f"{IDS[1]}.jpg" in reasons[IDS[1]] and "ImageDecodeError" in reasons[IDS[1]]
    assert f"{IDS[2]}.png" in reasons[IDS[2]] and "[21]" in reasons[IDS[2]]
    list(dm.train_dataloader())  # a second epoch: distinct count stays, events grow
    again = summarize_skips(dm.bad_sample_log)
    assert again["count"] == 2 and again["events"] == 6


def test_on_bad_sample_skip_drops_missing_split_ids(tmp_path: Path) -> None:
    root = tmp_path / "VOC2012"
    make_voc_tree(root, {"train": IDS[:2], "val": IDS[:1]})
    (root / "ImageSets/Segmentation/train.txt").write_text(f"{IDS[0]}\n2009_999999\n{IDS[1]}\n")
    with pytest.raises(FileNotFoundError, match=r"train.txt.*2009_999999"):
        _dm(root, "raise", tmp_path).setup("fit")
    dm = _dm(root, "skip", tmp_path)
    with pytest.warns(UserWarning, match="2009_999999"):
        dm.setup("fit")
    assert dm.train_dataset.names == IDS[:2]
    summary = summarize_skips(dm.bad_sample_log)
    assert summary["count"] == 1 and summary["samples"][0]["name"] == "2009_999999"
    assert "train.txt" in summary["samples"][0]["reason"]


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_disk_full_write_leaves_no_file_and_names_it(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "run" / "metrics.json"
    monkeypatch.setattr("leseg.utils.io.os.fsync", _disk_full)
    with pytest.raises(OSError, match="metrics.json") as err:
        atomic_write_json(target, {"a": 1})
    assert err.value.errno == errno.ENOSPC and "No space left" in str(err.value)
    assert not target.exists() and list(target.parent.iterdir()) == []  # no temporary file either
    monkeypatch.undo()

    atomic_write_text(target, json.dumps({"a": 1}))  # an old version survives a failed rewrite
    monkeypatch.setattr("leseg.utils.io.os.fsync", _disk_full)
    with pytest.raises(OSError, match="metrics.json"):
        atomic_write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 1}
    monkeypatch.undo()

    png = tmp_path / "pred" / "x.png"  # the PNG writer of the data layer too
    monkeypatch.setattr("leseg.data.io.os.replace", _disk_full)
    with pytest.raises(OSError, match="x.png"):
        write_png_atomic(png, np.zeros((4, 4), np.uint8))
    assert not png.exists() and list(png.parent.iterdir()) == []


def test_checkpoint_for_other_classes_or_backbone_is_refused_naming_both(tmp_path: Path) -> None:
    import torch
    from omegaconf import OmegaConf

    from leseg.utils.checkpoint import check_checkpoint_compatible

    def config(classes: int, data: str, backbone: str) -> dict:
        return {"data": {"num_classes": classes, "name": data},
                "model": {"name": f"deeplabv3plus-{backbone}",
                          "backbone": {"name": backbone, "output_stride": 16, "in_chans": 3}}}

    ckpt = tmp_path / "city_r18.ckpt"
    torch.save({"hyper_parameters": {"config": config(19, "cityscapes", "resnet18")}}, ckpt)
    check_checkpoint_compatible(ckpt, OmegaConf.create(config(19, "synthetic_city", "resnet18")))
    with pytest.raises(ValueError, match=r"num_classes.*19 classes \(data=cityscapes\).*21 classes "
                                         r"\(data=voc\)"):
        check_checkpoint_compatible(ckpt, OmegaConf.create(config(21, "voc", "resnet18")))
    with pytest.raises(ValueError, match=r"city_r18.ckpt.*backbone=resnet18.*backbone=resnet101"):
        check_checkpoint_compatible(ckpt, OmegaConf.create(config(19, "cityscapes", "resnet101")))
