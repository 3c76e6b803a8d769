"""OHEM cross-entropy and U2PL's contrastive term (memory queues, masks, InfoNCE) on tiny cases."""

from __future__ import annotations

import math

import pytest
import torch

from leseg.components.contrastive import (
    ClassMemoryQueues,
    class_ranks,
    entropy_reliability_masks,
    negative_candidates,
    pixel_entropy,
    u2pl_contrastive_loss,
    u2pl_entropy_percent,
    u2pl_queue_sizes,
)
from leseg.components.ohem import ohem_cross_entropy

# ---------------------------------------------------------------- OHEM

TRUE_PROBS = [0.9, 0.6, 0.8, 0.95]  # softmax probability of the true class (1) per pixel


def _ohem_case() -> tuple[torch.Tensor, torch.Tensor]:
    """(1, 2, 2, 2) logits whose class-1 probabilities are TRUE_PROBS, labels all 1."""
    p = torch.tensor(TRUE_PROBS, dtype=torch.float64)
    logit1 = torch.log(p / (1 - p))  # with class-0 logit 0, softmax gives p for class 1
    logits = torch.stack([torch.zeros(4, dtype=torch.float64), logit1]).view(1, 2, 2, 2)
    return logits.requires_grad_(True), torch.ones(1, 2, 2, dtype=torch.int64)


@pytest.mark.parametrize(
    ("min_kept", "expected"),
    [
        # 1 pixel below 0.7 but 2 wanted: threshold rises to the 2nd smallest, 0.8
        (2, (-math.log(0.6) - math.log(0.8)) / 2),
        # the 1st smallest (0.6) is below 0.7: threshold stays 0.7
        (1, -math.log(0.6)),
        (0, -math.log(0.6)),
        # fewer valid pixels (4) than min_kept: every pixel is kept
        (5, sum(-math.log(p) for p in TRUE_PROBS) / 4),
    ],
)
def test_ohem_hand_computed(min_kept: int, expected: float) -> None:
    logits, labels = _ohem_case()
    loss = ohem_cross_entropy(logits, labels, thresh=0.7, min_kept=min_kept)
    assert loss.item() == pytest.approx(expected)


def test_ohem_ignores_ignored_pixels_and_gradient_only_on_kept() -> None:
    logits, labels = _ohem_case()
    labels[0, 0, 1] = 255  # the 0.6 pixel
    loss = ohem_cross_entropy(logits, labels, thresh=0.7, min_kept=1)
    # valid 0.9, 0.8, 0.95: smallest 0.8 > 0.7 -> threshold 0.8 -> only the 0.8 pixel
    assert loss.item() == pytest.approx(-math.log(0.8))
    loss.backward()
    grad = logits.grad.abs().sum(dim=1).flatten()
    assert grad[2] > 0 and grad[[0, 1, 3]].eq(0).all()


def test_ohem_nothing_kept_and_bad_input() -> None:
    logits, labels = _ohem_case()
    loss = ohem_cross_entropy(logits, labels, thresh=0.5, min_kept=0)
    assert loss.item() == 0.0 and loss.requires_grad
    with pytest.raises(ValueError, match="labels must have shape"):
        ohem_cross_entropy(logits, labels[:, :1])
    with pytest.raises(ValueError, match="thresh"):
        ohem_cross_entropy(logits, labels, thresh=1.5)


# ---------------------------------------------------------------- memory queues


def _keys(*values: float) -> torch.Tensor:
    return torch.tensor([[v, -v] for v in values])


def test_queue_fifo_grows_then_overwrites_oldest() -> None:
    queues = ClassMemoryQueues(num_classes=2, dim=2, sizes=3)
    assert queues.length(0) == 0
    assert queues.enqueue(0, _keys(1, 2)) == 2
    assert queues.entries(0)[:, 0].tolist() == [1, 2]
    queues.enqueue(0, _keys(3, 4))  # 4 > 3: the oldest (1) falls out
    assert queues.entries(0)[:, 0].tolist() == [2, 3, 4]
    queues.enqueue(0, _keys(5))
    assert queues.entries(0)[:, 0].tolist() == [3, 4, 5]
    queues.enqueue(0, _keys(6, 7, 8, 9, 10))  # more than the capacity: only the newest 3
    assert queues.entries(0)[:, 0].tolist() == [8, 9, 10]
    assert queues.length(1) == 0  # other classes untouched
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        queues.enqueue(1, torch.zeros(2, 3))
    with pytest.raises(ValueError, match="empty"):
        queues.sample(1, 4)


