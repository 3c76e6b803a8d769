"""leseg.data.synthetic: file layouts, determinism, ensure/atomicity, geometry, class statistics.

The datasets are tiny (4 train + 2 val images of 64x128 / 64x80) so the module runs in seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import binary_dilation, gaussian_filter, map_coordinates, sobel

from leseg.data.synthetic import (
    CITY_LABEL_IDS,
    CITYSCAPES_COLORS,
    MARKER_NAME,
    VOC_OBJECT_CLASSES,
    city_sample_ids,
    city_scene_for,
    disparity_to_png,
    ensure_synthetic,
    generate_synthetic_city,
    generate_synthetic_voc,
    render_city_frame,
    voc_palette,
)
from leseg.data.synthetic import generate as generate_module
from leseg.data.synthetic.__main__ import main as cli_main
from leseg.data.synthetic.textures import interval_coverage, stripe_coverage, value_noise
from leseg.data.synthetic.voc import render_voc_image, voc_sample_rng

CITY = {"num_train": 4, "num_val": 2, "height": 64, "width": 128, "seed": 0}
VOC = {"num_train": 4, "num_val": 2, "height": 64, "width": 80, "seed": 0}
TINY_VOC = {"num_train": 2, "num_val": 1, "height": 32, "width": 40, "seed": 0}
CITY_IDS = set(CITY_LABEL_IDS.values())
SPLITS = (("train", CITY["num_train"]), ("val", CITY["num_val"]))


@pytest.fixture(scope="module")
def city_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_synthetic_city(tmp_path_factory.mktemp("data") / "synthetic_city", **CITY)


@pytest.fixture(scope="module")
def voc_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data") / "synthetic_voc" / "VOC2012"
    return generate_synthetic_voc(root, **VOC)


def _load(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def _city_paths(root: Path, split: str, city: str, stem: str) -> dict[str, Path]:
    d = Path(split) / city
    return {
        "image": root / "leftImg8bit" / d / f"{stem}_leftImg8bit.png",
        "label": root / "gtFine" / d / f"{stem}_gtFine_labelIds.png",
        "color": root / "gtFine" / d / f"{stem}_gtFine_color.png",
        "camera": root / "camera" / d / f"{stem}_camera.json",
        "vehicle": root / "vehicle" / d / f"{stem}_vehicle.json",
        "disparity": root / "disparity" / d / f"{stem}_disparity.png",
        **{f"frame{f}": root / "leftImg8bit_sequence" / d / f"{stem[:-6]}{f:06d}_leftImg8bit.png"
           for f in (18, 19, 20)},
    }


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------------- city layout

def test_city_layout(city_root: Path) -> None:
    marker = json.loads((city_root / MARKER_NAME).read_text())
    assert {k: marker[k] for k in CITY} == CITY and marker["kind"] == "city"
    for split, count in SPLITS:
        samples = city_sample_ids(split, count, CITY["seed"])
        assert len(list((city_root / "leftImg8bit" / split).glob("*/*_leftImg8bit.png"))) == count
        assert len(list((city_root / "leftImg8bit_sequence" / split).glob("*/*.png"))) == 3 * count
        for sample in samples:
            paths = _city_paths(city_root, split, sample.city, sample.stem())
            assert sample.stem().endswith("_000019") and sample.city.startswith("synthcity_")
            missing = [str(p) for p in paths.values() if not p.is_file()]
            assert not missing, missing
            image = Image.open(paths["image"])
            assert image.mode == "RGB" and image.size == (CITY["width"], CITY["height"])
            label = Image.open(paths["label"])
            assert label.mode == "L" and label.size == image.size
            ids = _load(paths["label"])
            assert set(np.unique(ids).tolist()) <= CITY_IDS
            colour = _load(paths["color"])
            assert colour.shape == (CITY["height"], CITY["width"], 4)
            for label_id in np.unique(ids):
                assert (colour[ids == label_id, :3] == CITYSCAPES_COLORS[int(label_id)]).all()
            disparity = Image.open(paths["disparity"])
            assert disparity.mode.startswith("I") and disparity.size == image.size
            # the annotated sequence frame is the leftImg8bit file; its neighbours differ from it
            assert paths["frame19"].read_bytes() == paths["image"].read_bytes()
            for f in (18, 20):
                assert not np.array_equal(_load(paths[f"frame{f}"]), _load(paths["image"]))
            camera = json.loads(paths["camera"].read_text())
            assert set(camera["extrinsic"]) == {"baseline", "pitch", "roll", "x", "y", "yaw", "z"}
            assert camera["intrinsic"] == {"fx": 0.8 * CITY["width"], "fy": 0.8 * CITY["width"],
                                           "u0": CITY["width"] / 2, "v0": CITY["height"] / 2}
            vehicle = json.loads(paths["vehicle"].read_text())
            assert 5.0 <= vehicle["speed"] <= 12.0 and vehicle["yawRate"] == 0.0


def test_disparity_png_encoding_hand_computed() -> None:
    depth = np.array([[10.0, np.inf], [0.5, 100.0]])
    p = disparity_to_png(depth, fx=100.0, baseline=0.2)
    # d = 0.2 * 100 / Z: 2 px -> 2 * 256 + 1; 40 px -> 10241; 0.2 px -> round(51.2) + 1
    assert p.dtype == np.uint16
    assert p.tolist() == [[513, 0], [10241, 52]]


def test_disparity_matches_renderer_depth(city_root: Path) -> None:
    for split, count in SPLITS:
        for sample in city_sample_ids(split, count, CITY["seed"]):
            scene = city_scene_for(sample, CITY["height"], CITY["width"])
            frame = render_city_frame(scene, 19)
            paths = _city_paths(city_root, split, sample.city, sample.stem())
            # the scene rebuilt from (seed, split, index) reproduces the written files exactly
            assert np.array_equal(frame.image, _load(paths["image"]))
            assert np.array_equal(frame.label_ids, _load(paths["label"]))
            p = _load(paths["disparity"]).astype(np.float64)
            finite = np.isfinite(frame.depth)
            assert np.array_equal(p > 0, finite)  # invalid exactly at sky and ego vehicle
            assert not finite[frame.label_ids == CITY_LABEL_IDS["sky"]].any()
            camera = json.loads(paths["camera"].read_text())
            fx, baseline = camera["intrinsic"]["fx"], camera["extrinsic"]["baseline"]
            decoded = (p[finite] - 1.0) / 256.0
            expected = baseline * fx / frame.depth[finite]
            assert np.abs(decoded - expected).max() <= 0.5 / 256 + 1e-6


def test_ground_depth_hand_computed(city_root: Path) -> None:
    """Bottom-row road pixels lie on the ground plane: depth = camera height · fy / (v − v0)."""
    checked = 0
    for sample in city_sample_ids("train", CITY["num_train"], CITY["seed"]):
        scene = city_scene_for(sample, CITY["height"], CITY["width"])
        frame = render_city_frame(scene, 19)
        camera = json.loads(_city_paths(city_root, "train", sample.city, sample.stem())[
            "camera"].read_text())
        v = CITY["height"] - 1
        row = frame.label_ids[v] == CITY_LABEL_IDS["road"]
        expected = camera["extrinsic"]["z"] * camera["intrinsic"]["fy"] / (
            v - camera["intrinsic"]["v0"])
        np.testing.assert_allclose(frame.depth[v, row], expected, rtol=1e-5)
        checked += int(row.sum())
    assert checked > 0


def _inverse_warp(source: np.ndarray, depth: np.ndarray, camera: dict, t_z: float,
                  blocked: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sample ``source`` at the projections of the target pixels' 3-D points into a camera that is
    ``t_z`` metres behind the target camera on its optical axis (bilinear, like SDE losses).

    Returns the warped image, the valid mask (finite depth, inside the source, not landing on a
    ``blocked`` source pixel, e.g. the ego-vehicle bonnet) and the flow magnitude in pixels."""
    h, w = depth.shape
    fx, fy, cx, cy = (camera["intrinsic"][k] for k in ("fx", "fy", "u0", "v0"))
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = depth + t_z
        us = cx + (u - cx) / fx * depth * fx / z
        vs = cy + (v - cy) / fy * depth * fy / z
    valid = np.isfinite(depth) & (z > 0.1) & (us >= 0) & (us <= w - 1) & (vs >= 0) & (
        vs <= h - 1)
    us, vs = np.where(valid, us, 0.0), np.where(valid, vs, 0.0)
    valid &= map_coordinates(blocked.astype(np.float64), [vs, us], order=0) == 0
    warped = np.stack([map_coordinates(source[..., c], [vs, us], order=1) for c in range(3)], -1)
    return warped, valid, np.hypot(us - u, vs - v)


