"""Confusion-matrix mIoU (mmsegmentation's IoUMetric contract) on hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch

from leseg.metrics import SegmentationMetric, confusion_matrix, metrics_from_confusion

# A 2x3 image, C = 3, one ignored pixel (255) whose prediction must not count.
TARGET = torch.tensor([[0, 0, 1],
                       [2, 255, 1]])
PRED = torch.tensor([[0, 1, 1],
                     [2, 0, 0]])
# Counted pairs (gt, pred): (0,0) (0,1) (1,1) (2,2) (1,0)
#   rows = gt:  gt 0 → [1, 1, 0], gt 1 → [1, 1, 0], gt 2 → [0, 0, 1]
#   IoU_0 = 1 / (2 + 2 - 1) = 1/3, IoU_1 = 1/3, IoU_2 = 1/1; mIoU = 5/9
#   aAcc = 3/5, Acc = [1/2, 1/2, 1], mAcc = 2/3


def test_confusion_matrix_hand_computed_2x3() -> None:
    cm = confusion_matrix(PRED, TARGET, num_classes=3)
    assert cm.dtype == torch.int64
    assert cm.tolist() == [[1, 1, 0], [1, 1, 0], [0, 0, 1]]


def test_metrics_hand_computed_2x3() -> None:
    result = metrics_from_confusion(confusion_matrix(PRED, TARGET, num_classes=3))
    assert result["IoU"].dtype == torch.float64
    assert result["IoU"].tolist() == pytest.approx([1 / 3, 1 / 3, 1.0])
    assert float(result["mIoU"]) == pytest.approx(5 / 9)
    assert float(result["aAcc"]) == pytest.approx(3 / 5)
    assert result["Acc"].tolist() == pytest.approx([0.5, 0.5, 1.0])
    assert float(result["mAcc"]) == pytest.approx(2 / 3)


def test_ignored_pixels_are_not_counted_whatever_their_prediction() -> None:
    other = PRED.clone()
    other[1, 1] = 2  # the ignored pixel
    assert torch.equal(confusion_matrix(other, TARGET, 3), confusion_matrix(PRED, TARGET, 3))
    other[1, 1] = 77  # out of range, but at an ignored pixel: not looked at
    assert confusion_matrix(other, TARGET, 3).sum() == 5


def test_custom_ignore_index() -> None:
    target = torch.tensor([[0, 1, 3]])
    pred = torch.tensor([[0, 0, 1]])
    cm = confusion_matrix(pred, target, num_classes=3, ignore_index=3)
    assert cm.tolist() == [[1, 0, 0], [1, 0, 0], [0, 0, 0]]


def test_class_absent_from_gt_and_prediction_is_nan_and_excluded() -> None:
    result = metrics_from_confusion(confusion_matrix(PRED, TARGET, num_classes=4))
    assert math.isnan(result["IoU"][3])
    assert result["IoU"][:3].tolist() == pytest.approx([1 / 3, 1 / 3, 1.0])
    assert float(result["mIoU"]) == pytest.approx(5 / 9)  # nanmean over the 3 present classes
    assert math.isnan(result["Acc"][3])


def test_class_predicted_but_absent_from_gt_has_iou_zero_and_counts() -> None:
    target = torch.tensor([[0, 0]])
    pred = torch.tensor([[0, 1]])
    result = metrics_from_confusion(confusion_matrix(pred, target, num_classes=2))
    # IoU_0 = 1 / (2 + 1 - 1) = 1/2; IoU_1 = 0 / (0 + 1 - 0) = 0 → mIoU = 1/4
    assert result["IoU"].tolist() == pytest.approx([0.5, 0.0])
    assert float(result["mIoU"]) == pytest.approx(0.25)
    assert math.isnan(result["Acc"][1])  # recall is undefined without ground truth
    assert float(result["mAcc"]) == pytest.approx(0.5)


def test_empty_matrix_gives_nan() -> None:
    result = metrics_from_confusion(torch.zeros(3, 3, dtype=torch.int64))
    assert math.isnan(result["mIoU"]) and math.isnan(result["aAcc"])


@pytest.mark.parametrize(("pred_value", "target_value", "needle"), [
    (0, 7, "7"), (0, -1, "-1"), (3, 0, "3"), (-2, 1, "-2"),
])
def test_value_range_errors_name_the_offending_values(pred_value: int, target_value: int,
                                                      needle: str) -> None:
    pred = torch.tensor([[0, pred_value]])
    target = torch.tensor([[0, target_value]])
    with pytest.raises(ValueError, match=rf"\[{needle}\]"):
        confusion_matrix(pred, target, num_classes=3)


def test_value_range_error_says_which_input() -> None:
    with pytest.raises(ValueError, match="target"):
        confusion_matrix(torch.tensor([0]), torch.tensor([5]), num_classes=3)
    with pytest.raises(ValueError, match="pred"):
        confusion_matrix(torch.tensor([5]), torch.tensor([0]), num_classes=3)


def test_shape_and_dtype_errors() -> None:
    with pytest.raises(ValueError, match="same shape"):
        confusion_matrix(torch.zeros(2, 3, dtype=torch.long), torch.zeros(3, 2, dtype=torch.long), 3)
    with pytest.raises(ValueError, match="integer"):
        confusion_matrix(torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.long), 3)
    with pytest.raises(ValueError, match=r"\(C, C\)"):
        metrics_from_confusion(torch.zeros(2, 3, dtype=torch.long))


def test_runs_with_deterministic_algorithms_and_restores_the_flag() -> None:
    before = (torch.are_deterministic_algorithms_enabled(),
              torch.is_deterministic_algorithms_warn_only_enabled())
    try:
        torch.use_deterministic_algorithms(True, warn_only=True)
        cm = confusion_matrix(PRED, TARGET, num_classes=3)
        assert cm.tolist() == [[1, 1, 0], [1, 1, 0], [0, 0, 1]]
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])


def _random_batch(generator: torch.Generator, classes: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    target = torch.randint(0, classes, (2, 5, 6), generator=generator)
    target[torch.rand(target.shape, generator=generator) < 0.2] = 255
    pred = torch.randint(0, classes, (2, 5, 6), generator=generator)
    return pred, target


def test_metric_accumulates_like_one_update_on_the_concatenation() -> None:
    generator = torch.Generator().manual_seed(0)
    batches = [_random_batch(generator) for _ in range(3)]
    accumulated = SegmentationMetric(num_classes=4)
    for pred, target in batches:
        accumulated.update(pred, target)
    once = SegmentationMetric(num_classes=4)
    once.update(torch.cat([p for p, _ in batches]), torch.cat([t for _, t in batches]))
    assert torch.equal(accumulated.confmat, once.confmat)
    assert int(accumulated.confmat.sum()) == sum(int((t != 255).sum()) for _, t in batches)
    a, b = accumulated.compute(), once.compute()
    assert torch.equal(a["IoU"], b["IoU"]) and float(a["mIoU"]) == float(b["mIoU"])


def test_metric_takes_argmax_of_score_maps() -> None:
    generator = torch.Generator().manual_seed(1)
    scores = torch.randn(2, 4, 5, 6, generator=generator)
    _, target = _random_batch(generator)
    from_scores = SegmentationMetric(num_classes=4)
    from_scores.update(scores, target)
    from_labels = SegmentationMetric(num_classes=4)
    from_labels.update(scores.argmax(dim=1), target)
    assert torch.equal(from_scores.confmat, from_labels.confmat)
    with pytest.raises(ValueError, match="num_classes=5"):
        SegmentationMetric(num_classes=5).update(scores, target)


def test_metric_reset_and_hand_computed_result() -> None:
    metric = SegmentationMetric(num_classes=3)
    metric.update(PRED[None], TARGET[None])
    assert float(metric.compute()["mIoU"]) == pytest.approx(5 / 9)
    metric.reset()
    assert int(metric.confmat.sum()) == 0


def test_miou_agrees_with_torchmetrics_jaccard() -> None:
    from torchmetrics.classification import MulticlassJaccardIndex

    generator = torch.Generator().manual_seed(2)
    pred, target = _random_batch(generator, classes=5)
    pred[pred == 4] = 0  # class 4 only in ground truth somewhere, class 3 kept in both
    ours = metrics_from_confusion(confusion_matrix(pred, target, 5))
    theirs = MulticlassJaccardIndex(num_classes=5, ignore_index=255, average="none")(pred, target)
    assert torch.allclose(ours["IoU"].float(), theirs.float())