def test_queue_sizes_per_class_and_sampling() -> None:
    assert u2pl_queue_sizes(3) == [50_000, 30_000, 30_000]
    queues = ClassMemoryQueues(num_classes=2, dim=2, sizes=[1, 4])
    queues.enqueue(0, _keys(1, 2))
    queues.enqueue(1, _keys(1, 2))
    assert queues.entries(0)[:, 0].tolist() == [2] and queues.length(1) == 2
    sample = queues.sample(1, 50, generator=torch.Generator().manual_seed(0))
    assert sample.shape == (50, 2) and set(sample[:, 0].tolist()) == {1.0, 2.0}


def test_queue_state_dict_round_trip_and_resume() -> None:
    queues = ClassMemoryQueues(num_classes=2, dim=2, sizes=3)
    queues.enqueue(0, _keys(1, 2, 3, 4))  # full, wrapped
    queues.enqueue(1, _keys(7))
    restored = ClassMemoryQueues(num_classes=2, dim=2, sizes=3)
    restored.load_state_dict(queues.state_dict())
    for c in range(2):
        torch.testing.assert_close(restored.entries(c), queues.entries(c))
    queues.enqueue(0, _keys(5))
    restored.enqueue(0, _keys(5))
    assert restored.entries(0)[:, 0].tolist() == queues.entries(0)[:, 0].tolist() == [3, 4, 5]
    too_big = ClassMemoryQueues(num_classes=2, dim=2, sizes=2)
    with pytest.raises(ValueError, match="queue_0"):
        too_big.load_state_dict(queues.state_dict())


# ---------------------------------------------------------------- masks


def test_entropy_percent_and_reliability_masks() -> None:
    assert u2pl_entropy_percent(0.0) == 20.0 and u2pl_entropy_percent(30, 40) == pytest.approx(5.0)
    p0 = torch.tensor([1.0, 0.9, 0.8, 0.7, 0.5, 0.5])  # entropy increases along the row
    probs = torch.stack([p0, 1 - p0]).view(1, 2, 1, 6)
    valid = torch.tensor([[[True] * 5 + [False]]])  # the last pixel is padding
    reliable, unreliable = entropy_reliability_masks(probs, valid, alpha_percent=20.0)
    # 5 valid entropies H0 < … < H4: 20th pct = H0 + 0.8(H1 − H0) -> only pixel 0 is ≤;
    # 80th pct = H3 + 0.2(H4 − H3) -> only pixel 4 is ≥ (the padded 0.5 pixel is not)
    assert reliable[0, 0].tolist() == [True, False, False, False, False, False]
    assert unreliable[0, 0].tolist() == [False, False, False, False, True, False]
    ent = pixel_entropy(probs)[0, 0]
    assert ent[4].item() == pytest.approx(math.log(2.0))
    assert ent[0].item() == pytest.approx(0.0, abs=1e-8)


def test_negative_candidates_rank_window_and_labeled_confusions() -> None:
    probs = torch.tensor([
        [[0.5, 0.5], [0.3, 0.3], [0.15, 0.15], [0.05, 0.05]],  # unlabeled image, 2 pixels
        [[0.1, 0.7], [0.6, 0.1], [0.25, 0.1], [0.05, 0.1]],  # labeled image
    ]).unsqueeze(2)  # (2, 4, 1, 2)
    assert class_ranks(probs)[0, :, 0, 0].tolist() == [0, 1, 2, 3]
    labels = torch.tensor([[[0, 0]], [[2, 255]]])
    unreliable = torch.tensor([[[True, False]], [[False, False]]])
    is_labeled = torch.tensor([False, True])
    neg = negative_candidates(probs, labels, unreliable, is_labeled, low_rank=1, high_rank=3)
    # unlabeled, unreliable pixel: classes ranked 1 and 2 (classes 1, 2); reliable pixel: none
    assert neg[0, :, 0, 0].tolist() == [False, True, True, False]
    assert not neg[0, :, 0, 1].any()
    # labeled pixel with GT 2: top-1 is class 1 ≠ GT -> negative for class 1 only;
    # the ignored pixel gives nothing
    assert neg[1, :, 0, 0].tolist() == [False, True, False, False]
    assert not neg[1, :, 0, 1].any()
    neg2 = negative_candidates(probs, labels, unreliable, is_labeled, low_rank=2, high_rank=3)
    # top-2 of the labeled pixel = classes 1 and 2; class 2 is the GT -> still class 1 only
    assert neg2[1, :, 0, 0].tolist() == [False, True, False, False]
    assert neg2[0, :, 0, 0].tolist() == [False, False, True, False]


