"""The fast paths of issue 19 against the implementations they replaced (kept here as references):
S5 flood closure, distance transform / farthest interior point, click disks, sparse random walk,
flip-batched CAM inference. Hand-made and random inputs; results must be equal (float paths
that only reorder sums: allclose)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from leseg.components.affinity import pair_indices
from leseg.components.cam import aggregate_cams
from leseg.components.random_walk import (
    affinity_matrix,
    propagate_cams,
    random_walk,
    transition_matrix,
)
from leseg.components.suggestions import (
    ClickSuggestion,
    distance_to_boundary,
    draw_flood_shifts,
    encode_clicks,
    farthest_interior_point,
    flood_suggestion,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from former import (  # noqa: E402  (the former implementations, benchmarks/former.py)
    reference_aggregate_cams,
    reference_disks,
    reference_distance,
    reference_farthest,
    reference_flood,
    reference_sparse_walk,
)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _random_region(g: torch.Generator, h: int, w: int) -> torch.Tensor:
    """Scattered pixels, or blobs (dilated scattered pixels), or rectangles: varied components."""
    kind = int(torch.randint(3, (1,), generator=g))
    p = float(torch.rand(1, generator=g)) * (0.3 if kind else 0.9)
    region = torch.rand(h, w, generator=g) < p
    if kind == 1:
        region = F.max_pool2d(region[None].float(), 3, 1, 1)[0] > 0
    elif kind == 2:
        region = torch.zeros(h, w, dtype=torch.bool)
        for _ in range(int(torch.randint(1, 5, (1,), generator=g))):
            y0, x0 = int(torch.randint(h, (1,), generator=g)), int(torch.randint(w, (1,), generator=g))
            dy, dx = torch.randint(1, 12, (2,), generator=g).tolist()
            region[y0:y0 + dy, x0:x0 + dx] = True
    return region


# ----------------------------------------------------------------------------------- flood
def test_flood_fast_path_equals_the_former_closure_on_random_masks() -> None:
    g = _gen(0)
    for _ in range(150):
        h, w = torch.randint(4, 70, (2,), generator=g).tolist()
        grid = (int(torch.randint(1, min(h, 6) + 1, (1,), generator=g)),
                int(torch.randint(1, min(w, 6) + 1, (1,), generator=g)))
        mask = torch.rand(h, w, generator=g) < float(torch.rand(1, generator=g)) * 0.05
        threshold, shifts = int(torch.randint(2, 9, (1,), generator=g)), int(
            torch.randint(1, 40, (1,), generator=g))
        draws = draw_flood_shifts(grid[0] * grid[1], threshold, shifts, g)
        expected = reference_flood(mask, threshold, grid, shifts, draws)
        assert torch.equal(flood_suggestion(mask, threshold, grid, shifts, draws=draws), expected)


def test_flood_fast_path_equals_the_former_closure_at_s5_scale() -> None:
    """A 10×10 grid on a 256×512 mask with the S5 settings (t = 20 and 50, 1,000 shifts)."""
    yy, xx = torch.meshgrid(torch.arange(256.0), torch.arange(512.0), indexing="ij")
    mask = ((yy - 80) / 30) ** 2 + ((xx - 300) / 50) ** 2 <= 1
    mask |= ((yy - 200) / 10) ** 2 + ((xx - 60) / 12) ** 2 <= 1
    for threshold in (20, 50):
        draws = draw_flood_shifts(100, threshold, 1000, _gen(threshold))
        out = flood_suggestion(mask, threshold, 10, 1000, draws=draws)
        assert torch.equal(out, reference_flood(mask, threshold, 10, 1000, draws))
        assert 0 < int(out.sum()) < out.numel()  # a partial flood: the test can tell


# --------------------------------------------------------------------- distance and clicks
def test_distance_by_component_crops_equals_one_transform() -> None:
    g = _gen(1)
    for _ in range(300):
        h, w = torch.randint(1, 45, (2,), generator=g).tolist()
        region = _random_region(g, h, w)
        assert torch.equal(distance_to_boundary(region), reference_distance(region)), (h, w)


def test_distance_hand_made_nested_components() -> None:
    """A ring with a separate blob inside its bounding box: the blob keeps its own distances and
    the ring's do not leak into it (hand-computed values)."""
    region = torch.zeros(20, 20, dtype=torch.bool)
    region[2:17, 2:17] = True
    region[5:14, 5:14] = False  # ring of width 3
    region[8:11, 8:11] = True  # 3×3 blob in the hole
    dist = distance_to_boundary(region)
    assert float(dist[9, 9]) == 2.0 and float(dist[8, 8]) == 1.0
    assert float(dist[3, 9]) == 2.0 and float(dist[2, 2]) == 1.0 and float(dist[0, 0]) == 0.0
    assert torch.equal(dist, reference_distance(region))