def test_neighbour_frames_warp_onto_annotated_frame(city_root: Path) -> None:
    """Frames 18/20 inverse-warped with the GT depth (disparity PNG) and the GT pose (speed / 17 m
    along the optical axis) reproduce frame 19 much better than with a wrong pose or depth.

    Error: |Δ| of the mildly blurred (σ = 0.7 px, like an SSIM window) images, median over the
    textured pixels that move by at least 1 px, pooled over all samples and both neighbours.
    """
    errors: dict[str, list[np.ndarray]] = {}
    for split, count in SPLITS:
        for sample in city_sample_ids(split, count, CITY["seed"]):
            paths = _city_paths(city_root, split, sample.city, sample.stem())
            camera = json.loads(paths["camera"].read_text())
            step = json.loads(paths["vehicle"].read_text())["speed"] / 17.0
            p = _load(paths["disparity"]).astype(np.float64)
            fx, baseline = camera["intrinsic"]["fx"], camera["extrinsic"]["baseline"]
            depth = np.where(p > 0, baseline * fx / np.maximum((p - 1) / 256, 1e-9), np.inf)
            target = _load(paths["image"]) / 255.0
            ego = binary_dilation(_load(paths["label"]) == CITY_LABEL_IDS["ego vehicle"])
            grey = target.mean(-1)
            textured = np.hypot(sobel(grey, 0), sobel(grey, 1)) / 8 > 0.03
            blurred_target = gaussian_filter(target, (0.7, 0.7, 0))
            constant = np.where(p > 0, np.median(depth[p > 0]), np.inf)
            for frame, t_z in ((18, step), (20, -step)):
                source = _load(paths[f"frame{frame}"]) / 255.0
                _, valid, flow = _inverse_warp(source, depth, camera, t_z, ego)
                moving = valid & textured & (flow >= 1.0)
                hypotheses = {"true": (depth, t_z), "no motion": (depth, 0.0),
                              "reversed motion": (depth, -t_z), "constant depth": (constant, t_z),
                              "depth x2": (2 * depth, t_z), "depth x0.5": (0.5 * depth, t_z)}
                for name, (d, t) in hypotheses.items():
                    warped, ok, _ = _inverse_warp(source, d, camera, t, ego)
                    diff = np.abs(gaussian_filter(warped, (0.7, 0.7, 0)) - blurred_target)
                    errors.setdefault(name, []).append(diff.mean(-1)[moving & ok])
    median = {name: float(np.median(np.concatenate(e))) for name, e in errors.items()}
    assert median["true"] < 0.02, median  # about the sensor noise level
    for wrong in ("no motion", "reversed motion", "depth x2", "depth x0.5"):
        assert median["true"] < 0.5 * median[wrong], median
    assert median["true"] < 0.75 * median["constant depth"], median