# ---------------------------------------------------------------- contrastive loss

E0, E1 = [1.0, 0.0], [0.0, 1.0]
NUM_NEG = 5


def _contrastive_case(swap_student: bool) -> dict:
    """Image 0 labeled (GT 0 | 1), image 1 unlabeled (pseudo 0 | 1, both unreliable); 2 classes.

    Teacher representations: e0 at class-0 pixels, e1 at class-1 pixels. With the rank window
    [1, 2) each unlabeled pixel is a negative for the *other* class: queue 0 gets e1, queue 1 e0.
    """
    teacher = torch.tensor([[E0, E1], [E0, E1]]).permute(0, 2, 1).unsqueeze(2)  # (2, 2, 1, 2)
    student = teacher.flip(1) if swap_student else teacher.clone()
    probs = torch.tensor([[[0.8, 0.3]], [[0.6, 0.4]]])  # class-0 probability per pixel
    return {
        "student_rep": student.requires_grad_(True),
        "teacher_rep": teacher,
        "teacher_probs": torch.stack([probs, 1 - probs], dim=1),  # (2, 2, 1, 2)
        "labels": torch.tensor([[[0, 1]], [[0, 1]]]),
        "reliable": torch.tensor([[[True, True]], [[False, False]]]),
        "unreliable": torch.tensor([[[False, False]], [[True, True]]]),
        "is_labeled": torch.tensor([True, False]),
        "queues": ClassMemoryQueues(num_classes=2, dim=2, sizes=10),
        "num_queries": 4,
        "num_negatives": NUM_NEG,
        "low_rank": 1,
        "high_rank": 2,
        "temperature": 0.5,
        "generator": torch.Generator().manual_seed(0),
    }


def test_contrastive_loss_low_when_anchor_matches_positive() -> None:
    case = _contrastive_case(swap_student=False)
    loss, stats = u2pl_contrastive_loss(**case)
    # cos(anchor, positive) = 1, cos(anchor, each of 5 negatives) = 0, τ = 0.5:
    # −log(e² / (e² + 5)) = log(1 + 5e⁻²) for both classes
    assert loss.item() == pytest.approx(math.log(1 + NUM_NEG * math.exp(-2.0)), rel=1e-5)
    assert stats == {"classes": 2, "new_keys": 2}
    # the unlabeled pixels were enqueued as negatives of the other class
    assert case["queues"].entries(0).tolist() == [E1]
    assert case["queues"].entries(1).tolist() == [E0]


def test_contrastive_loss_high_when_anchor_matches_negatives() -> None:
    case = _contrastive_case(swap_student=True)
    loss, _ = u2pl_contrastive_loss(**case)
    # cos(anchor, positive) = 0, cos(anchor, negatives) = 1: log(1 + 5e²)
    assert loss.item() == pytest.approx(math.log(1 + NUM_NEG * math.exp(2.0)), rel=1e-5)
    loss.backward()
    assert case["student_rep"].grad is not None
    assert case["student_rep"].grad[0].abs().sum() > 0  # labeled anchors get gradient
    assert case["student_rep"].grad[1].abs().sum() == 0  # unlabeled pixels are not anchors here


def test_contrastive_class_without_anchor_counts_as_zero() -> None:
    case = _contrastive_case(swap_student=False)
    case["anchor_prob_thresh"] = 0.75  # class 1's only anchor has p1 = 0.7
    loss, stats = u2pl_contrastive_loss(**case)
    assert stats["classes"] == 2
    assert loss.item() == pytest.approx(math.log(1 + NUM_NEG * math.exp(-2.0)) / 2, rel=1e-5)


def test_contrastive_single_class_gives_attached_zero() -> None:
    case = _contrastive_case(swap_student=False)
    case["reliable"] = torch.tensor([[[True, False]], [[False, False]]])  # only class 0
    loss, stats = u2pl_contrastive_loss(**case)
    assert loss.item() == 0.0 and loss.requires_grad and stats["classes"] == 1


def test_contrastive_rejects_mismatched_queues() -> None:
    case = _contrastive_case(swap_student=False)
    case["queues"] = ClassMemoryQueues(num_classes=3, dim=2)
    with pytest.raises(ValueError, match="queues hold 3 classes"):
        u2pl_contrastive_loss(**case)
