"""S5 suggestion generators on hand-made masks: block thresholds and tile quirks, the cascading
flood against the reference loop, click placement, extreme points, box, registry."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from leseg.components.suggestions import (
    SUGGESTIONS,
    BlockSuggestion,
    BoxSuggestion,
    ClickSuggestion,
    Combined,
    ExtremePointSuggestion,
    FloodDraws,
    FloodSuggestion,
    block_loop,
    block_suggestion,
    bounding_box,
    box_dilate,
    build_suggestion,
    distance_to_boundary,
    draw_flood_shifts,
    encode_clicks,
    extreme_points,
    farthest_interior_point,
    flood_loop,
    flood_suggestion,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _blobs(seed: int, h: int = 64, w: int = 128, count: int = 3) -> torch.Tensor:
    """A few random rectangles (a stand-in for a class mask)."""
    g = _gen(seed)
    mask = torch.zeros(h, w, dtype=torch.bool)
    for _ in range(count):
        y, x = int(torch.randint(h, (1,), generator=g)), int(torch.randint(w, (1,), generator=g))
        ry, rx = torch.randint(1, 8, (2,), generator=g).tolist()
        mask[max(0, y - ry):y + ry, max(0, x - rx):x + rx] = True
    return mask


# --------------------------------------------------------------------------------------- block


def test_block_clean_mode_fills_tiles_at_20_percent_not_19() -> None:
    mask = torch.zeros(40, 80, dtype=torch.bool)  # grid (4, 8) → 10×10 tiles of 100 px
    mask[0:2, 0:9] = True
    mask[2, 0] = True  # tile (0, 0): 19 px = 19 %
    mask[10:12, 10:20] = True
    mask[12, 10] = True  # tile (1, 1): 21 px = 21 %
    mask[20:22, 20:30] = True  # tile (2, 2): exactly 20 px = 20 % (>= fills)
    expected = mask.clone()
    expected[10:20, 10:20] = True
    expected[20:30, 20:30] = True
    out = block_suggestion(mask, grid=(4, 8), threshold=0.2, reference_quirks=False)
    assert torch.equal(out, expected)


def test_block_reference_quirks_skip_last_row_and_column_of_each_tile() -> None:
    mask = torch.zeros(33, 30, dtype=torch.bool)  # grid 3 → I = 11, J = 10 (area 110)
    mask[0:2, 0:9] = True
    mask[2, 0:5] = True  # tile (0, 0): 23 px in the counted 10×9 part → 23/110 >= 0.2
    mask[0:2, 10:19] = True
    mask[2, 10:13] = True  # tile (0, 1): 21 px counted → 21/110 < 0.2 ...
    mask[10, 10:20] = True  # ... its last row (10 px) is not counted
    out = block_suggestion(mask, grid=3, threshold=0.2, reference_quirks=True)
    expected = mask.clone()
    expected[0:10, 0:9] = True  # filled without the tile's last row (10) and column (9)
    assert torch.equal(out, expected)
    # the clean geometry counts the whole 11×10 tile (31/110 >= 0.2) and fills all of it
    clean = block_suggestion(mask, grid=3, threshold=0.2, reference_quirks=False)
    assert bool(clean[0:11, 10:20].all()) and bool(clean[0:11, 0:10].all())


def test_block_reference_quirks_leave_remainder_rows_untouched() -> None:
    mask = torch.ones(35, 20, dtype=torch.bool)
    mask[30:, :] = False  # grid rows = 3 → I = 11; rows 33–34 lie beyond 3·I and are in no tile
    out = block_suggestion(mask, grid=(3, 2), threshold=0.2, reference_quirks=True)
    assert not bool(out[32:].any())  # the tile's last row (32) and the remainder stay as the mask
    assert bool(out[22:32, 0:9].all())  # the third tile row is filled, rows 30–31 included


@pytest.mark.parametrize("quirks", [True, False])
@pytest.mark.parametrize("shape,grid", [((64, 128), 8), ((37, 83), (5, 7))])
def test_block_vectorised_equals_loop(quirks: bool, shape: tuple[int, int], grid) -> None:
    for seed in range(4):
        mask = _blobs(seed, *shape, count=6)
        fast = block_suggestion(mask, grid, 0.2, quirks)
        assert torch.equal(fast, block_loop(mask, grid, 0.2, quirks))
        assert bool(fast[mask].all())


def test_block_generator_output_and_errors() -> None:
    mask = _blobs(1)
    out = BlockSuggestion(grid=8)(mask)
    assert out.shape == (1, 64, 128) and out.dtype == torch.float32
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="threshold"):
        BlockSuggestion(threshold=0.0)
    with pytest.raises(ValueError, match="do not fit"):
        block_suggestion(torch.zeros(4, 4, dtype=torch.bool), grid=8)


# --------------------------------------------------------------------------------------- flood


def test_flood_cascade_on_hand_made_draws() -> None:
    """All raw shift bounds = 3 on a 4×4 grid of 16×32 tiles (counted parts 15×31); one pixel.

    Clipping gives x = 0 in tile row 0 and 3 (last: 64 − 64 − 1 < 0), y = 0 in tile columns 0
    and 3; elsewhere x = y = 3. The pixel floods its tile (1, 1); tile (1, 2) reads 3 columns
    back into it, tiles (2, 1) and (2, 2) read 3 rows up: four counted tile parts become True.
    Tiles with x = 0 or y = 0 only flood rows / columns that already hold a one: none here.
    """
    mask = torch.zeros(64, 128, dtype=torch.bool)
    mask[24, 48] = True
    draws = FloodDraws(torch.full((16, 2), 3), torch.rand(16, 1000, 2, generator=_gen(0)))
    expected = mask.clone()
    for r, c in ((16, 32), (16, 64), (32, 32), (32, 64)):
        expected[r:r + 15, c:c + 31] = True
    assert torch.equal(flood_suggestion(mask, threshold=4, grid=4, draws=draws), expected)
    assert torch.equal(flood_loop(mask, threshold=4, grid=4, draws=draws), expected)


def test_flood_first_tile_row_floods_rows_independently() -> None:
    mask = torch.zeros(64, 128, dtype=torch.bool)
    mask[5, 70] = True  # tile (0, 2): x = 0 there, y = 3
    draws = FloodDraws(torch.full((16, 2), 3), torch.rand(16, 1000, 2, generator=_gen(1)))
    out = flood_suggestion(mask, threshold=4, grid=4, draws=draws)
    expected = mask.clone()
    expected[5, 64:95] = True  # only row 5 of the tile's counted part
    # tile (1, 2) cannot reach row 5 (it reads rows 13–33) and tile (0, 3) has y = 0
    assert torch.equal(out, expected)


@pytest.mark.parametrize("seed", range(3))
def test_flood_vectorised_matches_reference_loop_with_same_draws(seed: int) -> None:
    mask = _blobs(seed, count=4)
    draws = draw_flood_shifts(16, 6, 1000, _gen(seed))
    exact = flood_loop(mask, threshold=6, grid=4, draws=draws)
    fast = flood_suggestion(mask, threshold=6, grid=4, draws=draws)
    assert bool(exact[mask].all())  # superset of the mask
    assert torch.equal(fast, exact)  # with 1,000 shifts every tile saturates


def test_flood_closure_dominates_the_loop_when_shifts_are_few() -> None:
    """With only a few shifts the exact loop need not saturate; the closure stays a superset."""
    for seed in range(3):
        mask = _blobs(seed, count=4)
        draws = draw_flood_shifts(16, 6, 5, _gen(seed))
        exact = flood_loop(mask, threshold=6, grid=4, num_shifts=5, draws=draws)
        fast = flood_suggestion(mask, threshold=6, grid=4, num_shifts=5, draws=draws)
        assert bool(exact[mask].all()) and bool(fast[exact].all())


def test_flood_generator_reproducible_and_exact_mode_is_the_loop() -> None:
    mask = _blobs(3)
    gen = FloodSuggestion(threshold=5, grid=4, num_shifts=300)
    a, b = gen(mask, _gen(7)), gen(mask, _gen(7))
    assert torch.equal(a, b) and a.shape == (1, 64, 128)
    exact = FloodSuggestion(threshold=5, grid=4, num_shifts=300, exact=True)(mask, _gen(7))
    assert torch.equal(exact[0].bool(), flood_loop(mask, 5, 4, 300, _gen(7)))
    assert bool(a[0][mask].all())


def test_flood_clean_mode_is_a_bounded_rectangle_dilation() -> None:
    mask = torch.zeros(64, 128, dtype=torch.bool)
    mask[30, 60] = True
    for seed in range(5):
        out = FloodSuggestion(threshold=6, reference_quirks=False)(mask, _gen(seed))[0].bool()
        rows, cols = torch.nonzero(out.any(1)).view(-1), torch.nonzero(out.any(0)).view(-1)
        ry, rx = 30 - int(rows[0]), 60 - int(cols[0])
        assert 1 <= ry <= 5 and 1 <= rx <= 5
        assert torch.equal(out, box_dilate(mask, ry, rx))
        assert int(out.sum()) == (2 * ry + 1) * (2 * rx + 1)


def test_box_dilate_equals_max_pool() -> None:
    g = _gen(0)
    for _ in range(20):
        h, w = torch.randint(1, 25, (2,), generator=g).tolist()
        ry, rx = torch.randint(0, 30, (2,), generator=g).tolist()
        mask = torch.rand(h, w, generator=g) < 0.05
        ref = F.max_pool2d(mask[None, None].float(), (2 * ry + 1, 2 * rx + 1), 1, (ry, rx))[0, 0]
        assert torch.equal(box_dilate(mask, ry, rx), ref > 0)


def test_flood_argument_errors() -> None:
    with pytest.raises(ValueError, match="threshold"):
        FloodSuggestion(threshold=1)
    with pytest.raises(ValueError, match="num_shifts"):
        flood_suggestion(torch.zeros(8, 8, dtype=torch.bool), num_shifts=0)
    with pytest.raises(ValueError, match="does not fit"):
        flood_loop(torch.zeros(8, 8, dtype=torch.bool), grid=10)
    draws = draw_flood_shifts(16, 4, 10, _gen(0))
    with pytest.raises(ValueError, match=r"expected \(4, 2\)"):
        flood_suggestion(torch.zeros(8, 8, dtype=torch.bool), 4, grid=2, num_shifts=10,
                         draws=draws)
    mask = _blobs(0)
    assert torch.equal(flood_loop(mask, 4, 4, 10, draws=draws, max_tiles=0), mask)


# --------------------------------------------------------------------------------------- click


def test_first_click_at_farthest_interior_point() -> None:
    mask = torch.zeros(64, 128, dtype=torch.bool)
    mask[5:14, 5:14] = True  # 9×9 square
    mask[30:51, 70:91] = True  # 21×21 square, centre (40, 80), distance 11 to the outside
    y, x, dist = farthest_interior_point(mask)
    assert (y, x) == (40, 80) and dist == pytest.approx(11.0)
    out = ClickSuggestion(radius=5)(mask, _gen(0))
    assert out.shape == (1, 64, 128)
    yy, xx = torch.meshgrid(torch.arange(64), torch.arange(128), indexing="ij")
    disk = ((yy - 40) ** 2 + (xx - 80) ** 2) <= 25
    assert torch.equal(out[0].bool(), disk) and int(disk.sum()) == 81


def test_click_treats_the_image_border_as_boundary() -> None:
    mask = torch.zeros(64, 128, dtype=torch.bool)
    mask[0:21, 0:21] = True  # touching the top and left border
    assert farthest_interior_point(mask)[:2] == (10, 10)
    dist = distance_to_boundary(mask)
    assert dist[0, 0] == 1.0 and dist[10, 10] == 11.0
    unpadded = distance_to_boundary(mask, pad_border=False)
    assert unpadded[0, 0] > unpadded[10, 10]  # without padding the corner would win


def test_click_positive_and_negative_channels() -> None:
    mask = torch.zeros(64, 128, dtype=torch.bool)
    mask[20:40, 40:80] = True
    gen = ClickSuggestion(num_positive=3, num_negative=4, radius=2, negative_band=5)
    positive, negative = gen.sample_clicks(mask, _gen(3))
    assert len(positive) == 3 and len(set(positive)) == 3 and len(negative) == 4
    assert all(mask[y, x] for y, x in positive)
    for y, x in negative:  # background, within 5 px (Chebyshev) of the mask
        assert not mask[y, x] and 15 <= y < 45 and 35 <= x < 85
    out = gen(mask, _gen(3))
    assert out.shape == (2, 64, 128)
    assert torch.equal(out[1], encode_clicks(negative, (64, 128), 2.0))
    assert torch.equal(out, gen(mask, _gen(3)))


def test_click_distance_encoding_values() -> None:
    maps = encode_clicks([(10, 10)], (32, 32), radius=5.0, encoding="distance")
    assert maps[10, 10] == 0.0
    assert maps[10, 15].item() == pytest.approx(math.tanh(2.0))
    assert torch.equal(encode_clicks([], (4, 4), encoding="distance"), torch.ones(4, 4))
    with pytest.raises(ValueError, match="outside"):
        encode_clicks([(40, 0)], (32, 32))


def test_click_reference_quirks_single_pixel_and_errors() -> None:
    mask = _blobs(2)
    out = ClickSuggestion(reference_quirks=True)(mask, _gen(0))
    assert int((out > 0).sum()) == 1 and bool(mask[out[0] > 0].all())
    with pytest.raises(ValueError, match="no positive pixel"):
        ClickSuggestion()(torch.zeros(8, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match="encoding"):
        ClickSuggestion(encoding="gaussian")


# ------------------------------------------------------------------------------ extreme / box


def _cross() -> torch.Tensor:
    mask = torch.zeros(64, 128, dtype=torch.bool)
    mask[30:33, 20:101] = True  # horizontal bar, rows 30–32
    mask[10:51, 60:63] = True  # vertical bar, cols 60–62
    return mask


def test_extreme_points_at_the_mask_extremes() -> None:
    mask = _cross()
    assert extreme_points(mask) == [(31, 20), (31, 100), (10, 61), (50, 61)]
    heat = ExtremePointSuggestion(sigma=10.0)(mask, training=False)[0]
    for y, x in [(31, 20), (31, 100), (10, 61), (50, 61)]:
        assert heat[y, x] == 1.0
    assert heat[31, 25].item() == pytest.approx(0.5, abs=1e-6)  # FWHM: d = σ/2 → 1/2
    assert heat[31, 30].item() == pytest.approx(2.0 ** -4, abs=1e-6)  # d = σ → 2^-4
    assert float(heat.min()) >= 0.0 and float(heat.max()) <= 1.0


def test_extreme_points_jitter_in_training_only() -> None:
    mask = _cross()
    for seed in range(5):
        (ly, lx), (ry, rx), (ty, tx), (by, bx) = extreme_points(mask, 5, _gen(seed))
        assert mask[ly, lx] and lx <= 25 and rx >= 95 and ty <= 15 and by >= 45
    gen = ExtremePointSuggestion(jitter=5)
    assert torch.equal(gen(mask, _gen(0), training=False), gen(mask, _gen(1), training=False))


def test_box_covers_all_blobs_and_clips_margin() -> None:
    mask = torch.zeros(64, 128, dtype=torch.bool)
    mask[2:5, 3:6] = True
    mask[40:50, 100:120] = True
    expected = torch.zeros_like(mask)
    expected[2:50, 3:120] = True
    assert torch.equal(BoxSuggestion()(mask)[0].bool(), expected)
    wide = bounding_box(mask, margin=10)
    assert bool(wide[0:60, 0:128].all()) and not bool(wide[60:].any())


# ------------------------------------------------------------------------------- registry etc.


def test_registry_and_combined() -> None:
    assert {"block", "flood", "click", "extreme", "box"} <= set(SUGGESTIONS)
    assert isinstance(build_suggestion("block"), BlockSuggestion)
    combo = build_suggestion(["box", {"name": "click", "num_negative": 2}])
    assert isinstance(combo, Combined) and combo.num_channels == 3
    mask = _blobs(4)
    out = combo(mask, _gen(5))
    g = _gen(5)
    parts = [BoxSuggestion()(mask, g), ClickSuggestion(num_negative=2)(mask, g)]
    assert torch.equal(out, torch.cat(parts))
    with pytest.raises(KeyError, match="registered"):
        build_suggestion("scribble")
    with pytest.raises(ValueError, match="'name'"):
        build_suggestion({"threshold": 3})
    with pytest.raises(TypeError, match="'flood'"):
        build_suggestion({"name": "flood", "radius": 3})


@pytest.mark.parametrize("name", ["block", "flood", "click", "extreme", "box"])
def test_every_generator_validates_the_mask(name: str) -> None:
    gen = build_suggestion(name)
    with pytest.raises(TypeError, match="bool"):
        gen(torch.zeros(8, 8, dtype=torch.long))
    with pytest.raises(ValueError, match="2-D"):
        gen(torch.zeros(1, 8, 8, dtype=torch.bool))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_generators_run_on_cuda_like_on_cpu() -> None:
    mask = _blobs(0, 128, 256, count=5)
    cuda = mask.cuda()
    for gen in (BlockSuggestion(grid=8), BoxSuggestion(), ClickSuggestion(),
                ExtremePointSuggestion()):
        cpu_out = gen(mask, _gen(0), training=False)
        gpu_out = gen(cuda, torch.Generator("cuda").manual_seed(0), training=False)
        assert gpu_out.device.type == "cuda"
        assert torch.allclose(gpu_out.cpu(), cpu_out, atol=1e-6)
    draws = draw_flood_shifts(64, 8, 1000, _gen(0))
    assert torch.equal(flood_suggestion(cuda, 8, 8, draws=draws).cpu(),
                       flood_suggestion(mask, 8, 8, draws=draws))
    out = FloodSuggestion(8, grid=8)(cuda, torch.Generator("cuda").manual_seed(0))
    assert out.device.type == "cuda" and bool(out[0][cuda].all())


def test_click_counts_vary_between_the_bounds_with_the_generator() -> None:
    """max_positive / max_negative: each call draws its counts in num..max (inclusive); the same
    generator state gives the same clicks; a fixed-count generator stays fixed."""
    mask = torch.zeros(40, 40, dtype=torch.bool)
    mask[10:30, 10:30] = True
    gen = ClickSuggestion(num_positive=1, num_negative=0, max_positive=4, max_negative=3,
                          radius=0.5, negative_band=5)
    assert gen.num_channels == 2
    counts = set()
    for seed in range(40):
        out = gen(mask, _gen(seed))
        pos, neg = int(out[0].sum()), int(out[1].sum())  # radius 0.5: one pixel per click
        assert 1 <= pos <= 4 and 0 <= neg <= 3
        assert not out[1][mask].any()  # negatives stay off the object
        counts.add((pos, neg))
        assert torch.equal(out, gen(mask, _gen(seed)))
    assert {p for p, _ in counts} == {1, 2, 3, 4} and {n for _, n in counts} == {0, 1, 2, 3}
    fixed = ClickSuggestion(num_positive=2, num_negative=1, radius=0.5, negative_band=5)
    assert {int(fixed(mask, _gen(s))[0].sum()) for s in range(10)} == {2}
    with pytest.raises(ValueError, match="max_positive >= num_positive"):
        ClickSuggestion(num_positive=3, max_positive=2)


def test_noc_curve_summary_by_hand() -> None:
    """Three objects, 3 clicks each: a small one never above 0.2, two large ones reaching 0.9 at
    click 2 and 0.86 at click 3 → mIoU@1 = (0.1 + 0.5 + 0.4) / 3, NoC@85 = (3 + 2 + 3) / 3 with
    one failure, NoC@90 = (3 + 2 + 3) / 3 with two failures; the small bin holds one object."""
    from leseg.stages.s5_noc_curve import summarise_curves

    ious = [[0.1, 0.2, 0.2], [0.5, 0.9, 0.95], [0.4, 0.6, 0.86]]
    out = summarise_curves(ious, [300, 5000, 2000], size_bins=(1000, 4000), ks=(1, 3))
    assert out["all"]["mIoU@k"] == {1: pytest.approx(1.0 / 3), 3: pytest.approx(2.01 / 3)}
    assert out["all"]["NoC@85"] == pytest.approx(8 / 3) and out["all"]["NoC_fail@85"] == 1
    assert out["all"]["NoC@90"] == pytest.approx(8 / 3) and out["all"]["NoC_fail@90"] == 2
    assert set(out["bins"]) == {"0-1000", "1000-4000", "4000-inf"}
    assert out["bins"]["0-1000"]["NoC_fail@85"] == 1 and out["bins"]["4000-inf"]["NoC@90"] == 2
    with pytest.raises(ValueError, match="beyond the 3 clicks"):
        summarise_curves(ious, [1, 2, 3], ks=(5,))
