"""Whole / sliding-window / TTA inference (mmsegmentation semantics) on tiny hand-made models."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from leseg.inference import Predictor, slide_inference, slide_windows, whole_inference

K = 3


def pixelwise_model(seed: int = 0) -> nn.Module:
    """A 1x1 conv: the output at a pixel depends only on that pixel (and is flip-equivariant)."""
    torch.manual_seed(seed)
    model = nn.Conv2d(3, K, kernel_size=1)
    model.num_classes = K
    return model.eval()


class OnesModel(nn.Module):
    """Logits of ones everywhere: the sliding-window average must stay exactly 1."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ones(x.shape[0], K, *x.shape[-2:])


def test_slide_windows_hand_computed() -> None:
    # n = 10, crop 4, stride 3: (10 - 4 + 2) // 3 + 1 = 3 windows, last one ends at 10.
    rows = sorted({(y1, y2) for y1, y2, _, _ in slide_windows(10, 4, 4, 3)})
    assert rows == [(0, 4), (3, 7), (6, 10)]
    # n = 11: 4 windows, the last clamped to the border: [9, 13) → [7, 11).
    rows = sorted({(y1, y2) for y1, y2, _, _ in slide_windows(11, 4, 4, 3)})
    assert rows == [(0, 4), (3, 7), (6, 10), (7, 11)]
    # image smaller than the crop: one window covering it
    assert slide_windows(3, 2, (8, 8), (5, 5)) == [(0, 3, 0, 2)]


@pytest.mark.parametrize(("height", "width", "crop", "stride"), [
    (20, 30, (8, 8), (5, 5)),
    (17, 23, (10, 12), (7, 9)),
    (16, 16, (8, 8), (8, 8)),
    (9, 40, (9, 16), (3, 11)),
])
def test_every_pixel_covered_and_windows_inside(height: int, width: int, crop: tuple[int, int],
                                                stride: tuple[int, int]) -> None:
    count = torch.zeros(height, width)
    for y1, y2, x1, x2 in slide_windows(height, width, crop, stride):
        assert 0 <= y1 < y2 <= height and 0 <= x1 < x2 <= width
        assert (y2 - y1, x2 - x1) == crop
        count[y1:y2, x1:x2] += 1
    assert bool((count > 0).all())


@pytest.mark.parametrize(("shape", "crop", "stride"), [
    ((1, 3, 20, 30), (8, 8), (5, 5)),      # overlapping windows
    ((2, 3, 17, 23), (10, 12), (7, 9)),    # sizes not divisible by crop or stride
    ((1, 3, 6, 7), (8, 8), (4, 4)),        # image smaller than the crop: padded, pad cropped
    ((2, 3, 5, 19), (8, 8), (6, 6)),       # smaller in one dimension only
    ((1, 3, 16, 16), (16, 16), (16, 16)),  # one window = whole image
])
def test_slide_equals_whole_for_a_pixelwise_model(shape: tuple[int, ...], crop: tuple[int, int],
                                                  stride: tuple[int, int]) -> None:
    model = pixelwise_model()
    images = torch.randn(*shape)
    with torch.no_grad():
        whole = whole_inference(model, images)
        slide = slide_inference(model, images, num_classes=K, crop_size=crop, stride=stride,
                                windows_per_batch=3)
    assert slide.shape == (shape[0], K, *shape[-2:])
    assert torch.allclose(slide, whole, atol=1e-6)


def test_slide_divides_by_the_visit_count() -> None:
    logits = slide_inference(OnesModel(), torch.zeros(1, 3, 13, 17), crop_size=(6, 6),
                             stride=(4, 4))
    assert torch.equal(logits, torch.ones(1, K, 13, 17))


def test_slide_result_independent_of_window_batching() -> None:
    model = nn.Sequential(nn.Conv2d(3, K, 3, padding=1), nn.Tanh()).eval()  # context-dependent
    images = torch.randn(2, 3, 14, 19)
    with torch.no_grad():
        one = slide_inference(model, images, crop_size=(8, 8), stride=(5, 5), windows_per_batch=1)
        many = slide_inference(model, images, crop_size=(8, 8), stride=(5, 5),
                               windows_per_batch=100)
    assert torch.allclose(one, many, atol=1e-6)


def test_slide_resizes_low_resolution_window_logits() -> None:
    model = nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(3, K, 1)).eval()  # output at stride 2
    images = torch.randn(1, 3, 12, 12)
    with torch.no_grad():
        logits = slide_inference(model, images, crop_size=(8, 8), stride=(4, 4))
    assert logits.shape == (1, K, 12, 12)


def test_slide_checks_num_classes_and_model_output() -> None:
    with pytest.raises(ValueError, match="num_classes=5"):
        slide_inference(pixelwise_model(), torch.randn(1, 3, 8, 8), num_classes=5,
                        crop_size=4, stride=4)
    with pytest.raises(ValueError, match="larger than crop_size"):
        slide_inference(pixelwise_model(), torch.randn(1, 3, 8, 8), crop_size=4, stride=5)
    with pytest.raises(ValueError, match="logits"):
        whole_inference(lambda x: x.mean(dim=1), torch.randn(1, 3, 8, 8))