def test_farthest_point_equals_the_former_argmax_with_ties_and_exclusions() -> None:
    g = _gen(2)
    for _ in range(300):
        h, w = torch.randint(1, 45, (2,), generator=g).tolist()
        region = _random_region(g, h, w)
        exclude = torch.rand(h, w, generator=g) < 0.2
        for ex in (None, exclude):
            expected = reference_farthest(region, ex)
            if expected is None:
                with pytest.raises(ValueError, match="no selectable pixel"):
                    farthest_interior_point(region, ex)
            else:
                assert farthest_interior_point(region, ex) == expected
    two = torch.zeros(9, 30, dtype=torch.bool)
    two[1:6, 2:7] = True
    two[1:6, 20:25] = True  # identical squares: the tie goes to the first in raster order
    assert farthest_interior_point(two) == (3, 4, 3.0)


def test_disk_encoding_equals_the_full_distance_map() -> None:
    g = _gen(3)
    for _ in range(50):
        h, w = torch.randint(1, 40, (2,), generator=g).tolist()
        n = int(torch.randint(0, 5, (1,), generator=g))
        points = [(int(torch.randint(h, (1,), generator=g)), int(torch.randint(w, (1,), generator=g)))
                  for _ in range(n)]
        radius = float(torch.rand(1, generator=g)) * 8 + 0.3
        assert torch.equal(encode_clicks(points, (h, w), radius), reference_disks(points, (h, w), radius))


def test_click_generator_places_the_first_click_like_before() -> None:
    yy, xx = torch.meshgrid(torch.arange(128.0), torch.arange(256.0), indexing="ij")
    mask = ((yy - 40) / 20) ** 2 + ((xx - 60) / 35) ** 2 <= 1
    mask |= ((yy - 90) / 25) ** 2 + ((xx - 190) / 25) ** 2 <= 1
    y, x, _ = reference_farthest(mask)
    out = ClickSuggestion()(mask, _gen(0))
    assert torch.equal(out[0], reference_disks([(y, x)], (128, 256), 5.0))


# ----------------------------------------------------------------------------- random walk
@pytest.mark.parametrize("grid", [(6, 12), (13, 9), (24, 24)])
def test_scipy_sparse_walk_equals_the_former_torch_walk(grid: tuple[int, int]) -> None:
    """Same matrix, same 256 products: equal to float32 rounding, and no farther from the float64
    result than the former walk."""
    h, w = grid
    g = _gen(h * w)
    _, dst = pair_indices(h, w)
    aff = torch.rand(dst.shape, generator=g)
    scores = torch.rand(21, h, w, generator=g)
    new = random_walk(scores, aff, h, w, dense=False)
    old = reference_sparse_walk(scores, aff, h, w)
    assert new.dtype == torch.float32 and new.shape == (21, h, w)
    assert torch.allclose(new, old, atol=3e-5, rtol=1e-4)
    trans = transition_matrix(affinity_matrix(aff.double(), h, w))
    exact = (scores.reshape(21, -1).double() @ torch.linalg.matrix_power(trans, 256)).reshape(21, h, w)
    assert (new.double() - exact).abs().max() <= 2 * (old.double() - exact).abs().max() + 1e-6


