"""Semi-supervised DataModules: two streams, oversampling, validity maps, split files, errors."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from test_datasets import H, W, make_city_tree, make_voc_tree

from leseg.data.semisupervised import (
    SemiSupervisedCityscapesDataModule,
    SemiSupervisedVOCDataModule,
    UnlabeledImageDataset,
)
from leseg.data.splits import make_splits
from leseg.data.transforms import IMAGENET_MEAN, IMAGENET_STD, build_transforms

from conftest import TINY_VOC, sample_data

VOC_TRAIN = [f"2007_00000{i}" for i in range(1, 7)]
VOC_VAL = ["2008_000007", "2008_000008"]
CITY_TRAIN = [f"aachen_00000{i}_000019" for i in range(5)]


def _write_split(splits: Path, split: str, labeled: list[str], unlabeled: list[str]) -> None:
    (splits / split).mkdir(parents=True, exist_ok=True)
    (splits / split / "labeled.txt").write_text("".join(f"{n}\n" for n in labeled))
    (splits / split / "unlabeled.txt").write_text("".join(f"{n}\n" for n in unlabeled))


def _voc(tmp_path: Path, **kwargs) -> SemiSupervisedVOCDataModule:
    root = tmp_path / "VOC2012"
    if not root.exists():
        make_voc_tree(root, {"train": VOC_TRAIN, "val": VOC_VAL,
                             "train_aug": VOC_TRAIN + ["2007_000009"]})
    args = {"name": "voc", "root": str(root), "num_classes": 21, "batch_size": 2,
            "train_transforms": {"crop_size": [H + 4, W + 6], "scale_range": [1, 1]}}
    return SemiSupervisedVOCDataModule(**{**args, **kwargs})


def test_streams_are_oversampled_and_padding_is_invalid(tmp_path: Path) -> None:
    splits = tmp_path / "splits"
    _write_split(splits, "2", VOC_TRAIN[:2], VOC_TRAIN[2:])
    dm = _voc(tmp_path, split=2, splits_dir=str(splits))
    dm.setup("fit")
    assert dm.iterations_per_epoch() == 2  # 4 unlabeled // batch 2
    batches = [b for b, *_ in iter(dm.train_dataloader())]
    assert len(batches) == 2
    labeled_seen = Counter(n for b in batches for n in b["labeled"]["name"])
    unlabeled_seen = Counter(n for b in batches for n in b["unlabeled"]["name"])
    # the 2 labeled images are repeated to the unlabeled length: each twice per epoch
    assert labeled_seen == Counter({VOC_TRAIN[0]: 2, VOC_TRAIN[1]: 2})
    assert unlabeled_seen == Counter({n: 1 for n in VOC_TRAIN[2:]})

    lab, unl = batches[0]["labeled"], batches[0]["unlabeled"]
    assert set(lab) == {"image", "label", "name"} and set(unl) == {"image", "valid", "name"}
    assert lab["image"].shape == unl["image"].shape == (2, 3, H + 4, W + 6)
    assert unl["valid"].dtype == torch.bool and unl["valid"].shape == (2, H + 4, W + 6)
    # the (H, W) image is padded to the crop around the centre: exactly the pad is invalid
    expected = torch.zeros(H + 4, W + 6, dtype=torch.bool)
    expected[2:2 + H, 3:3 + W] = True
    assert torch.equal(unl["valid"][0], expected) and torch.equal(unl["valid"][1], expected)
    pad_value = (0.0 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    assert torch.allclose(unl["image"][0][:, 0, 0], pad_value)
    assert (lab["label"][:, ~expected] == 255).all()  # labeled padding is ignore_index


def test_labeled_only_gives_plain_batches_for_the_same_number_of_steps(tmp_path: Path) -> None:
    splits = tmp_path / "splits"
    _write_split(splits, "2", VOC_TRAIN[:2], VOC_TRAIN[2:])
    dm = _voc(tmp_path, split=2, splits_dir=str(splits), labeled_only=True)
    dm.setup("fit")
    assert dm.unlabeled_dataset is None
    batches = list(dm.train_dataloader())
    assert len(batches) == 2 and set(batches[0]) == {"image", "label", "name"}
    assert Counter(n for b in batches for n in b["name"]) == Counter({VOC_TRAIN[0]: 2,
                                                                      VOC_TRAIN[1]: 2})


def test_full_split_defaults(tmp_path: Path) -> None:
    dm = _voc(tmp_path, unlabeled_set="train_aug")
    dm.setup("fit")
    assert dm.unlabeled_dataset.names == ["2007_000009"]  # train_aug minus the labeled train set
    same = _voc(tmp_path)  # no unlabeled_set: the train images again, without labels
    same.setup("fit")
    assert same.unlabeled_dataset.names == VOC_TRAIN
    with pytest.raises(ValueError, match="no unlabeled images in unlabeled_set 'train'"):
        _voc(tmp_path, unlabeled_set="train").setup("fit")


def test_unlabeled_batch_size_and_errors(tmp_path: Path) -> None:
    splits = tmp_path / "splits"
    _write_split(splits, "2", VOC_TRAIN[:2], VOC_TRAIN[2:] + ["2099_000001"])
    dm = _voc(tmp_path, split=2, splits_dir=str(splits))
    with pytest.raises(FileNotFoundError, match=r"2/unlabeled.txt .*JPEGImages.*2099_000001"):
        dm.setup("fit")
    with pytest.raises(FileNotFoundError, match=r"(?s)7/labeled.txt not found.*leseg.data.splits"):
        _voc(tmp_path, split=7, splits_dir=str(splits)).setup("fit")
    with pytest.raises(ValueError, match="unlabeled_batch_size must be >= 1"):
        _voc(tmp_path, unlabeled_batch_size=0)
    _write_split(splits, "3", VOC_TRAIN[:3], VOC_TRAIN[3:])
    dm = _voc(tmp_path, split=3, splits_dir=str(splits), batch_size=1, unlabeled_batch_size=3)
    (batch, *_), = list(iter(dm.train_dataloader()))  # max(3, 3) // 3 = one step
    assert batch["labeled"]["image"].shape[0] == 1 and batch["unlabeled"]["image"].shape[0] == 3
    # under DDP both global batch sizes are split over the processes, the same rule for each
    dm.trainer = type("T", (), {"world_size": 3})()
    assert dm.per_device_unlabeled_batch_size() == 1
    with pytest.raises(ValueError, match="global batch_size=1 is not divisible by world_size=3"):
        dm.per_device_batch_size()


def test_label_maps_for_the_prior_are_untransformed(tmp_path: Path) -> None:
    splits = tmp_path / "splits"
    labels = make_voc_tree(tmp_path / "VOC2012", {"train": VOC_TRAIN, "val": VOC_VAL})
    _write_split(splits, "3", VOC_TRAIN[:3], VOC_TRAIN[3:])
    dm = _voc(tmp_path, split=3, splits_dir=str(splits))
    maps = list(dm.labeled_label_maps())
    assert [m.shape for m in maps] == [(H, W)] * 3  # original size, not the padded crop
    assert all(np.array_equal(m, labels[n]) for m, n in zip(maps, VOC_TRAIN[:3], strict=True))
    two = list(dm.labeled_label_maps(max_images=2))  # evenly spaced: first and last
    assert np.array_equal(two[0], labels[VOC_TRAIN[0]]) and np.array_equal(two[1], labels[VOC_TRAIN[2]])


def test_cityscapes_unlabeled_frames_and_unknown_names(tmp_path: Path) -> None:
    root = tmp_path / "cs"
    make_city_tree(root, "train", CITY_TRAIN)
    make_city_tree(root, "val", ["frankfurt_000000_000294"])
    splits = tmp_path / "splits"
    _write_split(splits, "2", CITY_TRAIN[:2],
                 [f"leftImg8bit/train/aachen/{n}_leftImg8bit.png" for n in CITY_TRAIN[2:]])
    args = {"name": "cityscapes", "root": str(root), "num_classes": 19, "batch_size": 2,
            "split": 2, "splits_dir": str(splits), "train_transforms": {"crop_size": [H, W]}}
    dm = SemiSupervisedCityscapesDataModule(**args)
    dm.setup("fit")
    assert dm.unlabeled_dataset.names == CITY_TRAIN[2:]
    (batch, *_), = list(iter(dm.train_dataloader()))  # 3 unlabeled // 2 = one step
    assert batch["unlabeled"]["valid"].all()  # crop = image size: nothing padded
    _write_split(splits, "1", CITY_TRAIN[:1], ["bochum_000000_000001"])
    with pytest.raises(FileNotFoundError, match=r"1/unlabeled.txt are not frames.*bochum"):
        SemiSupervisedCityscapesDataModule(**{**args, "split": 1}).setup("fit")


def test_unlabeled_dataset_marks_only_padding(tmp_path: Path) -> None:
    make_voc_tree(tmp_path, {"train": ["2007_000001"]})
    path = tmp_path / "JPEGImages" / "2007_000001.jpg"
    ds = UnlabeledImageDataset([path], ["2007_000001"],
                               build_transforms(crop_size=[H, W + 2], scale_range=[1, 1]))
    sample = ds[0]
    assert sample["valid"].sum() == H * W and not sample["valid"][:, 0].any()
    with pytest.raises(ValueError, match="1 image paths but 2 names"):
        UnlabeledImageDataset([path], ["a", "b"])


def test_synthetic_split_files_are_generated_once(tmp_path: Path, data_dir: Path) -> None:
    params = {k: v for k, v in TINY_VOC.items()}
    splits = tmp_path / "splits"
    args = {"name": "synthetic_voc", "root": str(data_dir / "synthetic_voc" / "VOC2012"),
            "num_classes": 21, "batch_size": 2, "splits_dir": str(splits), "synthetic": params}
    dm = SemiSupervisedVOCDataModule(**args, split=3, split_seed=5)
    dm.prepare_data()
    labeled = (splits / "3" / "labeled.txt").read_text().split()
    unlabeled = (splits / "3" / "unlabeled.txt").read_text().split()
    assert len(labeled) == 3 and len(unlabeled) == TINY_VOC["num_train"] - 3
    assert labeled == make_splits("voc", args["root"], [3], seed=5)[3].labeled
    (splits / "3" / "labeled.txt").write_text("".join(f"{n}\n" for n in labeled[:2]))
    SemiSupervisedVOCDataModule(**args, split=3).prepare_data()  # existing files are kept
    assert (splits / "3" / "labeled.txt").read_text().split() == labeled[:2]
    with pytest.raises(ValueError, match="data.split='1_16'.*integer"):
        SemiSupervisedVOCDataModule(**args, split="1_16").prepare_data()


def test_real_voc_sample_two_labeled(tmp_path: Path) -> None:
    root = sample_data("voc_sample", "VOC2012")
    make_splits("voc", root, [2], seed=0, out=tmp_path / "splits")
    dm = SemiSupervisedVOCDataModule(name="voc", root=str(root), num_classes=21, batch_size=2,
                                     split=2, splits_dir=str(tmp_path / "splits"),
                                     train_transforms={"crop_size": [96, 96],
                                                       "scale_range": [0.1, 0.15]})
    (batch, *_), = list(iter(dm.train_dataloader()))  # 2 unlabeled // 2 = one step
    # a <= 500 px image scaled by <= 0.15 is smaller than the 96 px crop: padded, invalid
    valid = batch["unlabeled"]["valid"]
    assert valid.any() and not valid.all()
    assert sorted(batch["labeled"]["name"] + batch["unlabeled"]["name"]) == sorted(
        (root / "ImageSets" / "Segmentation" / "train.txt").read_text().split())