def test_city_class_frequencies() -> None:
    """Over 12 rendered scenes all nine classes occur with sensible pixel shares, the small ones
    (pole, traffic sign, person, car) in most images, and no class dominates."""
    counts: dict[int, int] = {}
    present: dict[int, int] = {}
    n = 12
    for sample in city_sample_ids("train", n, seed=3):
        label = render_city_frame(city_scene_for(sample, CITY["height"], CITY["width"]),
                                  19).label_ids
        for label_id, c in zip(*np.unique(label, return_counts=True), strict=True):
            counts[int(label_id)] = counts.get(int(label_id), 0) + int(c)
            present[int(label_id)] = present.get(int(label_id), 0) + 1
    total = sum(counts.values())
    share = {k: v / total for k, v in counts.items()}
    classes = CITY_IDS - {CITY_LABEL_IDS["ego vehicle"]}
    assert all(share.get(k, 0.0) >= 0.002 for k in classes), share
    assert max(share[k] for k in classes) < 0.45, share
    for name in ("pole", "traffic sign", "person", "car"):
        assert present.get(CITY_LABEL_IDS[name], 0) >= 0.75 * n, (name, present)
    # predicting the most frequent class everywhere scores mIoU = its share / 9 classes
    assert max(share[k] for k in classes) / len(classes) < 0.05