def test_scipy_sparse_walk_keeps_regions_apart_and_constants() -> None:
    """Hand-made: zero affinity across a vertical boundary keeps each half's score; constants stay."""
    h, w = 6, 12
    src, dst = pair_indices(h, w)
    col = lambda i: i % w  # noqa: E731
    aff = ((col(src.expand_as(dst)) < w // 2) == (col(dst) < w // 2)).float()
    scores = torch.zeros(2, h, w)
    scores[0, :, :w // 2], scores[1, :, w // 2:] = 1.0, 1.0
    out = random_walk(scores, aff, h, w, dense=False)
    assert torch.allclose(out, scores, atol=1e-6)
    ones = random_walk(torch.ones(1, h, w), torch.rand(dst.shape, generator=_gen(5)), h, w, dense=False)
    assert torch.allclose(ones, torch.ones(1, h, w), atol=1e-5)


def test_sparse_pseudo_mask_equals_the_dense_one() -> None:
    h, w = 16, 20
    g = _gen(11)
    _, dst = pair_indices(h, w)
    aff = torch.rand(dst.shape, generator=g) ** 0.25
    cams = torch.zeros(3, 8 * h, 8 * w)
    cams[0, :40, :60], cams[1, 60:, 80:], cams[2, :50, 100:] = 0.9, 0.8, 0.7
    assert torch.equal(propagate_cams(cams, aff, (h, w), dense=False),
                       propagate_cams(cams, aff, (h, w), dense=True))


def test_scipy_sparse_walk_rejects_mismatched_affinities() -> None:
    with pytest.raises(ValueError, match="do not match the 6x12 grid"):
        random_walk(torch.rand(2, 6, 12), torch.rand(3, 5), 6, 12, dense=False)


# ---------------------------------------------------------------------------- CAM inference
def test_flip_batched_cams_equal_the_former_two_passes_hand_made() -> None:
    """A position-dependent cam_fn (a horizontal ramp times the image): the flip must be undone
    on the right half of the batch, per image, for every scale."""

    def cam_fn(x: torch.Tensor) -> torch.Tensor:
        ramp = torch.linspace(0, 1, x.shape[-1])
        return torch.stack([x[:, 0] * ramp, x[:, 1] - ramp, x[:, 2] * 0 + 1.0], dim=1)

    g = _gen(21)
    image = torch.rand(3, 3, 10, 14, generator=g)
    labels = torch.tensor([[1.0, 1, 0], [0, 1, 1], [1, 0, 1]])
    for scales in ((1.0,), (1.0, 0.5, 1.5, 2.0)):
        new = aggregate_cams(cam_fn, image, labels, scales, flip=True)
        assert torch.allclose(new, reference_aggregate_cams(cam_fn, image, labels, scales), atol=1e-6)
        assert torch.equal(aggregate_cams(cam_fn, image, labels, scales, batch_flips=False),
                           reference_aggregate_cams(cam_fn, image, labels, scales))
    assert torch.equal(aggregate_cams(cam_fn, image, labels, (1.0, 0.5), flip=False),
                       reference_aggregate_cams(cam_fn, image, labels, (1.0, 0.5), flip=False))


def test_flip_batched_cams_equal_the_former_two_passes_with_a_cam_network() -> None:
    from leseg.models.heads.cam import CAMNet
    from leseg.models.resnet38 import TimmCAMTrunk

    torch.manual_seed(0)
    net = CAMNet(TimmCAMTrunk("resnet18")).eval()
    image = torch.randn(1, 3, 40, 56)
    labels = torch.zeros(1, 20)
    labels[0, [3, 11]] = 1
    with torch.no_grad():
        new = aggregate_cams(net, image, labels, (1.0, 0.5, 1.5))
        old = reference_aggregate_cams(net, image, labels, (1.0, 0.5, 1.5))
    assert torch.allclose(new, old, atol=1e-5)
    assert float(new[0, 3].max()) > 0.99 and float(new[0, 0].abs().max()) == 0.0
