"""DataModules on tiny fake trees, split restriction, batch-size rules, and the real sample frames."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_datasets import CITY_TRAINIDS, make_city_tree, make_voc_tree

from leseg.data.datamodules import (
    CityscapesDataModule,
    SegmentationDataModule,
    VOCDataModule,
    collate_samples,
)
from leseg.data.io import read_label
from leseg.data.labels import CITYSCAPES_PALETTE, VOC_CLASS_NAMES

from conftest import sample_data

CITY_TRAIN = [f"aachen_00000{i}_000019" for i in range(5)]
CITY_VAL = ["frankfurt_000000_000294", "lindau_000000_000019"]


def _city(tmp_path: Path, **kwargs) -> CityscapesDataModule:
    make_city_tree(tmp_path / "cs", "train", CITY_TRAIN)
    make_city_tree(tmp_path / "cs", "val", CITY_VAL)
    args = {"name": "cityscapes", "root": str(tmp_path / "cs"), "num_classes": 19,
            "batch_size": 2, "train_transforms": {"crop_size": [6, 6], "hflip": 0.5}}
    return CityscapesDataModule(**{**args, **kwargs})


def test_cityscapes_batches(tmp_path: Path) -> None:
    dm = _city(tmp_path, crop_name="6x6", some_descriptive_key=1)
    dm.setup("fit")
    loader = dm.train_dataloader()
    batches = list(loader)
    assert len(batches) == 2  # 5 samples, batch 2, last incomplete batch dropped
    batch = batches[0]
    assert set(batch) == {"image", "label", "name"}
    assert batch["image"].shape == (2, 3, 6, 6) and batch["image"].dtype == torch.float32
    assert batch["label"].shape == (2, 6, 6) and batch["label"].dtype == torch.int64
    assert set(batch["label"].unique().tolist()) <= set(CITY_TRAINIDS.tolist())
    assert all(n in CITY_TRAIN for n in batch["name"])
    val = list(dm.val_dataloader())
    assert [b["name"] for b in val] == [[n] for n in CITY_VAL]  # in order, batch 1, full size
    assert val[0]["image"].shape == (1, 3, 8, 12)
    assert [b["name"][0] for b in dm.test_dataloader()] == CITY_VAL
    assert dm.class_names[0] == "road" and np.array_equal(dm.palette, CITYSCAPES_PALETTE)
    assert dm.info.name == "cityscapes" and dm.info.num_classes == 19
    assert dm.crop_name == "6x6" and dm.extra_config == {"some_descriptive_key": 1}


def test_voc_batches_from_palette_pngs(tmp_path: Path) -> None:
    root = tmp_path / "VOC2012"
    labels = make_voc_tree(root, {"train": ["2007_000001", "2007_000002", "2007_000003"],
                                  "val": ["2008_000004", "2008_000005"]})
    dm = VOCDataModule(name="voc", root=str(root), num_classes=21, batch_size=3,
                       val_batch_size=2, train_transforms={"crop_size": 8, "scale_range": [1, 1]})
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (3, 3, 8, 8) and batch["label"].dtype == torch.int64
    assert set(batch["label"].unique().tolist()) <= {0, 1, 15, 20, 255}
    val = next(iter(dm.val_dataloader()))
    assert val["name"] == ["2008_000004", "2008_000005"]
    assert np.array_equal(val["label"][1].numpy(), labels["2008_000005"])
    assert dm.class_names == list(VOC_CLASS_NAMES)


def test_split_restricts_training_samples(tmp_path: Path) -> None:
    splits = tmp_path / "splits"
    (splits / "2").mkdir(parents=True)
    (splits / "2" / "labeled.txt").write_text(
        f"leftImg8bit/train/aachen/{CITY_TRAIN[3]}_leftImg8bit.png\n{CITY_TRAIN[1]}\n")
    dm = _city(tmp_path, split=2, splits_dir=str(splits))
    dm.setup("fit")
    assert len(dm.train_dataset) == 2
    names = sorted(n for b in dm.train_dataloader() for n in b["name"])
    assert names == [CITY_TRAIN[1], CITY_TRAIN[3]]
    assert len(dm.val_dataset) == 2  # validation is never restricted
    missing = _city(tmp_path, split=372, splits_dir=str(splits))
    with pytest.raises(FileNotFoundError, match=r"(?s)372/labeled.txt.*python -m leseg.data.splits"):
        missing.setup("fit")


def test_max_samples_and_label_dir(tmp_path: Path) -> None:
    pseudo = tmp_path / "pseudo"
    pseudo.mkdir()
    for name in CITY_TRAIN:
        Image.fromarray(np.full((8, 12), 7, np.uint8)).save(pseudo / f"{name}.png")
    dm = _city(tmp_path, max_train_samples=3, max_val_samples=1, label_dir=str(pseudo),
               train_transforms=None, batch_size=1)
    dm.setup("fit")
    dm.setup("test")
    assert len(dm.train_dataset) == 3 and len(dm.val_dataset) == 1 and len(dm.test_dataset) == 1
    assert {int(b["label"].unique()) for b in dm.train_dataloader()} == {7}
    val_label = next(iter(dm.val_dataloader()))["label"][0].numpy()
    assert not (val_label == 7).all()  # validation reads gtFine, not the pseudo-masks


def test_per_device_batch_size_and_config_errors(tmp_path: Path) -> None:
    dm = _city(tmp_path, batch_size=8)
    dm.trainer = types.SimpleNamespace(world_size=2)
    assert dm.per_device_batch_size() == 4
    dm.trainer = types.SimpleNamespace(world_size=3)
    with pytest.raises(ValueError, match="batch_size=8 is not divisible by world_size=3"):
        dm.setup("fit")
    with pytest.raises(ValueError, match="num_classes=21"):
        _city(tmp_path, num_classes=21)
    with pytest.raises(ValueError, match="ignore_index=250"):
        _city(tmp_path, ignore_index=250)
    with pytest.raises(ValueError, match="needs splits_dir"):
        _city(tmp_path, split=100)
    with pytest.raises(TypeError):
        _city(tmp_path, train_transforms={"crop": [4, 4]})
    with pytest.raises(TypeError, match="base class"):
        SegmentationDataModule(name="x", root=str(tmp_path), num_classes=19)


def test_prepare_data_generates_synthetic_first(tmp_path: Path, monkeypatch) -> None:
    calls = []

    def ensure_synthetic(kind, root, **params):
        calls.append((kind, Path(root), params))
        make_city_tree(Path(root), "train", CITY_TRAIN[:2])
        make_city_tree(Path(root), "val", CITY_VAL[:1])
        return Path(root)

    fake = types.ModuleType("leseg.data.synthetic")
    fake.ensure_synthetic = ensure_synthetic
    monkeypatch.setitem(sys.modules, "leseg.data.synthetic", fake)
    root = tmp_path / "synthetic_city"
    dm = CityscapesDataModule(name="synthetic_city", root=str(root), num_classes=19,
                              synthetic={"kind": "city", "num_train": 2, "seed": 0})
    dm.prepare_data()
    assert calls == [("city", root, {"num_train": 2, "seed": 0})]
    dm.setup("fit")
    assert len(dm.train_dataset) == 2 and dm.info.name == "synthetic_city"
    with pytest.raises(ValueError, match="'kind'"):
        CityscapesDataModule(name="s", root=str(root), num_classes=19, synthetic={"seed": 0})


def test_collate_rejects_mixed_sizes() -> None:
    a = {"image": torch.zeros(3, 2, 2), "label": torch.zeros(2, 2), "name": "a"}
    b = {"image": torch.zeros(3, 2, 3), "label": torch.zeros(2, 3), "name": "b"}
    assert collate_samples([a, a])["name"] == ["a", "a"]
    with pytest.raises(ValueError, match=r"'image'.*\['a', 'b'\]"):
        collate_samples([a, b])


# ---------------------------------------------------------------- real frames (LESEG_SAMPLE_DATA)
@pytest.mark.sample_data
def test_real_cityscapes_labelids_mapping_matches_shipped_trainids(tmp_path: Path) -> None:
    src = sample_data("cityscapes_sample")
    names = ["frankfurt_000000_000294", "frankfurt_000001_058914"]
    # a labelIds-only view of the sample (symlinks), so the dataset maps labelIds in code
    for sub, suffix in (("leftImg8bit", "_leftImg8bit.png"), ("gtFine", "_gtFine_labelIds.png")):
        folder = tmp_path / sub / "val" / "frankfurt"
        folder.mkdir(parents=True)
        for name in names:
            (folder / f"{name}{suffix}").symlink_to(src / sub / "val/frankfurt" / f"{name}{suffix}")
    dm = CityscapesDataModule(name="cityscapes", root=str(tmp_path), num_classes=19)
    batches = list(dm.test_dataloader())
    assert [b["name"] for b in batches] == [[n] for n in names]
    assert batches[0]["image"].shape == (1, 3, 128, 256)
    assert batches[1]["image"].shape == (1, 3, 1024, 2048)
    shipped = [read_label(src / "gtFine/val/frankfurt" / f"{n}_gtFine_labelTrainIds.png")
               for n in names]
    mapped = [b["label"][0].numpy() for b in batches]
    # value sets listed in PROVENANCE.md
    assert np.unique(mapped[0]).tolist() == [0, 1, 2, 4, 5, 7, 8, 10, 11, 13, 255]
    assert np.unique(mapped[1]).tolist() == [0, 1, 2, 5, 6, 7, 8, 10, 11, 12, 13, 18, 255]
    # frankfurt_000000_000294: mmsegmentation downscaled the labelIds and labelTrainIds files
    # separately (nearest neighbour), so 77 boundary pixels (0.24 %) differ; each differing
    # pixel's shipped value occurs in the mapped map within 2 px. Everywhere else: equal.
    differ = mapped[0] != shipped[0]
    assert differ.mean() < 0.005
    padded = np.pad(mapped[0], 2, mode="edge")
    near = np.zeros_like(differ)
    for dy in range(5):
        for dx in range(5):
            near |= padded[dy:dy + 128, dx:dx + 256] == shipped[0]
    assert near.all()
    # frankfurt_000001_058914 (full resolution, both maps derived from the colour PNG): exact
    assert np.array_equal(mapped[1], shipped[1])


@pytest.mark.sample_data
def test_real_voc_palette_decoding_matches_aug(tmp_path: Path) -> None:
    root = sample_data("voc_sample", "VOC2012")
    provenance = {"2011_000003": [0, 5, 15, 255], "2011_000006": [0, 9, 15, 18, 255],
                  "2011_000025": [0, 6, 7, 255], "2011_003066": [0, 5, 9, 11, 15, 255],
                  "2007_000033": [0, 1, 255]}
    official = VOCDataModule(name="voc", root=str(root), num_classes=21, train_set="trainval",
                             label_subdir="SegmentationClass", batch_size=1)
    aug = VOCDataModule(name="voc", root=str(root), num_classes=21, train_set="trainval",
                        label_subdir="SegmentationClassAug", batch_size=1)
    official.setup("fit")
    aug.setup("fit")
    assert len(official.train_dataset) == 5
    for i, name in enumerate(official.train_dataset.names):
        a = official.train_dataset[i]
        b = aug.train_dataset[i]
        assert a["name"] == b["name"] == name
        assert torch.equal(a["label"], b["label"])
        assert a["label"].unique().tolist() == provenance[name]
        assert a["image"].shape[1:] == a["label"].shape
    val = next(iter(official.val_dataloader()))
    assert val["name"] == ["2007_000033"] and val["label"].shape == (1, 366, 500)
    assert official.val_dataset.label_subdir == "SegmentationClass"


def test_samples_per_epoch_gives_every_split_the_same_steps(tmp_path: Path) -> None:
    """A fixed epoch length: a 2-image split and the 5-image full set both train 4 batches of 2
    per epoch; the small split is oversampled (each image 4 times), deterministically."""
    splits = tmp_path / "splits"
    (splits / "2").mkdir(parents=True)
    (splits / "2" / "labeled.txt").write_text(f"{CITY_TRAIN[3]}\n{CITY_TRAIN[1]}\n")
    small = _city(tmp_path, split=2, splits_dir=str(splits), samples_per_epoch=9)
    full = _city(tmp_path, samples_per_epoch=9)
    for dm in (small, full):
        dm.setup("fit")
    names = [n for b in small.train_dataloader() for n in b["name"]]
    assert len(names) == 8  # 9 draws rounded down to whole global batches of 2
    assert sorted(set(names)) == sorted([CITY_TRAIN[1], CITY_TRAIN[3]])
    assert names.count(CITY_TRAIN[1]) == names.count(CITY_TRAIN[3]) == 4
    assert len(list(full.train_dataloader())) == 4
    again = _city(tmp_path, split=2, splits_dir=str(splits), samples_per_epoch=9)
    again.setup("fit")
    assert [n for b in again.train_dataloader() for n in b["name"]] == names
    with pytest.raises(ValueError, match="samples_per_epoch=1 must be at least batch_size=2"):
        _city(tmp_path, samples_per_epoch=1)


def test_supervised_synthetic_split_files_are_generated_nested(data_dir: Path,
                                                                tmp_path: Path) -> None:
    """A supervised run on a synthetic dataset with a labeled count writes its split files (as the
    semi-supervised module does), nested over counts for the same split_seed."""
    from conftest import TINY_CITY

    synthetic = {k: v for k, v in TINY_CITY.items()}
    args = {"name": "synthetic_city", "root": str(data_dir / "synthetic_city"), "num_classes": 19,
            "splits_dir": str(tmp_path / "splits"), "synthetic": synthetic, "batch_size": 2}
    small, large = (CityscapesDataModule(split=n, **args) for n in (2, 5))
    for dm in (small, large):
        dm.prepare_data()
        dm.setup("fit")
    names = {n: {s.get("name") for s in (dm.train_dataset[i] for i in range(len(dm.train_dataset)))}
             for n, dm in ((2, small), (5, large))}
    assert len(names[2]) == 2 and len(names[5]) == 5 and names[2] <= names[5]
    assert (tmp_path / "splits" / "2" / "unlabeled.txt").read_text().count("\n") == 6
    with pytest.raises(ValueError, match="split files can only be generated for a labeled count"):
        CityscapesDataModule(split="1_16", **args).prepare_data()


# ----------------------------------------------------------- CamVid, real files (LESEG_SAMPLE_DATA)
def _camvid_data(overrides: list[str]):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.utils import instantiate

    from conftest import CONF

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=overrides + ["data.num_workers=0",
                                                      "data.persistent_workers=false",
                                                      "data.pin_memory=false"])
    GlobalHydra.instance().clear()
    return instantiate(cfg.data), cfg


@pytest.mark.sample_data
def test_real_camvid_datamodule_selects_on_val_reports_on_test() -> None:
    root = sample_data("camvid")
    dm, cfg = _camvid_data(["data=camvid", f"data.root={root}",
                            "data.train_transforms.crop_size=[240,320]", "data.batch_size=2"])
    assert cfg.inference.mode == "whole" and dm.class_names[0] == "sky" and len(dm.palette) == 11
    dm.setup("fit")
    dm.setup("test")
    assert (len(dm.train_dataset), len(dm.val_dataset), len(dm.test_dataset)) == (367, 101, 233)
    assert dm.val_dataset.split == "val" and dm.test_dataset.split == "test"
    assert not set(dm.val_dataset.names) & set(dm.test_dataset.names)
    train = next(iter(dm.train_dataloader()))
    assert train["image"].shape == (2, 3, 240, 320) and train["label"].shape == (2, 240, 320)
    test = next(iter(dm.test_dataloader()))
    assert test["image"].shape == (4, 3, 360, 480)  # whole frames, 4 per batch
    assert set(test["label"].unique().tolist()) <= set(range(11)) | {255}
    assert (test["label"] == 255).any()  # raw 11 (unlabelled) became ignore


@pytest.mark.sample_data
def test_real_camvid_split_semi_binary_and_image_label_modules(tmp_path: Path) -> None:
    from leseg.data.splits import make_splits

    root = sample_data("camvid")
    splits = tmp_path / "splits"
    lists = make_splits("camvid", root, counts=[23], seed=0, out=splits)[23]
    common = [f"data.root={root}", f"data.splits_dir={splits}", "data.batch_size=2",
              "data.train_transforms.crop_size=[120,160]", "data.train_transforms.scale_range=[0.3,0.5]"]
    dm, _ = _camvid_data(["data=camvid", "data.split=23", *common])
    dm.setup("fit")
    assert dm.train_dataset.names == lists.labeled
    semi, _ = _camvid_data(["data=camvid_semi", "data.split=23", "data.unlabeled_batch_size=4",
                            *common])
    semi.setup("fit")
    assert len(semi.train_dataset) == 23 and len(semi.unlabeled_dataset) == 344
    assert semi.unlabeled_dataset.names == lists.unlabeled
    assert semi.iterations_per_epoch() == 344 // 4
    batch = next(iter(semi.train_dataloader()))
    batch = batch[0] if isinstance(batch, tuple) else batch
    assert batch["labeled"]["image"].shape == (2, 3, 120, 160)
    assert batch["unlabeled"]["valid"].shape == (4, 120, 160)
    assert set(batch["labeled"]["name"]) <= set(lists.labeled)
    assert set(batch["unlabeled"]["name"]) <= set(lists.unlabeled)
    binary, _ = _camvid_data(["data=camvid_binary", f"data.root={root}"])
    binary.setup("validate")
    val = binary.val_dataset[0]
    assert set(val["label"].unique().tolist()) <= {0, 1} and 0 <= int(val["class_id"]) < 11
    assert binary.val_dataset[0]["class_id"] == val["class_id"]  # repeatable at validation
    labels, _ = _camvid_data(["data=camvid_image_labels", f"data.root={root}",
                              f"data.cache_dir={tmp_path / 'cache'}"])
    labels.setup("validate")
    sample = labels.val_dataset[3]
    present = sorted(v for v in sample["label"].unique().tolist() if v != 255)
    assert sample["class_labels"].shape == (11,)
    assert torch.nonzero(sample["class_labels"]).flatten().tolist() == present


@pytest.mark.sample_data
def test_real_cityscapes_train_frames_of_aachen() -> None:
    root = sample_data("cityscapes_sample")
    dm = CityscapesDataModule(name="cityscapes", root=str(root), num_classes=19, batch_size=2,
                              train_transforms={"scale_range": [0.25, 0.25],
                                                "crop_size": [128, 256], "hflip": 0.5})
    dm.setup("fit")
    names = [f"aachen_00000{i}_000019" for i in range(8)]
    assert dm.train_dataset.names == names
    assert all(dm.train_dataset.label_is_labelid)  # official labelIds, mapped to trainIds in code
    image, label = dm.train_dataset.load(0)
    assert image.shape == (1024, 2048, 3) and label.shape == (1024, 2048)
    raw = read_label(root / "gtFine/train/aachen/aachen_000000_000019_gtFine_labelIds.png")
    assert np.array_equal(label[raw == 7], np.zeros((raw == 7).sum(), np.uint8))  # road -> 0
    assert (label[raw <= 6] == 255).all()  # void labelIds -> ignore
    batches = list(dm.train_dataloader())
    assert len(batches) == 4 and batches[0]["image"].shape == (2, 3, 128, 256)
    assert sorted(n for b in batches for n in b["name"]) == names