# ---------------------------------------------------------------------------------- VOC layout

def test_voc_palette_hand_values() -> None:
    palette = voc_palette()
    assert palette.shape == (256, 3) and palette.dtype == np.uint8
    expected = {0: (0, 0, 0), 1: (128, 0, 0), 2: (0, 128, 0), 3: (128, 128, 0), 4: (0, 0, 128),
                15: (192, 128, 128), 20: (0, 64, 128), 255: (224, 224, 192)}
    for index, rgb in expected.items():
        assert tuple(palette[index]) == rgb


def test_voc_layout(voc_root: Path) -> None:
    lists = voc_root / "ImageSets" / "Segmentation"
    read = {name: (lists / f"{name}.txt").read_text().split()
            for name in ("train", "val", "trainval", "train_aug")}
    assert read["train"] == [f"syn_{i:06d}" for i in range(1, 5)]
    assert read["val"] == ["syn_000005", "syn_000006"]
    assert read["trainval"] == sorted(read["train"] + read["val"])
    assert read["train_aug"] == read["train"]
    allowed = {0, 255} | set(VOC_OBJECT_CLASSES)
    for image_id in read["trainval"]:
        image = Image.open(voc_root / "JPEGImages" / f"{image_id}.jpg")
        assert image.format == "JPEG" and image.mode == "RGB"
        assert image.size == (VOC["width"], VOC["height"])
        mask = Image.open(voc_root / "SegmentationClass" / f"{image_id}.png")
        assert mask.mode == "P" and mask.size == image.size
        palette = np.array(mask.getpalette(), np.uint8).reshape(-1, 3)
        assert np.array_equal(palette[:256], voc_palette())
        label = np.asarray(mask)
        aug = Image.open(voc_root / "SegmentationClassAug" / f"{image_id}.png")
        assert aug.mode == "L" and np.array_equal(np.asarray(aug), label)
        values = set(np.unique(label).tolist())
        assert values <= allowed and values & set(VOC_OBJECT_CLASSES), values
        # VOC-style border: an object pixel never touches a background pixel directly
        obj, bg = (label > 0) & (label < 255), label == 0
        assert not (obj[1:] & bg[:-1]).any() and not (obj[:-1] & bg[1:]).any()
        assert not (obj[:, 1:] & bg[:, :-1]).any() and not (obj[:, :-1] & bg[:, 1:]).any()


def test_voc_class_statistics() -> None:
    """40 rendered images: every object class occurs, 1-4 objects each, background dominant but
    not overwhelming, and the ignore band is a minority."""
    seen: set[int] = set()
    counts = np.zeros(256, np.int64)
    for i in range(40):
        sample = render_voc_image(voc_sample_rng(0, "train", i), 64, 80)
        assert 1 <= len(sample.classes) <= 4
        assert set(np.unique(sample.label)) - {0, 255} == set(sample.classes)
        seen |= set(sample.classes)
        counts += np.bincount(sample.label.ravel(), minlength=256)
    assert seen == set(VOC_OBJECT_CLASSES)
    share = counts / counts.sum()
    assert 0.4 < share[0] < 0.85 and share[255] < 0.25, (share[0], share[255])


