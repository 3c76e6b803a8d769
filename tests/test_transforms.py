"""Joint augmentation: padding with ignore_index, identical geometry for image and masks, errors."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest
import torch

from leseg.data.transforms import build_transforms, to_image_tensor, to_sample


def _coded(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Image whose red channel encodes the mask: mask = red // 10 (values 0..24, no 255)."""
    mask = (np.arange(h * w).reshape(h, w) % 25).astype(np.uint8)
    image = np.stack([mask * 10, np.full_like(mask, 50), np.full_like(mask, 60)], axis=-1)
    return image, mask


def test_pad_fills_mask_with_ignore_index_and_image_with_zero() -> None:
    t = build_transforms(crop_size=(6, 8))
    image = np.full((4, 4, 3), 200, np.uint8)
    mask = np.ones((4, 4), np.uint8)
    out = t(image=image, mask=mask)
    assert out["image"].shape == (6, 8, 3) and out["mask"].shape == (6, 8)
    assert (out["mask"] == 1).sum() == 16 and (out["mask"] == 255).sum() == 6 * 8 - 16
    assert not (out["mask"] == 0).any()  # never padded with class 0
    assert np.array_equal(out["mask"] == 255, (out["image"] == 0).all(axis=-1))
    out = build_transforms(crop_size=6, ignore_index=250)(image=image, mask=mask)
    assert set(np.unique(out["mask"]).tolist()) == {1, 250}


def _is_window(sub: np.ndarray, full: np.ndarray) -> bool:
    h, w = sub.shape
    return any(np.array_equal(full[y:y + h, x:x + w], sub)
               for y in range(full.shape[0] - h + 1) for x in range(full.shape[1] - w + 1))


def test_crop_and_flip_keep_image_and_mask_aligned() -> None:
    t = build_transforms(crop_size=(5, 7), hflip=0.5)
    image, mask = _coded(9, 13)
    flips = 0
    for _ in range(20):
        out = t(image=image, mask=mask)
        assert out["mask"].shape == (5, 7)
        assert np.array_equal(out["mask"], out["image"][..., 0] // 10)
        # the crop is a window of the original or of its mirror image
        plain, mirrored = _is_window(out["mask"], mask), _is_window(out["mask"], mask[:, ::-1])
        assert plain != mirrored
        flips += int(mirrored)
    assert 0 < flips < 20  # both outcomes of p=0.5 occur in 20 draws (fails with p ≈ 2e-6)


def test_hflip_hand_case_and_extra_mask_target() -> None:
    t = build_transforms(hflip=1.0, mask_targets=("depth",))
    image, mask = _coded(2, 3)
    depth = np.arange(6, dtype=np.float32).reshape(2, 3)
    out = t(image=image, mask=mask, depth=depth)
    assert out["mask"].tolist() == [[2, 1, 0], [5, 4, 3]]
    assert out["depth"].tolist() == [[2.0, 1.0, 0.0], [5.0, 4.0, 3.0]]


def test_random_scale_applies_the_same_factor_to_all_targets() -> None:
    t = build_transforms(scale_range=(2.0, 2.0), mask_targets=("copy",))
    image, mask = _coded(4, 6)
    out = t(image=image, mask=mask, copy=mask.copy())
    assert out["image"].shape == (8, 12, 3) and out["mask"].shape == (8, 12)
    assert np.array_equal(out["mask"], out["copy"])
    assert set(np.unique(out["mask"]).tolist()) <= set(np.unique(mask).tolist())  # nearest
    for _ in range(5):
        out = build_transforms(scale_range=(0.5, 2.0))(image=image, mask=mask)
        assert out["image"].shape[:2] == out["mask"].shape
        assert 2 <= out["mask"].shape[0] <= 8


def test_resize_and_color_jitter_leave_masks_alone() -> None:
    image, mask = _coded(4, 6)
    out = build_transforms(resize=(8, 12))(image=image, mask=mask)
    assert out["mask"].shape == (8, 12)
    assert np.array_equal(out["mask"], np.repeat(np.repeat(mask, 2, 0), 2, 1))
    t = build_transforms(color_jitter={"brightness": (1.5, 1.5), "p": 1.0})
    out = t(image=image, mask=mask)
    assert np.array_equal(out["mask"], mask)
    assert out["image"][..., 1].mean() > image[..., 1].mean()  # brighter


def test_bad_arguments_raise() -> None:
    with pytest.raises(TypeError):
        build_transforms(crop=(4, 4))  # unknown keyword
    with pytest.raises(ValueError, match="color_jitter.*'gamma'"):
        build_transforms(color_jitter={"gamma": 0.2})
    with pytest.raises(ValueError, match="crop_size"):
        build_transforms(crop_size=(4, 0))
    with pytest.raises(ValueError, match="scale_range"):
        build_transforms(scale_range=(2.0, 0.5))
    with pytest.raises(ValueError, match="hflip"):
        build_transforms(hflip=1.5)
    with pytest.raises(ValueError, match="mask_targets"):
        build_transforms(mask_targets=("image",))
    # albumentations 1.x names are errors under strict=True (would pad masks with 0 otherwise)
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="mask_value"):
        A.Compose([A.PadIfNeeded(4, 4, mask_value=255)], strict=True)
    assert isinstance(build_transforms(), A.Compose)


def test_to_sample_normalises_and_converts() -> None:
    image = np.zeros((2, 2, 3), np.uint8)
    image[0, 0] = (255, 0, 128)
    x = to_image_tensor(image)
    assert x.dtype == torch.float32 and x.shape == (3, 2, 2)
    hand = [(1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (128 / 255 - 0.406) / 0.225]
    assert torch.allclose(x[:, 0, 0], torch.tensor(hand), atol=1e-6)
    sample = to_sample(image, np.array([[1, 255], [0, 2]], np.uint8), "a",
                       mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    assert sample["label"].dtype == torch.int64 and sample["label"].tolist() == [[1, 255], [0, 2]]
    assert sample["image"][0, 0, 0] == 1.0 and sample["name"] == "a"
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        to_image_tensor(np.zeros((2, 2), np.uint8))
