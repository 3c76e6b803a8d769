"""RITM click simulator and NoC@85/90 (leseg extension) with scripted toy predictors."""

from __future__ import annotations

import pytest
import torch

from leseg.metrics.interactive import (
    Click,
    NoCAggregator,
    clicks_to_maps,
    foreground_iou,
    next_click,
    noc,
)

H, W = 64, 128


def _square(y: int, x: int, side: int) -> torch.Tensor:
    mask = torch.zeros(H, W, dtype=torch.bool)
    mask[y:y + side, x:x + side] = True
    return mask


def test_foreground_iou_hand_computed() -> None:
    a, b = _square(0, 0, 4), _square(0, 2, 4)  # 16 px each, overlap 8
    assert foreground_iou(a, b) == pytest.approx(8 / 24)
    ignore = torch.zeros(H, W, dtype=torch.bool)
    ignore[:, 4:] = True  # drops b's right half
    assert foreground_iou(a, b, ignore) == pytest.approx(8 / 16)
    empty = torch.zeros(H, W, dtype=torch.bool)
    assert foreground_iou(empty, empty) == 1.0


def test_first_click_is_positive_at_the_object_centre() -> None:
    gt = _square(20, 50, 21)
    click = next_click(torch.zeros_like(gt), gt)
    assert click == Click(30, 60, True)


def test_false_positive_region_gets_a_negative_click() -> None:
    gt = _square(20, 10, 11)  # FN-free; the FP square is larger
    pred = gt | _square(10, 70, 31)
    assert next_click(pred, gt) == Click(25, 85, False)
    # equal maxima → negative (RITM: positive only if the FN maximum is strictly larger)
    assert not next_click(_square(0, 100, 5), _square(40, 10, 5)).positive


def test_error_region_at_the_border_is_clicked_at_its_centre() -> None:
    gt = _square(0, 0, 21)  # touches the top-left image corner
    assert next_click(torch.zeros_like(gt), gt) == Click(10, 10, True)


def test_clicked_pixels_are_not_chosen_again() -> None:
    gt = _square(20, 50, 21)
    click = next_click(torch.zeros_like(gt), gt, clicks=[Click(30, 60, True)])
    assert click == Click(29, 59, True)  # first pixel in raster order at distance 10


def test_ignored_pixels_attract_no_click() -> None:
    gt = _square(20, 50, 21) | _square(5, 5, 31)
    ignore = _square(5, 5, 31)
    assert next_click(torch.zeros_like(gt), gt, ignore=ignore) == Click(30, 60, True)


def _oracle(squares: list[torch.Tensor]):
    """Predicts every ground-truth square that contains a positive click."""
    def predict(clicks: list[Click]) -> torch.Tensor:
        pred = torch.zeros(H, W)
        for c in clicks:
            for sq in squares:
                if c.positive and sq[c.y, c.x]:
                    pred[sq] = 1.0
        return pred
    return predict


def test_noc_with_scripted_oracle() -> None:
    """Squares of side 16, 12, 9, 8 (areas 256, 144, 81, 64; 545 px): one click per square,
    largest first, IoU 256/545, 400/545, 481/545 (0.883), 1 → NoC@85 = 3, NoC@90 = 4."""
    squares = [_square(2, 2, 16), _square(30, 40, 12), _square(5, 80, 9), _square(40, 100, 8)]
    gt = squares[0] | squares[1] | squares[2] | squares[3]
    result = noc(_oracle(squares), gt)
    assert result.ious == pytest.approx([256 / 545, 400 / 545, 481 / 545, 1.0])
    assert result.noc == {0.85: 3, 0.9: 4} and result.reached == {0.85: True, 0.9: True}
    assert [c.positive for c in result.clicks] == [True] * 4
    assert result.clicks[0] == Click(9, 9, True)  # centre of the 16-square (first max)


def test_negative_click_removes_false_positives() -> None:
    gt = _square(20, 20, 21)
    spill = _square(20, 41, 21)  # painted next to the object with every positive click

    def predict(clicks: list[Click]) -> torch.Tensor:
        pred = torch.zeros(H, W, dtype=torch.bool)
        if any(c.positive for c in clicks):
            pred |= gt | spill
        if any(not c.positive and spill[c.y, c.x] for c in clicks):
            pred &= ~spill
        return pred.float()

    result = noc(predict, gt)
    assert result.clicks == [Click(30, 30, True), Click(30, 51, False)]
    assert result.ious == pytest.approx([0.5, 1.0])
    assert result.noc == {0.85: 2, 0.9: 2}


def test_never_reaching_counts_max_clicks_and_aggregates() -> None:
    gt = _square(10, 10, 30)

    def tiny_disks(clicks: list[Click]) -> torch.Tensor:  # radius-2 disks: 13 px per click
        return clicks_to_maps(clicks, (H, W), radius=2.0)[0]

    stuck = noc(tiny_disks, gt, max_clicks=20)
    assert len(stuck.ious) == 20 and max(stuck.ious) < 0.85
    assert stuck.noc == {0.85: 20, 0.9: 20} and stuck.reached == {0.85: False, 0.9: False}
    squares = [_square(2, 2, 16), _square(30, 40, 12), _square(5, 80, 9), _square(40, 100, 8)]
    solved = noc(_oracle(squares), squares[0] | squares[1] | squares[2] | squares[3])
    agg = NoCAggregator()
    agg.update(solved)
    agg.update(stuck)
    assert agg.compute() == {"noc@85": 11.5, "noc_fail@85": 1.0, "noc@90": 12.0,
                             "noc_fail@90": 1.0, "num_objects": 2.0}


def test_clicks_to_maps_and_errors() -> None:
    maps = clicks_to_maps([Click(5, 5, True), Click(20, 30, False)], (H, W), radius=1.0)
    assert maps.shape == (2, H, W) and int(maps[0].sum()) == 5 and maps[1, 20, 30] == 1.0
    gt = _square(0, 0, 4)
    with pytest.raises(ValueError, match="probability map"):
        noc(lambda clicks: torch.zeros(3, 3), gt)
    with pytest.raises(ValueError, match="no \\(non-ignored\\) pixel"):
        noc(lambda clicks: torch.zeros(H, W), torch.zeros(H, W, dtype=torch.bool))
    with pytest.raises(ValueError, match="no objects"):
        NoCAggregator().compute()
    with pytest.raises(ValueError, match="thresholds"):
        NoCAggregator(thresholds=(0.8,)).update(noc(_oracle([gt]), gt))