# ------------------------------------------------------------------------- determinism, ensure

def test_generation_is_deterministic(tmp_path: Path) -> None:
    city = {"num_train": 2, "num_val": 1, "height": 32, "width": 64}
    a = _tree_bytes(generate_synthetic_city(tmp_path / "a", seed=5, **city))
    b = _tree_bytes(generate_synthetic_city(tmp_path / "b", seed=5, **city))
    c = _tree_bytes(generate_synthetic_city(tmp_path / "c", seed=6, **city))
    assert a.keys() == b.keys() and all(a[k] == b[k] for k in a)
    images = [k for k in a if k.startswith("leftImg8bit/")]
    assert images and all(a[k] != c[k] for k in images)

    voc = {k: v for k, v in TINY_VOC.items() if k != "seed"}
    a = _tree_bytes(generate_synthetic_voc(tmp_path / "va", seed=5, **voc))
    b = _tree_bytes(generate_synthetic_voc(tmp_path / "vb", seed=5, **voc))
    c = _tree_bytes(generate_synthetic_voc(tmp_path / "vc", seed=6, **voc))
    assert a.keys() == b.keys() and all(a[k] == b[k] for k in a)
    assert all(a[k] != c[k] for k in a if k.startswith("JPEGImages/"))


def test_ensure_skips_complete_and_rejects_other_params(tmp_path: Path) -> None:
    root = tmp_path / "VOC2012"
    assert ensure_synthetic("voc", root, **TINY_VOC) == root
    sentinel = root / "sentinel.txt"
    sentinel.write_text("kept")
    assert ensure_synthetic("voc", root, **TINY_VOC) == root
    assert sentinel.read_text() == "kept"  # nothing regenerated
    with pytest.raises(ValueError, match=r"(?s)VOC2012.*height.*delete"):
        ensure_synthetic("voc", root, **{**TINY_VOC, "height": 48})
    with pytest.raises(ValueError, match="kind"):
        ensure_synthetic("city", root, **TINY_VOC)
    with pytest.raises(ValueError, match="num_train"):  # defaults are filled in: 200 != 2
        ensure_synthetic("voc", root)
    assert sentinel.exists()


def test_ensure_regenerates_without_marker(tmp_path: Path) -> None:
    root = tmp_path / "VOC2012"
    ensure_synthetic("voc", root, **TINY_VOC)
    (root / MARKER_NAME).unlink()
    (root / "JPEGImages" / "syn_000001.jpg").unlink()
    ensure_synthetic("voc", root, **TINY_VOC)
    assert (root / MARKER_NAME).is_file() and (root / "JPEGImages" / "syn_000001.jpg").is_file()


def test_refuses_to_replace_foreign_data(tmp_path: Path) -> None:
    root = tmp_path / "VOC2012"
    (root / "JPEGImages").mkdir(parents=True)
    (root / "JPEGImages" / "2007_000032.jpg").write_bytes(b"real data")
    with pytest.raises(ValueError, match=r"VOC2012.*refusing"):
        ensure_synthetic("voc", root, **TINY_VOC)
    assert (root / "JPEGImages" / "2007_000032.jpg").read_bytes() == b"real data"


def test_generation_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def crash(*args: object, **kwargs: object) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return original(*args, **kwargs)

    original = generate_module.write_voc_sample
    monkeypatch.setattr(generate_module, "write_voc_sample", crash)
    monkeypatch.setenv("LESEG_SYNTHETIC_WORKERS", "1")
    with pytest.raises(RuntimeError, match="disk full"):
        ensure_synthetic("voc", tmp_path / "VOC2012", **TINY_VOC)
    assert list(tmp_path.iterdir()) == []  # no half-written root, no temporary folder left


