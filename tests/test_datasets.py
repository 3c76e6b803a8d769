"""File reading (io.py) and the Cityscapes / VOC datasets on tiny fake trees written here.

The tree builders (``make_city_tree``, ``make_voc_tree``) are also used by test_datamodules.py and
test_splits.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from leseg.data.camvid import CamVidSegmentation, read_camvid_list
from leseg.data.cityscapes import CityscapesSegmentation
from leseg.data.io import ImageDecodeError, read_image, read_label, write_png_atomic
from leseg.data.labels import VOC_COLORMAP
from leseg.data.voc import VOCSegmentation

from conftest import sample_data

H, W = 8, 12
# labelIds used in the fake Cityscapes frames and their trainIds (hand-mapped)
CITY_LABELIDS = np.array([0, 7, 8, 26, 33, 9], dtype=np.uint8)
CITY_TRAINIDS = np.array([255, 0, 1, 13, 18, 255], dtype=np.uint8)


def _image(seed: int, h: int = H, w: int = W) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def city_labelids(seed: int, h: int = H, w: int = W) -> np.ndarray:
    """A (h, w) labelIds map drawn from CITY_LABELIDS."""
    return CITY_LABELIDS[np.random.default_rng(seed).integers(0, len(CITY_LABELIDS), (h, w))]


def make_city_tree(root: Path, split: str = "train",
                   frames: Sequence[str] = ("aachen_000000_000019", "aachen_000001_000019",
                                            "bochum_000000_000313"),
                   size: tuple[int, int] = (H, W)) -> dict[str, np.ndarray]:
    """Official Cityscapes layout with leftImg8bit + gtFine labelIds only; returns name → labelIds."""
    out = {}
    for k, name in enumerate(frames):
        city = name.split("_")[0]
        img_dir = root / "leftImg8bit" / split / city
        gt_dir = root / "gtFine" / split / city
        img_dir.mkdir(parents=True, exist_ok=True)
        gt_dir.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_image(k, *size)).save(img_dir / f"{name}_leftImg8bit.png")
        ids = city_labelids(100 + k, *size)
        Image.fromarray(ids).save(gt_dir / f"{name}_gtFine_labelIds.png")
        out[name] = ids
    return out


def make_voc_tree(root: Path, splits: dict[str, Sequence[str]], size: tuple[int, int] = (H, W),
                  subdirs: Sequence[str] = ("SegmentationClass",)) -> dict[str, np.ndarray]:
    """VOC2012 layout with JPEGs, palette-PNG masks and id lists; returns id → class indices."""
    (root / "JPEGImages").mkdir(parents=True, exist_ok=True)
    (root / "ImageSets" / "Segmentation").mkdir(parents=True, exist_ok=True)
    labels = {}
    for split, ids in splits.items():
        (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text(
            "".join(f"{i}\n" for i in ids))
        for i in ids:
            if i in labels:
                continue
            seed = int(i.replace("_", "")) % 1000
            Image.fromarray(_image(seed, *size)).save(root / "JPEGImages" / f"{i}.jpg", quality=95)
            values = np.array([0, 1, 15, 20, 255], dtype=np.uint8)
            label = values[np.random.default_rng(seed).integers(0, len(values), size)]
            for sub in subdirs:
                write_png_atomic(root / sub / f"{i}.png", label, palette=VOC_COLORMAP)
            labels[i] = label
    return labels


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


# -------------------------------------------------------------------------------------- io
def test_read_image_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.png"):
        read_image(tmp_path / "nope.png")
    for suffix in ("png", "jpg"):
        path = tmp_path / f"img.{suffix}"
        Image.fromarray(_image(0, 64, 64)).save(path)
        assert read_image(path).shape == (64, 64, 3)
        _truncate(path)
        with pytest.raises(ImageDecodeError, match=f"img.{suffix}"):
            read_image(path)
    junk = tmp_path / "junk.png"
    junk.write_text("not an image")
    with pytest.raises(ImageDecodeError, match="junk.png"):
        read_image(junk)
    deep = tmp_path / "deep.png"
    Image.fromarray(np.zeros((4, 4), np.uint16)).save(deep)
    with pytest.raises(ValueError, match=r"deep.png.*I;16"):
        read_image(deep)


def test_read_label_modes(tmp_path: Path) -> None:
    label = np.array([[0, 3], [255, 7]], dtype=np.uint8)
    Image.fromarray(label).save(tmp_path / "gray.png")
    assert np.array_equal(read_label(tmp_path / "gray.png"), label)
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(ValueError, match=r"rgb.png has mode 'RGB'"):
        read_label(tmp_path / "rgb.png")


def test_write_png_atomic_leaves_no_partial_file(tmp_path: Path, monkeypatch) -> None:
    path = write_png_atomic(tmp_path / "out.png", np.full((3, 3), 4, np.uint8))
    before = path.read_bytes()

    def broken_save(self, fp, *args, **kwargs):
        Path(fp).write_bytes(b"\x89PNG partial")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        write_png_atomic(path, np.zeros((3, 3), np.uint8))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]
    with pytest.raises(ValueError, match="0..255"):
        write_png_atomic(tmp_path / "bad.png", np.array([[256]]))


# ------------------------------------------------------------------------------ Cityscapes
def test_cityscapes_sample_from_labelids(tmp_path: Path) -> None:
    ids = make_city_tree(tmp_path)
    ds = CityscapesSegmentation(tmp_path, "train")
    assert ds.names == ["aachen_000000_000019", "aachen_000001_000019", "bochum_000000_000313"]
    sample = ds[2]
    assert set(sample) == {"image", "label", "name"}
    assert sample["name"] == "bochum_000000_000313"
    assert sample["image"].dtype == torch.float32 and sample["image"].shape == (3, H, W)
    assert sample["label"].dtype == torch.int64 and sample["label"].shape == (H, W)
    # labelIds → trainIds in code, checked value by value against the hand-mapped table
    raw = ids["bochum_000000_000313"]
    expected = np.select([raw == v for v in CITY_LABELIDS], list(CITY_TRAINIDS))
    assert np.array_equal(sample["label"].numpy(), expected)
    # ImageNet normalisation of the lossless PNG, one pixel by hand
    px = np.asarray(Image.open(tmp_path / "leftImg8bit/train/bochum/"
                               "bochum_000000_000313_leftImg8bit.png"))[0, 0] / 255.0
    hand = (px - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    assert torch.allclose(sample["image"][:, 0, 0], torch.tensor(hand, dtype=torch.float32),
                          atol=1e-5)


def test_cityscapes_prefers_labeltrainids(tmp_path: Path) -> None:
    make_city_tree(tmp_path, frames=("aachen_000000_000019",))
    trainids = np.full((H, W), 5, np.uint8)
    trainids[0, 0] = 255
    Image.fromarray(trainids).save(
        tmp_path / "gtFine/train/aachen/aachen_000000_000019_gtFine_labelTrainIds.png")
    assert np.array_equal(CityscapesSegmentation(tmp_path)[0]["label"].numpy(), trainids)


def test_cityscapes_ids_and_label_dir(tmp_path: Path) -> None:
    make_city_tree(tmp_path)
    ds = CityscapesSegmentation(tmp_path, ids=["bochum_000000_000313", "aachen_000000_000019"])
    assert ds.names == ["bochum_000000_000313", "aachen_000000_000019"]
    with pytest.raises(FileNotFoundError, match=r"splits/7/labeled.txt.*aachen_999999_000000"):
        CityscapesSegmentation(tmp_path, ids=["aachen_999999_000000"],
                               ids_source="splits/7/labeled.txt")
    pseudo = tmp_path / "pseudo"
    pseudo.mkdir()
    masks = {n: np.full((H, W), k, np.uint8) for k, n in enumerate(ds.names)}
    for n, m in masks.items():
        Image.fromarray(m).save(pseudo / f"{n}.png")
    ds = CityscapesSegmentation(tmp_path, ids=list(masks), label_dir=pseudo)
    assert [int(ds[i]["label"].unique()) for i in range(2)] == [0, 1]
    (pseudo / "aachen_000000_000019.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"pseudo/aachen_000000_000019.png"):
        CityscapesSegmentation(tmp_path, ids=list(masks), label_dir=pseudo)


def test_cityscapes_missing_root_and_label(tmp_path: Path) -> None:
    root = tmp_path / "cityscapes"
    with pytest.raises(FileNotFoundError) as err:
        CityscapesSegmentation(root, "train")
    assert str(root) in str(err.value)
    assert "leftImg8bit/train/<city>/*_leftImg8bit.png" in str(err.value)
    make_city_tree(root)
    with pytest.raises(FileNotFoundError, match="split 'val'"):
        CityscapesSegmentation(root, "val")
    (root / "gtFine/train/aachen/aachen_000001_000019_gtFine_labelIds.png").unlink()
    with pytest.raises(FileNotFoundError, match="aachen_000001_000019_gtFine_labelIds.png"):
        CityscapesSegmentation(root, "train")


def test_cityscapes_bad_files_at_load(tmp_path: Path) -> None:
    make_city_tree(tmp_path)
    gt = tmp_path / "gtFine/train/aachen"
    img = tmp_path / "leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png"
    _truncate(img)
    ds = CityscapesSegmentation(tmp_path)
    with pytest.raises(ImageDecodeError, match="aachen_000000_000019_leftImg8bit.png"):
        ds[0]
    # labelIds beyond 33 are not Cityscapes labels
    bad = city_labelids(1)
    bad[2, 3] = 40
    Image.fromarray(bad).save(gt / "aachen_000001_000019_gtFine_labelIds.png")
    with pytest.raises(ValueError, match=r"aachen_000001_000019_gtFine_labelIds.png.*\[40\]"):
        ds[1]
    # a trainIds file with value 19 is out of [0, 19) ∪ {255}
    bad_train = np.zeros((H, W), np.uint8)
    bad_train[0, 0] = 19
    Image.fromarray(bad_train).save(gt / "aachen_000001_000019_gtFine_labelTrainIds.png")
    with pytest.raises(ValueError, match=r"labelTrainIds.png.*\[19\]"):
        CityscapesSegmentation(tmp_path)[1]
    # image/label size mismatch names both files and both sizes
    Image.fromarray(np.zeros((H, W + 1), np.uint8)).save(
        gt / "aachen_000001_000019_gtFine_labelTrainIds.png")
    with pytest.raises(ValueError) as err:
        CityscapesSegmentation(tmp_path)[1]
    msg = str(err.value)
    assert "aachen_000001_000019_leftImg8bit.png" in msg and f"{H}x{W}" in msg
    assert "aachen_000001_000019_gtFine_labelTrainIds.png" in msg and f"{H}x{W + 1}" in msg


# -------------------------------------------------------------------------------------- VOC
def test_voc_palette_labels_and_samples(tmp_path: Path) -> None:
    labels = make_voc_tree(tmp_path, {"train": ["2007_000001", "2007_000002"],
                                      "val": ["2008_000003"]})
    ds = VOCSegmentation(tmp_path, "train")
    assert ds.names == ["2007_000001", "2007_000002"] and len(ds) == 2
    sample = ds[1]
    assert sample["name"] == "2007_000002"
    assert sample["image"].shape == (3, H, W) and sample["image"].dtype == torch.float32
    assert sample["label"].dtype == torch.int64
    assert np.array_equal(sample["label"].numpy(), labels["2007_000002"])
    assert len(VOCSegmentation(tmp_path, "val")) == 1


def test_voc_grayscale_and_rgb_labels_decode_to_the_same_indices(tmp_path: Path) -> None:
    labels = make_voc_tree(tmp_path, {"train": ["2007_000001"]})
    label = labels["2007_000001"]
    path = tmp_path / "SegmentationClass" / "2007_000001.png"
    Image.fromarray(label).save(path)  # grayscale indices
    assert Image.open(path).mode == "L"
    assert np.array_equal(VOCSegmentation(tmp_path)[0]["label"].numpy(), label)
    Image.fromarray(VOC_COLORMAP[label]).save(path)  # RGB colour rendering
    assert Image.open(path).mode == "RGB"
    assert np.array_equal(VOCSegmentation(tmp_path)[0]["label"].numpy(), label)
    rgb = VOC_COLORMAP[label].copy()
    rgb[0, 0] = (7, 7, 7)
    Image.fromarray(rgb).save(path)
    with pytest.raises(ValueError, match=r"SegmentationClass/2007_000001.png.*\(7, 7, 7\)"):
        VOCSegmentation(tmp_path)[0]


def test_voc_default_label_subdir(tmp_path: Path) -> None:
    make_voc_tree(tmp_path, {"train": ["2007_000001"], "val": ["2008_000003"]})
    assert VOCSegmentation(tmp_path, "train").label_subdir == "SegmentationClass"
    make_voc_tree(tmp_path, {"train": ["2007_000001"], "val": ["2008_000003"]},
                  subdirs=("SegmentationClassAug",))
    assert VOCSegmentation(tmp_path, "train").label_subdir == "SegmentationClassAug"
    assert VOCSegmentation(tmp_path, "val").label_subdir == "SegmentationClass"
    ds = VOCSegmentation(tmp_path, "val", label_subdir="SegmentationClassAug")
    assert ds.label_paths[0].parent.name == "SegmentationClassAug"


def test_voc_bad_input(tmp_path: Path) -> None:
    root = tmp_path / "VOC2012"
    with pytest.raises(FileNotFoundError) as err:
        VOCSegmentation(root)
    assert str(root) in str(err.value) and "JPEGImages/<id>.jpg" in str(err.value)
    make_voc_tree(root, {"train": ["2007_000001", "2007_000002"]})
    with pytest.raises(FileNotFoundError, match=r"ImageSets/Segmentation/val.txt"):
        VOCSegmentation(root, "val")
    # an id listed in the split file without an image: names the split file and the id
    (root / "ImageSets/Segmentation/train.txt").write_text("2007_000001\n2009_999999\n")
    with pytest.raises(FileNotFoundError, match=r"train.txt.*2009_999999"):
        VOCSegmentation(root, "train")
    with pytest.raises(FileNotFoundError, match=r"my_split.txt.*2009_999999"):
        VOCSegmentation(root, ids=["2009_999999"], ids_source="my_split.txt")
    (root / "ImageSets/Segmentation/train.txt").write_text("2007_000001\n2007_000002\n")
    bad = np.zeros((H, W), np.uint8)
    bad[1, 1] = 21
    write_png_atomic(root / "SegmentationClass/2007_000002.png", bad, palette=VOC_COLORMAP)
    with pytest.raises(ValueError, match=r"2007_000002.png.*\[21\]"):
        VOCSegmentation(root)[1]
    write_png_atomic(root / "SegmentationClass/2007_000002.png", np.zeros((H + 2, W), np.uint8))
    with pytest.raises(ValueError, match=rf"2007_000002.jpg is {H}x{W}.*2007_000002.png is {H + 2}x{W}"):
        VOCSegmentation(root)[1]
    (root / "SegmentationClass/2007_000002.png").unlink()
    with pytest.raises(FileNotFoundError, match="SegmentationClass/2007_000002.png"):
        VOCSegmentation(root)



# ------------------------------------------------------------ CamVid on the real files (SegNet)
CAMVID_COUNTS = {"train": 367, "val": 101, "test": 233}


def camvid_copy(src: Path, dst: Path, names: Sequence[str], split: str = "train") -> Path:
    """A CamVid root in ``dst`` with ``names`` of ``split`` linked from ``src`` and a list file in
    the SegNet format (absolute ``/SegNet/CamVid/`` prefix)."""
    for sub in (split, f"{split}annot"):
        (dst / sub).mkdir(parents=True, exist_ok=True)
        for name in names:
            (dst / sub / f"{name}.png").symlink_to(src / sub / f"{name}.png")
    (dst / f"{split}.txt").write_text("".join(
        f"/SegNet/CamVid/{split}/{n}.png /SegNet/CamVid/{split}annot/{n}.png\n" for n in names))
    return dst


@pytest.mark.sample_data
def test_camvid_real_lists_counts_sizes_and_labels() -> None:
    root = sample_data("camvid")
    first = (root / "train.txt").read_text().splitlines()[0]
    assert first.startswith("/SegNet/CamVid/train/")  # the prefix the reader strips
    pairs = read_camvid_list(root / "train.txt")
    assert pairs[0] == ("train/0001TP_006690.png", "trainannot/0001TP_006690.png")
    raw_values: set[int] = set()
    for split, count in CAMVID_COUNTS.items():
        ds = CamVidSegmentation(root, split)
        assert len(ds) == count and len(set(ds.names)) == count
        assert all(p.parent == root / split for p in ds.image_paths)
        assert all(p.parent == root / f"{split}annot" for p in ds.label_paths)
        for image_path, label_path in zip(ds.image_paths, ds.label_paths):
            with Image.open(image_path) as img, Image.open(label_path) as lab:
                assert img.size == lab.size == (480, 360) and img.mode == "RGB"
                raw_values.update(np.unique(np.asarray(lab)).tolist())
    assert raw_values == set(range(12))  # 0..10 classes and 11 = unlabelled, nothing else
    ds = CamVidSegmentation(root, "test")
    raw = read_label(ds.label_paths[0])
    image, label = ds.load(0)
    assert image.shape == (360, 480, 3) and label.shape == (360, 480)
    assert (raw == 11).any()
    assert np.array_equal(label == 255, raw == 11)  # unlabelled → ignore_index, nothing else
    assert np.array_equal(label[raw != 11], raw[raw != 11])
    sample = ds[0]
    assert sample["image"].shape == (3, 360, 480) and sample["label"].dtype == torch.int64
    assert sample["name"] == ds.names[0] == "0001TP_008550"
    assert set(sample["label"].unique().tolist()) <= set(range(11)) | {255}


@pytest.mark.sample_data
def test_camvid_named_errors_on_broken_copies(tmp_path: Path) -> None:
    src = sample_data("camvid")
    names = ["0001TP_006690", "0001TP_006720", "0001TP_006750"]
    with pytest.raises(FileNotFoundError, match=r"CamVid root .*nowhere does not exist"):
        CamVidSegmentation(tmp_path / "nowhere", "train")
    # missing pair: the label of one listed frame is absent
    root = camvid_copy(src, tmp_path / "missing", names)
    (root / "trainannot" / f"{names[1]}.png").unlink()
    with pytest.raises(FileNotFoundError, match=rf"trainannot/{names[1]}\.png"):
        CamVidSegmentation(root, "train")
    # label value out of range: 12 is neither a class, 11 (unlabelled) nor 255
    root = camvid_copy(src, tmp_path / "range", names)
    bad = root / "trainannot" / f"{names[2]}.png"
    raw = read_label(bad)
    raw[5, 7] = 12
    bad.unlink()
    Image.fromarray(raw).save(bad)
    ds = CamVidSegmentation(root, "train")
    ds.load(0)
    with pytest.raises(ValueError, match=rf"{names[2]}\.png.*\[12\]"):
        ds.load(2)
    # size mismatch: a label one row short
    root = camvid_copy(src, tmp_path / "size", names)
    short = root / "trainannot" / f"{names[0]}.png"
    raw = read_label(short)[:-1]
    short.unlink()
    Image.fromarray(raw).save(short)
    with pytest.raises(ValueError, match="size mismatch") as err:
        CamVidSegmentation(root, "train").load(0)
    assert f"train/{names[0]}.png is 360x480" in str(err.value)
    assert f"trainannot/{names[0]}.png is 359x480" in str(err.value)
    # list-file lines: an absolute path outside the SegNet prefix names the line
    (root / "train.txt").write_text(f"/data/train/{names[0]}.png /data/trainannot/{names[0]}.png\n")
    with pytest.raises(ValueError, match=r"train\.txt:1: absolute path"):
        CamVidSegmentation(root, "train")
    # an id from a split file that is not a frame names the split file and the id
    root = camvid_copy(src, tmp_path / "ids", names)
    with pytest.raises(FileNotFoundError, match=r"splits/23/labeled\.txt.*0001TP_999999"):
        CamVidSegmentation(root, "train", ids=["0001TP_999999"], ids_source="splits/23/labeled.txt")


def test_camvid_without_list_file_lists_the_folder(tmp_path: Path) -> None:
    for sub in ("val", "valannot"):
        (tmp_path / sub).mkdir()
    raw = np.array([[0, 10, 11], [3, 11, 4]], dtype=np.uint8)
    for name in ("b_000002", "a_000001"):
        Image.fromarray(_image(1, 2, 3)).save(tmp_path / "val" / f"{name}.png")
        Image.fromarray(raw).save(tmp_path / "valannot" / f"{name}.png")
    ds = CamVidSegmentation(tmp_path, "val")
    assert ds.names == ["a_000001", "b_000002"]
    assert ds.load(0)[1].tolist() == [[0, 10, 255], [3, 255, 4]]
