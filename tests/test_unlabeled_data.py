"""Unlabelled image pools, BYOL view pipelines, probe images and label-fraction split files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from leseg.data.datamodules import CityscapesDataModule
from leseg.data.fractions import (
    fraction_count,
    fraction_dir,
    fraction_subset,
    labeled_pool,
    write_fraction_splits,
)
from leseg.data.fractions import main as fractions_main
from leseg.data.splits import load_split
from leseg.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from leseg.data.unlabeled import UnlabeledDataModule, UnlabeledImages, list_pool
from leseg.data.views import build_views, byol_views, reference_views

from conftest import TINY_CITY, sample_data

CITY_TRAIN = "leftImg8bit/train/*/*_leftImg8bit.png"


def _png(path: Path, value: int = 100, size: tuple[int, int] = (16, 24)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), value, np.uint8)).save(path)
    return path


def _normalised(value: int) -> torch.Tensor:
    return (value / 255.0 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)


# ------------------------------------------------------------------------------------ pools
def test_pool_merges_patterns_dedupes_names_and_excludes_lists(tmp_path: Path) -> None:
    _png(tmp_path / "leftImg8bit/train/a/a_000000_000019_leftImg8bit.png")
    _png(tmp_path / "leftImg8bit/test/b/b_000001_000019_leftImg8bit.png")
    _png(tmp_path / "leftImg8bit/test/b/b_000002_000019_leftImg8bit.png")
    # the same frame found by an overlapping pattern is kept once
    _png(tmp_path / "seq/a/a_000000_000019_leftImg8bit.png")
    (tmp_path / "val.txt").write_text("b_000002_000019\n")
    pool = list_pool(tmp_path, ["leftImg8bit/*/*/*_leftImg8bit.png", "seq/*/*.png"],
                     exclude=["val.txt"])
    assert list(pool) == ["a_000000_000019", "b_000001_000019"]
    assert pool["a_000000_000019"].parts[-4] == "leftImg8bit"  # first pattern wins


def test_pool_errors_name_the_pattern_and_root(tmp_path: Path) -> None:
    _png(tmp_path / "JPEGImages/x.jpg")
    with pytest.raises(FileNotFoundError, match=r"'leftImg8bit/train_extra/\*/\*.png'.*" +
                       str(tmp_path)):
        list_pool(tmp_path, ["JPEGImages/*.jpg", "leftImg8bit/train_extra/*/*.png"])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list_pool(tmp_path / "nope", ["*.jpg"])
    (tmp_path / "all.txt").write_text("x\n")
    with pytest.raises(ValueError, match="empty after excluding"):
        list_pool(tmp_path, ["JPEGImages/*.jpg"], exclude=["all.txt"])


def test_unreadable_image_names_its_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG not really")
    dataset = UnlabeledImages([bad], build_views("byol", size=8))
    with pytest.raises(OSError, match="broken.png"):
        dataset[0]


# ------------------------------------------------------------------------------------ views
def _plain_byol(**overrides):
    kwargs = dict(size=(8, 12), scale=(1.0, 1.0), hflip=0.0, jitter_p=0.0, grayscale_p=0.0,
                  blur_p=0.0, solarize_p=0.0)
    return byol_views(**{**kwargs, **overrides})


def test_byol_views_without_augmentation_are_the_normalised_image() -> None:
    image = np.full((16, 24, 3), 200, np.uint8)
    v1, v2 = _plain_byol()(image)
    assert v1.shape == v2.shape == (3, 8, 12) and v1.dtype == torch.float32
    expected = _normalised(200).view(3, 1, 1).expand(3, 8, 12)
    assert torch.allclose(v1, expected, atol=1e-5) and torch.allclose(v2, expected, atol=1e-5)


def test_byol_views_are_asymmetric_in_solarisation() -> None:
    # the paper's view 2 alone solarises: pixel values >= 128 become 255 - x
    image = np.full((16, 24, 3), 200, np.uint8)
    v1, v2 = _plain_byol(solarize_p=(0.0, 1.0))(image)
    assert torch.allclose(v1[:, 0, 0], _normalised(200), atol=1e-5)
    assert torch.allclose(v2[:, 0, 0], _normalised(55), atol=1e-5)


def test_byol_views_differ_and_are_reproducible_under_a_seed() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    views = build_views("byol", size=[32, 32])
    torch.manual_seed(3)
    a1, a2 = views(image)
    torch.manual_seed(3)
    b1, b2 = views(image)
    assert torch.equal(a1, b1) and torch.equal(a2, b2)
    assert not torch.allclose(a1, a2)


def test_reference_views_share_one_crop_and_pad_small_images() -> None:
    image = np.full((20, 30, 3), 90, np.uint8)  # smaller than the crop: zero-padded, no error
    views = reference_views(crop_size=(32, 48), jitter_p=0.0, grayscale_p=0.0,
                            resized_crop_scale=(1.0, 1.0), hflip=0.0)
    v1, v2 = views(image)
    assert v1.shape == v2.shape == (3, 32, 48)
    # view 1 is the shared crop itself; with a full-area resized crop view 2 equals it
    assert torch.allclose(v1, v2, atol=1e-5)
    padded = torch.isclose(v1[0], _normalised(0)[0], atol=1e-5)
    assert 0 < int(padded.sum()) < 32 * 48


def test_view_config_errors_name_the_key() -> None:
    with pytest.raises(ValueError, match="pipeline='simclr'"):
        build_views("simclr")
    with pytest.raises(TypeError, match="'reference' pipeline.*size"):
        build_views("reference", size=[32, 32])
    with pytest.raises(ValueError, match="blur_p"):
        byol_views(blur_p=(1.0, 1.5))
    with pytest.raises(ValueError, match="color_jitter has unknown key"):
        byol_views(color_jitter={"brightness": 0.4, "sharpness": 1.0})
    with pytest.raises(ValueError, match="size"):
        byol_views(size=(0, 32))


# ------------------------------------------------------------------------------------ DataModule
@pytest.fixture
def city_dm(data_dir: Path) -> UnlabeledDataModule:
    dm = UnlabeledDataModule(
        name="synthetic_city_unlabeled", root=str(data_dir / "synthetic_city"), sources=[CITY_TRAIN],
        views={"pipeline": "byol", "size": [32, 32]}, batch_size=3,
        probe={"dataset": "cityscapes", "split": "train", "num_images": 3, "resize": [32, 64]})
    dm.setup("fit")
    return dm


def test_datamodule_yields_two_view_batches_without_labels(city_dm: UnlabeledDataModule) -> None:
    assert len(city_dm.train_dataset) == TINY_CITY["num_train"]
    batch = next(iter(city_dm.train_dataloader()))
    assert set(batch) == {"view1", "view2", "name"}
    assert batch["view1"].shape == batch["view2"].shape == (3, 3, 32, 32)
    assert all(n.startswith("synthcity_") for n in batch["name"])
    # 8 images, batch 3: the incomplete last batch is dropped
    assert len(city_dm.train_dataloader()) == 2


def test_global_batch_size_is_split_over_ddp_processes(city_dm: UnlabeledDataModule) -> None:
    import types

    city_dm.trainer = types.SimpleNamespace(world_size=3)
    assert city_dm.per_device_batch_size() == 1  # global 3 over 3 processes
    city_dm.trainer = types.SimpleNamespace(world_size=2)
    with pytest.raises(ValueError, match="'synthetic_city_unlabeled': global batch_size=3 is not "
                                         "divisible by world_size=2"):
        city_dm.train_dataloader()


def test_probe_images_are_labelled_and_spread_over_the_split(city_dm: UnlabeledDataModule) -> None:
    probe = city_dm.probe_dataset()
    names = [probe[i]["name"] for i in range(len(probe))]
    # 8 sorted frames, 3 evenly spaced: indices 0, 4 (3.5 rounds to even), 7 -> both cities
    assert names == ["synthcity_a_000000_000019", "synthcity_b_000000_000019",
                     "synthcity_b_000003_000019"]
    sample = probe[0]
    assert sample["image"].shape == (3, 32, 64) and sample["label"].shape == (32, 64)
    assert sample["label"].dtype == torch.int64


def test_datamodule_config_errors(data_dir: Path) -> None:
    common = dict(name="u", root=str(data_dir / "synthetic_city"), sources=[CITY_TRAIN])
    with pytest.raises(ValueError, match="probe.dataset='kitti'"):
        UnlabeledDataModule(**common, probe={"dataset": "kitti"})
    with pytest.raises(ValueError, match=r"probe has unknown key\(s\) \['size'\]"):
        UnlabeledDataModule(**common, probe={"dataset": "cityscapes", "size": 3})
    with pytest.raises(TypeError, match="'byol' pipeline"):
        UnlabeledDataModule(**common, views={"pipeline": "byol", "crop_size": 64})
    dm = UnlabeledDataModule(**{**common, "sources": ["leftImg8bit/test/*/*.png"]})
    with pytest.raises(FileNotFoundError, match="leftImg8bit/test"):
        dm.setup("fit")


def test_real_frames_make_views(tmp_path: Path) -> None:
    city = sample_data("cityscapes_sample")
    voc = sample_data("voc_sample", "VOC2012")
    pool = list_pool(city, ["leftImg8bit/val/*/*_leftImg8bit.png"])
    assert "frankfurt_000001_058914" in pool  # the full-resolution 2048x1024 frame
    voc_pool = list_pool(voc, ["JPEGImages/*.jpg"], exclude=["ImageSets/Segmentation/val.txt"])
    assert "2007_000033" not in voc_pool and len(voc_pool) == 4
    dataset = UnlabeledImages(list(pool.values()) + list(voc_pool.values()),
                              build_views("reference", crop_size=[64, 64]))
    for i in range(len(dataset)):
        sample = dataset[i]
        assert sample["view1"].shape == sample["view2"].shape == (3, 64, 64)
        assert torch.isfinite(sample["view1"]).all()


# ------------------------------------------------------------------------------------ fractions
def test_fraction_count_is_the_floor_with_at_least_one() -> None:
    assert fraction_count(2975, 1) == 29  # the reference's first 1 % of Cityscapes
    assert fraction_count(200, 10) == 20
    assert fraction_count(3, 10) == 1
    assert fraction_count(2975, 100) == 2975
    for bad in (0, -5, 100.5):
        with pytest.raises(ValueError, match="percentage"):
            fraction_count(100, bad)


def test_first_mode_reproduces_the_reference_and_random_mode_is_seeded_and_nested() -> None:
    pool = [f"aachen_{i:06d}" for i in range(6)] + [f"bochum_{i:06d}" for i in range(6)]
    assert fraction_subset(pool, 25, "first") == pool[:3]  # city-biased: aachen only
    small = fraction_subset(pool, 25, "random", seed=0)
    large = fraction_subset(pool, 50, "random", seed=0)
    assert len(small) == 3 and len(large) == 6 and set(small) < set(large)
    assert fraction_subset(pool, 25, "random", seed=0) == small
    assert fraction_subset(list(reversed(pool)), 25, "random", seed=0) == small  # order-free
    other_seeds = {tuple(fraction_subset(pool, 25, "random", seed=s)) for s in range(1, 6)}
    assert other_seeds - {tuple(small)}
    with pytest.raises(ValueError, match="mode"):
        fraction_subset(pool, 10, "stratified")


def test_fraction_split_files_drive_the_datamodule(data_dir: Path, tmp_path: Path) -> None:
    root = data_dir / "synthetic_city"
    pool = labeled_pool("cityscapes", root)
    assert pool == sorted(pool) and len(pool) == TINY_CITY["num_train"]
    out = fraction_dir(tmp_path / "splits", "random", seed=1)
    lists = write_fraction_splits(pool, [25, 50], out, "random", seed=1)["25pct"]
    assert load_split(out, "25pct") == lists and len(lists.labeled) == 2
    assert sorted(lists.labeled + lists.unlabeled) == pool
    dm = CityscapesDataModule(name="synthetic_city", root=str(root), num_classes=19,
                              split="25pct", splits_dir=str(out))
    dm.setup("fit")
    assert dm.train_dataset.names == lists.labeled


def test_fractions_command_writes_per_seed_folders(data_dir: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    root = str(data_dir / "synthetic_city")
    out = tmp_path / "splits"
    assert fractions_main(["--dataset", "cityscapes", "--root", root, "--percents", "50",
                           "--seeds", "0", "1", "--out", str(out)]) == 0
    a = load_split(out / "fractions-random" / "seed0", "50pct").labeled
    b = load_split(out / "fractions-random" / "seed1", "50pct").labeled
    assert len(a) == len(b) == 4 and a != b
    assert fractions_main(["--dataset", "cityscapes", "--root", root, "--percents", "25",
                           "--mode", "first", "--out", str(out)]) == 0
    assert load_split(out / "fractions-first", "25pct").labeled == labeled_pool("cityscapes",
                                                                                root)[:2]
    assert fractions_main(["--dataset", "cityscapes", "--root", str(tmp_path / "none"),
                           "--percents", "5", "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