def test_predictor_single_scale_no_flip_is_softmax_of_whole() -> None:
    model = pixelwise_model()
    images = torch.randn(2, 3, 9, 11)
    with torch.no_grad():
        probs = Predictor()(model, images)
        expected = whole_inference(model, images).softmax(dim=1)
    assert torch.allclose(probs, expected, atol=1e-6)
    assert torch.allclose(probs.sum(dim=1), torch.ones(2, 9, 11), atol=1e-6)


def test_predictor_flip_on_flip_equivariant_model_equals_no_flip() -> None:
    model = pixelwise_model()
    images = torch.randn(1, 3, 10, 13)  # not left-right symmetric: a missing un-flip would show
    with torch.no_grad():
        plain = Predictor()(model, images)
        flipped = Predictor(flip=True)(model, images)
        slide_flipped = Predictor(mode="slide", crop_size=(6, 6), stride=(4, 4),
                                  flip=True)(model, images)
    assert torch.allclose(flipped, plain, atol=1e-6)
    assert torch.allclose(slide_flipped, plain, atol=1e-6)


def test_predictor_flip_unflips_the_output() -> None:
    class LeftHalfModel(nn.Module):
        """Class 1 on the left half of whatever it sees, class 0 on the right (not equivariant)."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            logits = torch.zeros(x.shape[0], 2, *x.shape[-2:])
            logits[:, 1, :, : x.shape[-1] // 2] = 10.0
            return logits

    probs = Predictor(flip=True)(LeftHalfModel(), torch.zeros(1, 3, 2, 4))
    # P(class 1) is sigmoid(10) where the logit is 10, else 1/2. Plain pass: sigmoid(10) on the left;
    # un-flipped flip pass: sigmoid(10) on the right → (sigmoid(10) + 1/2) / 2 at every pixel
    # (without the un-flip: sigmoid(10) left, 1/2 right).
    expected = (torch.sigmoid(torch.tensor(10.0)) + 0.5) / 2
    assert torch.allclose(probs[:, 1], expected.expand(1, 2, 4), atol=1e-6)


def test_predictor_multi_scale_averages_softmax_of_resized_logits() -> None:
    model = pixelwise_model()
    images = torch.randn(1, 3, 8, 12)
    with torch.no_grad():
        probs = Predictor(scales=(0.5, 1.0))(model, images, out_size=(16, 24))
        small = model(F.interpolate(images, size=(4, 6), mode="bilinear", align_corners=False))
        full = model(images)
    expected = sum(F.interpolate(z, size=(16, 24), mode="bilinear", align_corners=False)
                   .softmax(dim=1) for z in (small, full)) / 2
    assert probs.shape == (1, K, 16, 24)
    assert torch.allclose(probs, expected, atol=1e-6)


def test_predictor_works_under_inference_mode() -> None:
    model = pixelwise_model()
    images = torch.randn(1, 3, 11, 9)
    with torch.inference_mode():
        probs = Predictor(mode="slide", crop_size=[6, 6], stride=[4, 4], scales=[0.75, 1.0],
                          flip=True)(model, images)
    assert probs.shape == (1, K, 11, 9)
    assert torch.allclose(probs.sum(dim=1), torch.ones(1, 11, 9), atol=1e-5)


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"mode": "sliding"}, "inference.mode='sliding'"),
    ({"mode": "slide"}, "needs inference.crop_size"),
    ({"mode": "slide", "crop_size": (8, 8)}, "needs inference.crop_size"),
    ({"mode": "slide", "crop_size": (8, 8), "stride": (9, 4)}, "larger than crop_size"),
    ({"mode": "slide", "crop_size": (8, 0), "stride": 4}, "inference.crop_size"),
    ({"scales": ()}, "scales"),
    ({"scales": (1.0, -0.5)}, "scales"),
])
def test_predictor_argument_errors(kwargs: dict, needle: str) -> None:
    with pytest.raises(ValueError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        Predictor(**kwargs)


def test_inference_scale_resizes_the_input_and_scales_the_tta_passes() -> None:
    """``inference.scale`` 1/3: the single-scale pass sees the frame at a third of its size
    (12x18 -> 4x6) with logits back at the label size; the TTA scales are relative to it."""
    from leseg.methods.base import _predictor

    model = pixelwise_model()
    images = torch.randn(1, 3, 12, 18)
    cfg = {"mode": "whole", "scale": 1 / 3, "tta": {"scales": [1.0, 2.0], "flip": False}}
    with torch.no_grad():
        probs = _predictor(cfg, tta=False)(model, images, out_size=(12, 18))
        small = model(F.interpolate(images, size=(4, 6), mode="bilinear", align_corners=False))
        twice = model(F.interpolate(images, size=(8, 12), mode="bilinear", align_corners=False))
    up = [F.interpolate(z, size=(12, 18), mode="bilinear", align_corners=False).softmax(dim=1)
          for z in (small, twice)]
    assert torch.allclose(probs, up[0], atol=1e-6)
    assert _predictor(cfg, tta=True).scales == pytest.approx((1 / 3, 2 / 3))
    assert _predictor({"mode": "whole"}, tta=False).scales == (1.0,)
    with pytest.raises(ValueError, match="inference.scale must be a positive number, got 0"):
        _predictor({"mode": "whole", "scale": 0}, tta=False)