@pytest.mark.parametrize(("params", "key"), [
    ({"height": 8}, "height"), ({"num_train": "4"}, "num_train"), ({"depth": 3}, "depth"),
    ({"seed": -1}, "seed"), ({"num_val": True}, "num_val"),
])
def test_ensure_rejects_bad_parameters(tmp_path: Path, params: dict, key: str) -> None:
    with pytest.raises(ValueError, match=key):
        ensure_synthetic("voc", tmp_path / "VOC2012", **params)
    assert not (tmp_path / "VOC2012").exists()


def test_ensure_rejects_unknown_kind(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"kind.*'cityscapes'"):
        ensure_synthetic("cityscapes", tmp_path / "x")


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "VOC2012"
    args = ["voc", str(root), "--num-train", "2", "--num-val", "1", "--height", "32",
            "--width", "40"]
    assert cli_main(args) == 0
    assert capsys.readouterr().out.strip() == str(root)
    assert len((root / "ImageSets" / "Segmentation" / "trainval.txt").read_text().split()) == 3
    assert cli_main(args[:-1] + ["48"]) == 2
    assert "width" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ textures

def test_box_filtered_coverage_hand_computed() -> None:
    pos = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0])
    # box of width 1 centred at pos, overlap with [1, 3]
    np.testing.assert_allclose(interval_coverage(pos, 1.0, 3.0, 1.0), [0, 0, 0.5, 1, 1, 0.5])
    # stripes [−0.25, 0.25] + k: exact for a small footprint, the mean 0.5 for a huge one
    np.testing.assert_allclose(stripe_coverage(np.array([0.0, 0.25, 0.5]), 1.0, 0.5, 0.1),
                               [1.0, 0.5, 0.0], atol=1e-6)
    np.testing.assert_allclose(stripe_coverage(np.array([0.0, 0.3]), 1.0, 0.5, 5.0), [0.5, 0.5])


def test_value_noise_is_a_fixed_continuous_field() -> None:
    x = np.linspace(-50.0, 50.0, 2001)
    a = value_noise(x, 0.3 * x, seed=4)
    assert np.array_equal(a, value_noise(x, 0.3 * x, seed=4))
    assert not np.array_equal(a, value_noise(x, 0.3 * x, seed=5))
    assert a.min() >= 0.0 and a.max() < 1.0 and a.std() > 0.1
    assert np.abs(np.diff(a)).max() < 0.2  # steps of 0.05 units change it only a little
    # evaluating a sub-grid gives the same values (no dependence on the sampling grid)
    assert np.array_equal(value_noise(x[::7], 0.3 * x[::7], seed=4), a[::7])


# ------------------------------------------------------------------------ appearance themes

def test_tint_and_colour_matrix_hand_computed() -> None:
    from leseg.data.synthetic.city_scene import Tint, _colour_matrix

    rng = np.random.default_rng(0)
    # pure red (hue 0) shifted by a third of a turn is pure green; saturation and value scale
    green = Tint(hue=1 / 3, hue_jitter=0.0, saturation=1.0, saturation_add=0.0, value=0.5)
    np.testing.assert_allclose(green.apply(np.array([1.0, 0.0, 0.0]), rng), [0, 0.5, 0], atol=1e-6)
    grey = Tint(hue=0.2, hue_jitter=0.0, saturation=0.0, saturation_add=0.0, value=1.0)
    np.testing.assert_allclose(grey.apply(np.array([0.8, 0.2, 0.2]), rng), [0.8, 0.8, 0.8],
                               atol=1e-6)
    # the camera colour matrix keeps grey grey and rotates the hue about the grey axis
    m = _colour_matrix(1 / 3, 1.0)
    np.testing.assert_allclose(m @ np.array([0.3, 0.3, 0.3]), [0.3, 0.3, 0.3], atol=1e-6)
    np.testing.assert_allclose(m @ np.array([1.0, 0.0, 0.0]), [0, 1, 0], atol=1e-6)
    np.testing.assert_allclose(_colour_matrix(0.0, 0.0) @ np.array([0.9, 0.0, 0.3]),
                               [0.4, 0.4, 0.4], atol=1e-6)


