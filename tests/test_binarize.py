"""S5 binarisation: the resolution-scaled class-size rule, uniform choice, per-image determinism."""

from __future__ import annotations

import pytest
import torch

from leseg.data.binarize import BinarizeTarget
from leseg.utils.seeding import generator_for, stable_seed


def _label() -> torch.Tensor:
    """64×128 map: class 1 → 24 px, class 2 → 25 px, class 3 → 200 px, 255 → 500 px, rest 0."""
    label = torch.zeros(64, 128, dtype=torch.long)
    label.view(-1)[0:24] = 1
    label.view(-1)[1000:1025] = 2
    label.view(-1)[2000:2200] = 3
    label.view(-1)[4000:4500] = 255
    return label


def test_threshold_scales_with_resolution() -> None:
    binarize = BinarizeTarget(min_pixels=100)
    assert binarize.threshold(1024, 2048) == 100
    assert binarize.threshold(512, 1024) == 25
    assert binarize.threshold(8, 8) == 1  # never below one pixel


def test_class_size_rule_and_ignore_index() -> None:
    # reference 128×256 → threshold 100 · (64·128)/(128·256) = 25 px at 64×128
    binarize = BinarizeTarget(min_pixels=100, reference_size=(128, 256), exclude_classes=(0,))
    eligible, sizes = binarize.eligible_classes(_label())
    assert eligible == [2, 3]  # 24 px < 25 ≤ 25; 255 and the excluded 0 never count
    assert sizes == {1: 24, 2: 25, 3: 200}
    g = torch.Generator().manual_seed(0)
    chosen = [binarize(_label(), generator=g)[1] for _ in range(300)]
    assert set(chosen) == {2, 3}
    assert 100 < chosen.count(2) < 200  # uniform over the eligible classes


def test_target_is_the_chosen_class_mask() -> None:
    binarize = BinarizeTarget(min_pixels=100, reference_size=(128, 256))
    label = _label()
    target, cls = binarize(label, generator=torch.Generator().manual_seed(1))
    assert target.dtype == torch.bool and torch.equal(target, label == cls)
    assert not bool(target[label == 255].any())


def test_validation_is_deterministic_per_image_name() -> None:
    label = torch.arange(19).repeat_interleave(64 * 128 // 19 + 1)[:64 * 128].view(64, 128)
    binarize = BinarizeTarget(min_pixels=100, reference_size=(64, 128))
    first = binarize(label, name="frankfurt_000000_000294", training=False)
    torch.manual_seed(123)  # the global RNG state must not matter
    again = binarize(label, name="frankfurt_000000_000294", training=False,
                     generator=torch.Generator().manual_seed(99))
    assert first[1] == again[1] and torch.equal(first[0], again[0])
    classes = {binarize(label, name=f"img_{i}", training=False)[1] for i in range(10)}
    assert len(classes) > 1  # different images get different classes


def test_stable_seed_depends_on_name_and_salt() -> None:
    assert stable_seed("a") == stable_seed("a")
    assert stable_seed("a") != stable_seed("b")
    assert stable_seed("a", "binarize") != stable_seed("a", "suggestion")
    assert 0 <= stable_seed("a") < 2 ** 63
    x = torch.rand(3, generator=generator_for("a", "s"))
    assert torch.equal(x, torch.rand(3, generator=generator_for("a", "s")))


def test_errors_name_the_image() -> None:
    binarize = BinarizeTarget(min_pixels=100, reference_size=(64, 128))
    small = torch.full((64, 128), 255, dtype=torch.long)
    small[:2, :2] = 5
    small[5, :99] = 0  # 99 px: one short of the threshold
    with pytest.raises(ValueError, match="'munich_000001'.*class sizes: \\{0: 99, 5: 4\\}"):
        binarize(small, name="munich_000001")
    with pytest.raises(ValueError, match="needs the image name"):
        binarize(_label(), training=False)
    with pytest.raises(ValueError, match="integer tensor"):
        binarize(_label().float(), name="x")
    with pytest.raises(ValueError, match="min_pixels"):
        BinarizeTarget(min_pixels=0)
