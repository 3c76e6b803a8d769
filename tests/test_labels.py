"""Class tables, the labelId → trainId table, the VOC palette and colour decoding, colorize."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from leseg.data.io import read_label, write_png_atomic
from leseg.data.labels import (
    CITYSCAPES_CLASS_NAMES,
    CITYSCAPES_INFO,
    CITYSCAPES_LABELID_TO_TRAINID,
    CITYSCAPES_LABELS,
    CITYSCAPES_PALETTE,
    VOC_CLASS_NAMES,
    VOC_COLORMAP,
    VOC_INFO,
    VOC_PALETTE,
    DatasetInfo,
    check_label_values,
    colorize,
    decode_voc_color_mask,
    labelid_to_trainid,
)


def test_cityscapes_table_has_34_labelids_and_19_train_classes() -> None:
    ids = [lab.id for lab in CITYSCAPES_LABELS]
    assert sorted(i for i in ids if i >= 0) == list(range(34))
    assert -1 in ids  # license plate
    train = sorted(lab.train_id for lab in CITYSCAPES_LABELS if 0 <= lab.train_id < 255)
    assert train == list(range(19))
    assert CITYSCAPES_CLASS_NAMES[0] == "road" and CITYSCAPES_CLASS_NAMES[18] == "bicycle"
    assert CITYSCAPES_CLASS_NAMES[13] == "car"
    assert CITYSCAPES_PALETTE.shape == (19, 3) and CITYSCAPES_PALETTE.dtype == np.uint8
    assert tuple(CITYSCAPES_PALETTE[0]) == (128, 64, 128)  # road
    assert CITYSCAPES_INFO.num_classes == 19 and VOC_INFO.num_classes == 21


def test_labelid_to_trainid_table() -> None:
    lut = CITYSCAPES_LABELID_TO_TRAINID
    assert lut.shape == (256,) and lut.dtype == np.uint8
    # the 19 evaluated labelIds (cityscapesScripts), in trainId order
    evaluated = [7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33]
    assert [int(lut[i]) for i in evaluated] == list(range(19))
    others = sorted(set(range(256)) - set(evaluated))
    assert set(lut[others].tolist()) == {255}
    # void, parking, polegroup, caravan, trailer are ignored
    assert [int(lut[i]) for i in (0, 9, 18, 29, 30)] == [255] * 5


def test_labelid_to_trainid_arrays() -> None:
    ids = np.array([[7, 26, 0], [33, 18, 255]], dtype=np.uint8)
    expected = np.array([[0, 13, 255], [18, 255, 255]], dtype=np.uint8)
    out = labelid_to_trainid(ids)
    assert out.dtype == np.uint8 and np.array_equal(out, expected)
    # signed input with license plate (-1) → ignore
    signed = np.array([-1, 24, 25], dtype=np.int32)
    assert labelid_to_trainid(signed).tolist() == [255, 11, 12]
    with pytest.raises(TypeError, match="integer"):
        labelid_to_trainid(np.zeros(3, dtype=np.float32))
    with pytest.raises(ValueError, match=r"\[-1, 255\]"):
        labelid_to_trainid(np.array([300], dtype=np.int32))


def test_voc_palette_bitget_values() -> None:
    assert VOC_COLORMAP.shape == (256, 3)
    # hand-computed from the bitget rule
    assert tuple(VOC_COLORMAP[0]) == (0, 0, 0)
    assert tuple(VOC_COLORMAP[1]) == (128, 0, 0)  # aeroplane
    assert tuple(VOC_COLORMAP[3]) == (128, 128, 0)
    assert tuple(VOC_COLORMAP[15]) == (192, 128, 128)  # person
    assert tuple(VOC_COLORMAP[20]) == (0, 64, 128)  # tvmonitor
    assert tuple(VOC_COLORMAP[255]) == (224, 224, 192)  # border / void
    assert len(VOC_CLASS_NAMES) == 21 and VOC_CLASS_NAMES[0] == "background"
    assert VOC_CLASS_NAMES[20] == "tvmonitor" and VOC_PALETTE.shape == (21, 3)
    assert len({tuple(c) for c in VOC_COLORMAP}) == 256  # all distinct


def test_decode_voc_color_mask() -> None:
    rgb = np.array([[[0, 0, 0], [128, 0, 0], [224, 224, 192]],
                    [[192, 128, 128], [0, 64, 128], [0, 0, 0]]], dtype=np.uint8)
    assert decode_voc_color_mask(rgb).tolist() == [[0, 1, 255], [15, 20, 0]]
    rgb[0, 0] = (1, 2, 3)
    with pytest.raises(ValueError, match=r"\(1, 2, 3\)"):
        decode_voc_color_mask(rgb)


def test_palette_png_round_trip_through_rgb(tmp_path) -> None:
    """Indices → palette PNG → RGB rendering → decoded indices gives the indices back."""
    label = np.array([[0, 5, 5, 255], [20, 1, 0, 255]], dtype=np.uint8)
    path = write_png_atomic(tmp_path / "m.png", label, palette=VOC_COLORMAP)
    assert Image.open(path).mode == "P"
    assert np.array_equal(read_label(path), label)
    rgb = np.asarray(Image.open(path).convert("RGB"))
    assert np.array_equal(decode_voc_color_mask(rgb), label)


def test_colorize() -> None:
    palette = np.array([[10, 20, 30], [40, 50, 60]], dtype=np.uint8)
    label = np.array([[0, 1], [255, 0]])
    out = colorize(label, palette)
    assert out.dtype == np.uint8 and out.shape == (2, 2, 3)
    assert out.tolist() == [[[10, 20, 30], [40, 50, 60]], [[0, 0, 0], [10, 20, 30]]]
    voc = colorize(label, palette, void_color=(224, 224, 192))
    assert voc[1, 0].tolist() == [224, 224, 192]
    with pytest.raises(ValueError, match=r"\[2\]"):
        colorize(np.array([[2]]), palette)


def test_dataset_info_and_label_check() -> None:
    with pytest.raises(ValueError, match="palette"):
        DatasetInfo("x", ("a", "b"), np.zeros((3, 3), np.uint8))
    check_label_values(np.array([0, 18, 255]), 19)  # valid: no error
    with pytest.raises(ValueError, match=r"some/file.png.*\[19, 254\]"):
        check_label_values(np.array([0, 19, 254, 255]), 19, source="some/file.png")