def test_tint_mix_moves_grey_towards_the_theme_colour() -> None:
    from leseg.data.synthetic.city_scene import Tint

    rng = np.random.default_rng(0)
    # a hue shift leaves grey grey; the mix towards the target colour does not
    to_blue = Tint(hue=0.3, hue_jitter=0.0, saturation=1.0, saturation_add=0.0, value=1.0,
                   target=(0.0, 0.0, 1.0), mix=0.5)
    np.testing.assert_allclose(to_blue.apply(np.array([0.4, 0.4, 0.4]), rng), [0.2, 0.2, 0.7],
                               atol=1e-6)


def test_pattern_hand_computed_and_faded_when_finer_than_the_grid() -> None:
    from leseg.data.synthetic.city_scene import Pattern

    stripes = Pattern(kind="stripes", directions=np.array([[1.0, 0.0, 0.0]]),
                      wavelengths=np.array([2.0]), phases=np.array([0.0]), threshold=0.0,
                      softness=0.01, gain=np.array([2.0, 1.0, 0.5], np.float32))
    x = np.array([[0.0, 1.0, 0.5]])
    phase = stripes.phase(x, np.zeros_like(x), np.full_like(x, 7.0))
    np.testing.assert_allclose(phase[0], [[0.0, 0.5, 0.25]])  # x / 2 m turns, Z irrelevant
    coarse = stripes.factor(phase[:, 0], np.zeros((1, 3)))
    # cos 0 = 1 → covered (gain); cos π = −1 → not covered (1); cos π/2 = 0 → half covered
    np.testing.assert_allclose(coarse, [[2.0, 1.0, 0.5], [1.0, 1.0, 1.0], [1.5, 1.0, 0.75]],
                               atol=1e-5)
    # a wave at 0.3 turns per sample cannot be shown: its signal is 0 everywhere (half covered)
    fine = stripes.factor(phase[:, 0], np.full((1, 3), 0.3))
    np.testing.assert_allclose(fine, [[1.5, 1.0, 0.75]] * 3, atol=1e-5)


def test_theme_patterns_change_appearance_only() -> None:
    """A scene's class patterns change its image, never its labels or depth (their being fixed in
    the world, so that frames stay re-projections of each other, is the inverse-warp test's job)."""
    from dataclasses import replace

    sample = city_sample_ids("train", 1, CITY["seed"])[0]
    scene = city_scene_for(sample, 32, 64)
    assert any(p.kind != "plain" for p in scene.patterns.values())
    frame = render_city_frame(scene, 19)
    plain = render_city_frame(replace(scene, patterns={}, render_cache={}), 19)
    assert np.array_equal(frame.label_ids, plain.label_ids)
    assert np.array_equal(frame.depth, plain.depth)
    assert np.abs(frame.image.astype(int) - plain.image.astype(int)).mean() > 3


def test_theme_changes_appearance_not_geometry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Another appearance theme gives another image of exactly the same scene: same labels and
    depth (the appearance has its own random stream), different colours."""
    from leseg.data.synthetic import city_scene

    sample = city_sample_ids("train", 1, CITY["seed"])[0]
    frame = render_city_frame(city_scene_for(sample, 32, 64), 19)
    original = city_scene.theme
    monkeypatch.setattr(city_scene, "theme", lambda index: original(
        (index + 1) % city_scene.APPEARANCE_THEMES))
    other = render_city_frame(city_scene_for(sample, 32, 64), 19)
    assert np.array_equal(frame.label_ids, other.label_ids)
    assert np.array_equal(frame.depth, other.depth)
    assert np.abs(frame.image.astype(int) - other.image.astype(int)).mean() > 10
