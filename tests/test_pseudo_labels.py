"""S4MC pseudo-label building blocks against hand-computed cases on tiny maps.

The running example is one 2-class 3×3 map (class-1 probability = 1 − class-0 probability):

    p0 = 0.9 0.8 0.1        p1 = 0.1 0.2 0.9
         0.6 0.5 0.2             0.4 0.5 0.8
         0.3 0.4 0.7             0.7 0.6 0.3

with the prior E = (0.9, 0.5) and β = exp(−1/2).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from leseg.components.pseudo_labels import (
    DEFAULT_BETA,
    dpa_drop_percent,
    dpa_threshold,
    dpa_threshold_per_class,
    margin,
    neighbour_max,
    neighbour_prior,
    neighbour_topk,
    percentile,
    refine_probs,
    rescaled_unsup_ce,
    s4mc_pseudo_labels,
)

P0 = [[0.9, 0.8, 0.1], [0.6, 0.5, 0.2], [0.3, 0.4, 0.7]]
PRIOR = (0.9, 0.5)
B = DEFAULT_BETA


def _probs() -> torch.Tensor:
    p0 = torch.tensor(P0, dtype=torch.float64)
    return torch.stack([p0, 1.0 - p0]).unsqueeze(0)  # (1, 2, 3, 3)


# ---------------------------------------------------------------- neighbourhood maximum


def test_neighbour_max_4_connectivity_hand_grid() -> None:
    q = neighbour_max(_probs(), connectivity=4)
    # class 0: e.g. centre = max(0.8 up, 0.4 down, 0.6 left, 0.2 right) = 0.8,
    # corner (0,0) = max(0.8 right, 0.6 down); the pixel itself (0.9) is excluded
    expected0 = [[0.8, 0.9, 0.8], [0.9, 0.8, 0.7], [0.6, 0.7, 0.4]]
    # class 1 takes its maxima from other neighbours: centre = 0.8 from the right pixel
    expected1 = [[0.4, 0.9, 0.8], [0.7, 0.8, 0.9], [0.6, 0.7, 0.8]]
    torch.testing.assert_close(q[0, 0], torch.tensor(expected0, dtype=torch.float64))
    torch.testing.assert_close(q[0, 1], torch.tensor(expected1, dtype=torch.float64))


def test_neighbour_max_8_connectivity_adds_diagonals() -> None:
    q = neighbour_max(_probs(), connectivity=8)[0, 0]
    assert q[1, 1].item() == pytest.approx(0.9)  # diagonal (0,0); 4-conn gives 0.8
    assert q[2, 2].item() == pytest.approx(0.5)  # diagonal (1,1); 4-conn gives 0.4
    assert q[0, 0].item() == pytest.approx(0.8)  # (0,1) still the best of 3 neighbours


def test_neighbour_topk_orders_neighbours_and_pads_with_zero() -> None:
    top = neighbour_topk(_probs(), k=3, connectivity=4)
    assert top.shape == (3, 1, 2, 3, 3)
    # centre class 0: neighbours 0.8, 0.4, 0.6, 0.2 -> 0.8, 0.6, 0.4
    assert top[:, 0, 0, 1, 1].tolist() == pytest.approx([0.8, 0.6, 0.4])
    # corner (0,0) has two neighbours; the third value is the zero padding
    assert top[:, 0, 0, 0, 0].tolist() == pytest.approx([0.8, 0.6, 0.0])
    torch.testing.assert_close(top[0], neighbour_max(_probs()))


def test_neighbour_functions_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="connectivity must be 4 or 8"):
        neighbour_max(_probs(), connectivity=6)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        neighbour_max(_probs()[0])
    with pytest.raises(ValueError, match="k must be in"):
        neighbour_topk(_probs(), k=5, connectivity=4)


# ---------------------------------------------------------------- refinement


def test_refine_probs_hand_computed_pixels() -> None:
    refined = refine_probs(_probs(), PRIOR)
    # centre: p0 = 0.5, q0 = 0.8, J0 = max(0.5·0.8, 0.5·0.9) = 0.45 -> 0.5 + β·0.35
    #         p1 = 0.5, q1 = 0.8, J1 = max(0.5·0.8, 0.5·0.5) = 0.40 -> 0.5 + β·0.40
    assert refined[0, 0, 1, 1].item() == pytest.approx(0.5 + B * 0.35)
    assert refined[0, 1, 1, 1].item() == pytest.approx(0.5 + B * 0.40)
    # corner (0,0): p0 = 0.9, q0 = 0.8, J0 = max(0.72, 0.81) = 0.81 -> 0.9 − β·0.01 (lowered)
    #               p1 = 0.1, q1 = 0.4, J1 = max(0.04, 0.05) = 0.05 -> 0.1 + β·0.35
    assert refined[0, 0, 0, 0].item() == pytest.approx(0.9 - B * 0.01)
    assert refined[0, 1, 0, 0].item() == pytest.approx(0.1 + B * 0.35)
    # corner (0,2): p0 = 0.1, q0 = 0.8, J0 = max(0.08, 0.09) -> 0.1 + β·0.71
    #               p1 = 0.9, q1 = 0.8, J1 = max(0.72, 0.45) -> 0.9 + β·0.08
    assert refined[0, 0, 0, 2].item() == pytest.approx(0.1 + B * 0.71)
    assert refined[0, 1, 0, 2].item() == pytest.approx(0.9 + B * 0.08)


def test_refinement_lowers_a_score_when_neighbours_are_less_likely_than_the_prior() -> None:
    # "dog vs cat": p = 0.5 for class 0, its neighbours only 0.3, prior 0.9
    p0 = torch.tensor([[0.3, 0.5, 0.3]], dtype=torch.float64)
    probs = torch.stack([p0, 1.0 - p0]).unsqueeze(0)  # (1, 2, 1, 3)
    refined = refine_probs(probs, (0.9, 0.9))
    # q = 0.3, J = max(0.15, 0.45) = 0.45 -> 0.5 + β(0.3 − 0.45) < 0.5
    assert refined[0, 0, 0, 1].item() == pytest.approx(0.5 - B * 0.15)
    assert refined[0, 0, 0, 1].item() < 0.5


def test_refine_probs_two_neighbours_applied_sequentially() -> None:
    refined = refine_probs(_probs(), PRIOR, num_neighbours=2)
    # centre class 0: top-2 neighbours 0.8 then 0.6; the second step uses the updated score
    first = 0.5 + B * (0.8 - max(0.5 * 0.8, 0.5 * 0.9))
    second = first + B * (0.6 - max(first * 0.6, first * 0.9))
    assert refined[0, 0, 1, 1].item() == pytest.approx(second)


def test_refine_probs_rejects_nan_or_misshaped_prior() -> None:
    with pytest.raises(ValueError, match=r"NaN for classes \[1\]"):
        refine_probs(_probs(), (0.9, float("nan")))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        refine_probs(_probs(), (0.9, 0.9, 0.9))


# ---------------------------------------------------------------- margin


def test_margin_is_top1_minus_top2() -> None:
    scores = torch.tensor([0.2, 0.5, 0.3]).view(1, 3, 1, 1)
    assert margin(scores).shape == (1, 1, 1)
    assert margin(scores).item() == pytest.approx(0.2)
    tie = torch.tensor([0.4, 0.4, 0.2]).view(1, 3, 1, 1)
    assert margin(tie).item() == 0.0
    # the running example: margin = |2·p0 − 1|
    expected = [[0.8, 0.6, 0.8], [0.2, 0.0, 0.6], [0.4, 0.2, 0.4]]
    torch.testing.assert_close(margin(_probs())[0], torch.tensor(expected, dtype=torch.float64))
    with pytest.raises(ValueError, match="at least 2 classes"):
        margin(torch.ones(1, 1, 2, 2))


# ---------------------------------------------------------------- DPA


def test_dpa_drop_percent_schedule() -> None:
    assert dpa_drop_percent(0.0) == pytest.approx(40.0)
    assert dpa_drop_percent(0.5) == pytest.approx(20.0)
    assert dpa_drop_percent(1.0) == pytest.approx(0.0)
    assert dpa_drop_percent(10, 80, drop_percent=60) == pytest.approx(35.0)  # per epoch
    assert dpa_drop_percent(0, 200, drop_percent=80) == pytest.approx(20.0)
    with pytest.raises(ValueError, match="progress"):
        dpa_drop_percent(81, 80)
    with pytest.raises(ValueError, match="drop_percent"):
        dpa_drop_percent(0.0, drop_percent=120)


def test_percentile_uses_numpy_linear_convention() -> None:
    values = torch.tensor([0.4, 0.1, 0.8, 0.2])
    # sorted 0.1 0.2 0.4 0.8; q = 40 -> h = 0.4·3 = 1.2 -> 0.2 + 0.2·(0.4 − 0.2) = 0.24
    assert percentile(values, 40).item() == pytest.approx(0.24)
    assert percentile(values, 0).item() == pytest.approx(0.1)
    assert percentile(values, 100).item() == pytest.approx(0.8)
    assert percentile(values, 50).item() == pytest.approx(0.3)
    rng = np.random.default_rng(0)
    data = rng.random(1001)
    for q in (0.0, 3.7, 25.0, 40.0, 99.9):
        assert percentile(torch.from_numpy(data), q).item() == pytest.approx(np.percentile(data, q))
    with pytest.raises(ValueError, match="empty"):
        percentile(torch.zeros(0), 10)


def test_dpa_threshold_ignores_invalid_pixels() -> None:
    margins = torch.tensor([[[0.1, 0.4, 0.0], [0.2, 0.8, 0.9]]])
    valid = torch.tensor([[[True, True, False], [True, True, False]]])
    # valid margins 0.1 0.2 0.4 0.8 -> 40th percentile 0.24; counting the invalid 0.0 and 0.9
    # it would be 0.2 (h = 0.4·5 = 2.0 over six values)
    assert dpa_threshold(margins, valid, 40.0).item() == pytest.approx(0.24)
    with pytest.raises(ValueError, match="empty"):
        dpa_threshold(margins, torch.zeros_like(valid), 40.0)
    with pytest.raises(ValueError, match="same"):
        dpa_threshold(margins, valid[..., :2], 40.0)


# ---------------------------------------------------------------- pseudo-labels


def test_s4mc_pseudo_labels_hand_computed_keep_mask() -> None:
    valid = torch.ones(1, 3, 3, dtype=torch.bool)
    labels, keep, stats = s4mc_pseudo_labels(_probs(), valid, PRIOR, progress=0.5)
    # α = 40·(1 − 0.5) = 20 %. Unrefined margins sorted 0 .2 .2 .4 .4 .6 .6 .8 .8:
    # h = 0.2·8 = 1.6 -> τ = 0.2. Refined margins |p̃0 − p̃1| (p̃ = p + β(q − max(pq, pE))):
    #   0.582 0.273 0.418
    #   0.164 0.030 0.394
    #   0.309 0.164 0.079
    assert stats["drop_percent"] == pytest.approx(20.0)
    assert stats["threshold"].item() == pytest.approx(0.2)
    expected_keep = torch.tensor([[[True, True, True], [False, False, True], [True, False, False]]])
    assert torch.equal(keep, expected_keep)
    assert stats["keep_ratio"].item() == pytest.approx(5 / 9)
    # classes are the argmax of the *unrefined* probabilities
    assert labels.dtype == torch.int64
    assert labels.tolist() == [[[0, 0, 1], [255, 255, 1], [1, 255, 255]]]


def test_s4mc_pseudo_labels_refinement_moves_pixels_across_the_threshold() -> None:
    valid = torch.ones(1, 3, 3, dtype=torch.bool)
    # start of training: α = 40 %, τ = 0.4 (h = 3.2 between two 0.4s). Unrefined, 4 pixels have
    # a margin > 0.4; after refinement only (0,0) 0.582 and (0,2) 0.418 stay above it.
    _, keep, stats = s4mc_pseudo_labels(_probs(), valid, PRIOR, progress=0.0)
    assert stats["threshold"].item() == pytest.approx(0.4)
    assert keep.nonzero()[:, 1:].tolist() == [[0, 0], [0, 2]]


def test_s4mc_pseudo_labels_padded_pixels_never_kept_and_classes_override() -> None:
    valid = torch.ones(1, 3, 3, dtype=torch.bool)
    valid[0, 0, 0] = valid[0, 0, 2] = False  # the two most confident pixels are padding
    classes = torch.full((1, 3, 3), 7, dtype=torch.int64)
    labels, keep, stats = s4mc_pseudo_labels(_probs(), valid, PRIOR, progress=0.5,
                                             classes=classes)
    # valid unrefined margins 0 .2 .2 .4 .4 .6 .6 -> h = 1.2 -> τ = 0.2
    assert stats["threshold"].item() == pytest.approx(0.2)
    assert keep.nonzero()[:, 1:].tolist() == [[0, 1], [1, 2], [2, 0]]
    assert stats["keep_ratio"].item() == pytest.approx(3 / 7)
    assert labels[keep].eq(7).all() and labels[~keep].eq(255).all()


def test_dpa_threshold_per_class_hand_computed() -> None:
    margins = torch.tensor([[[0.1, 0.2, 0.3], [0.9, 0.5, 0.7]]])
    valid = torch.tensor([[[True, True, True], [True, False, True]]])
    classes = torch.tensor([[[0, 0, 0], [1, 1, 1]]])
    # class 0: median of 0.1 0.2 0.3 = 0.2; class 1: median of the valid 0.9 0.7 = 0.8 (the
    # invalid 0.5 is not counted); invalid pixels get +inf, so nothing can keep them
    expected = torch.tensor([[[0.2, 0.2, 0.2], [0.8, math.inf, 0.8]]])
    torch.testing.assert_close(dpa_threshold_per_class(margins, valid, classes, 50.0), expected)
    with pytest.raises(ValueError, match="empty"):
        dpa_threshold_per_class(margins, torch.zeros_like(valid), classes, 50.0)
    with pytest.raises(ValueError, match="same"):
        dpa_threshold_per_class(margins, valid, classes[..., :2], 50.0)


def test_s4mc_pseudo_labels_per_class_partition_hand_computed() -> None:
    valid = torch.ones(1, 3, 3, dtype=torch.bool)
    labels, keep, stats = s4mc_pseudo_labels(_probs(), valid, PRIOR, progress=0.5,
                                             partition="per_class")
    # α = 20 %. Class 0 (argmax; the 0.5/0.5 tie goes to class 0) holds the unrefined margins
    # 0 .2 .4 .6 .8 -> h = 0.8 -> τ_0 = 0.16; class 1 holds .2 .4 .6 .8 -> h = 0.6 -> τ_1 = 0.32.
    # Refined margins (see the global test): class 0 keeps (0,0) .582, (0,1) .273, (1,0) .164;
    # class 1 keeps (0,2) .418, (1,2) .394 but drops (2,0) .309, which the global τ = 0.2 kept
    expected_keep = torch.tensor([[[True, True, True], [True, False, True], [False, False, False]]])
    assert torch.equal(keep, expected_keep)
    assert labels.tolist() == [[[0, 0, 1], [0, 255, 1], [255, 255, 255]]]
    assert stats["threshold"].item() == pytest.approx((5 * 0.16 + 4 * 0.32) / 9)
    assert stats["keep_ratio"].item() == pytest.approx(5 / 9)
    with pytest.raises(ValueError, match="per_class"):
        s4mc_pseudo_labels(_probs(), valid, PRIOR, progress=0.5, partition="classwise")


def test_s4mc_pseudo_labels_per_class_keeps_a_low_margin_class() -> None:
    # one row of 8 pixels: class 0 with margins .90 .92 .94 .96, then a "thin" class 1 with
    # .20 .22 .24 .26. Refined (E = (.5, .5)): .920 .925 .943 .615 | .009 .242 .264 .281.
    p0 = torch.tensor([[0.95, 0.96, 0.97, 0.98, 0.40, 0.39, 0.38, 0.37]], dtype=torch.float64)
    probs = torch.stack([p0, 1.0 - p0]).unsqueeze(0)  # (1, 2, 1, 8)
    valid = torch.ones(1, 1, 8, dtype=torch.bool)
    kwargs = {"prior": (0.5, 0.5), "progress": 0.0, "drop_percent": 50.0}  # α = 50 %
    # global: τ = median of all 8 = (.26 + .90) / 2 = .58 -> every class-1 pixel is dropped
    labels, keep, stats = s4mc_pseudo_labels(probs, valid, **kwargs)
    assert stats["threshold"].item() == pytest.approx(0.58)
    assert labels.tolist() == [[[0, 0, 0, 0, 255, 255, 255, 255]]]
    # per class: τ_0 = .93 keeps only .943; τ_1 = .23 keeps .242 .264 .281 (the border pixel's
    # .009 falls below it): the thin class keeps pseudo-labels
    labels, keep, stats = s4mc_pseudo_labels(probs, valid, partition="per_class", **kwargs)
    assert labels.tolist() == [[[255, 255, 0, 255, 255, 1, 1, 1]]]
    assert stats["threshold"].item() == pytest.approx((4 * 0.93 + 4 * 0.23) / 8)


def test_s4mc_pseudo_labels_without_valid_pixels_keeps_nothing() -> None:
    labels, keep, stats = s4mc_pseudo_labels(_probs(), torch.zeros(1, 3, 3, dtype=torch.bool),
                                             PRIOR, progress=0.0)
    assert not keep.any() and labels.eq(255).all()
    assert math.isnan(stats["threshold"].item()) and stats["keep_ratio"].item() == 0.0


# ---------------------------------------------------------------- rescaled unsupervised CE


def _logits_three_pixels() -> torch.Tensor:
    # pixel 0: equal logits -> CE(class 0) = ln 2; pixel 1: (0, ln 3) -> CE(class 1) = ln(4/3)
    return torch.tensor([[[[0.0, 0.0, 5.0]], [[0.0, math.log(3.0), -5.0]]]], requires_grad=True)


def test_rescaled_unsup_ce_hand_computed() -> None:
    logits = _logits_three_pixels()  # (1, 2, 1, 3)
    labels = torch.tensor([[[0, 1, 255]]])
    mean_kept = (math.log(2.0) + math.log(4.0 / 3.0)) / 2
    # all 3 pixels, 2 kept: (3 / 2) · mean CE  ( = 3 · Σ CE / 2², not Σ CE / 3 )
    loss = rescaled_unsup_ce(logits, labels)
    assert loss.item() == pytest.approx(1.5 * mean_kept)
    # pixel 2 is padding: N_all = 2 valid pixels, nothing dropped -> plain mean
    valid = torch.tensor([[[True, True, False]]])
    assert rescaled_unsup_ce(logits, labels, valid=valid).item() == pytest.approx(mean_kept)
    # a kept label on a padded pixel is not used either
    labels_on_pad = torch.tensor([[[0, 1, 0]]])
    assert rescaled_unsup_ce(logits, labels_on_pad, valid=valid).item() == pytest.approx(mean_kept)
    loss.backward()
    assert logits.grad is not None and logits.grad[..., 2].abs().sum() == 0


def test_rescaled_unsup_ce_zero_and_attached_when_nothing_kept() -> None:
    logits = _logits_three_pixels()
    loss = rescaled_unsup_ce(logits, torch.full((1, 1, 3), 255))
    assert loss.item() == 0.0 and loss.requires_grad
    with pytest.raises(ValueError, match="pseudo_labels must have shape"):
        rescaled_unsup_ce(logits, torch.zeros(1, 2, 3, dtype=torch.int64))


# ---------------------------------------------------------------- dataset prior E


def test_neighbour_prior_hand_counts() -> None:
    labels = torch.tensor([[[0, 0, 1], [0, 1, 255]]])
    prior = neighbour_prior(labels, num_classes=3)
    # class-0 pixels: (0,0) 2 of 2 neighbours are 0; (0,1) 1 of 3; (1,0) 1 of 2 -> 4/7
    # class-1 pixels: (0,2) 0 of 1 labeled neighbour; (1,1) 0 of 2 -> 0/3; class 2 never seen
    assert prior.dtype == torch.float64
    assert prior[0].item() == pytest.approx(4 / 7)
    assert prior[1].item() == 0.0
    assert math.isnan(prior[2].item())
    filled = neighbour_prior(labels, num_classes=3, fallback=0.95)
    assert filled[2].item() == 0.95 and filled[0].item() == pytest.approx(4 / 7)


def test_neighbour_prior_8_connectivity_hand_counts() -> None:
    labels = torch.tensor([[0, 0], [1, 0]])
    prior = neighbour_prior(labels, num_classes=2, connectivity=8)
    # every pixel neighbours the 3 others: class-0 pixels see 2 zeros + the one 1 each -> 6/9;
    # the class-1 pixel sees only zeros -> 0/3
    assert prior.tolist() == pytest.approx([6 / 9, 0.0])


def test_neighbour_prior_streams_batches_of_different_sizes() -> None:
    gen = torch.Generator().manual_seed(0)
    a = torch.randint(0, 3, (2, 5, 6), generator=gen)
    b = torch.randint(0, 3, (4, 3), generator=gen)
    b[0, 0] = 255
    samples = [{"label": a[0], "name": "x"}, {"label": a[1], "name": "y"}, {"label": b}]
    streamed = neighbour_prior(samples, num_classes=3)
    # same counts as the two tensors given separately (pairs never cross images)
    same = torch.zeros(3)
    total = torch.zeros(3)
    for img in [a[0], a[1], b]:
        for y in range(img.shape[0]):
            for x in range(img.shape[1]):
                c = int(img[y, x])
                if c == 255:
                    continue
                for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
                    yy, xx = y + dy, x + dx
                    if 0 <= yy < img.shape[0] and 0 <= xx < img.shape[1] and img[yy, xx] != 255:
                        total[c] += 1
                        same[c] += int(img[yy, xx]) == c
    torch.testing.assert_close(streamed, (same / total).double())


def test_neighbour_prior_rejects_bad_labels() -> None:
    with pytest.raises(ValueError, match="label batch 1 contains value 5"):
        neighbour_prior([torch.zeros(2, 2, dtype=torch.int64), torch.full((2, 2), 5)], 3)
    with pytest.raises(ValueError, match="integer trainIds"):
        neighbour_prior(torch.zeros(2, 2), 3)
    with pytest.raises(ValueError, match="without a 'label' key"):
        neighbour_prior([{"image": torch.zeros(2, 2)}], 3)
    with pytest.raises(ValueError, match="no label batch"):
        neighbour_prior([], 3)


# ------------------------------------------------------------------ pseudo-label audit
@pytest.mark.parametrize("partition", ["global", "per_class"])
def test_pseudo_label_confusion_counts_argmax_and_kept_pixels_by_hand(partition: str) -> None:
    from leseg.components.pseudo_labels import s4mc_pseudo_labels
    from leseg.stages.pseudo_label_audit import pseudo_label_confusion

    # 1 image of 2x3 pixels, 3 classes; argmax row 0: 0 0 1, row 1: 1 2 2
    probs = torch.tensor([[[0.9, 0.6, 0.2], [0.1, 0.2, 0.3]],
                          [[0.05, 0.3, 0.7], [0.8, 0.3, 0.3]],
                          [[0.05, 0.1, 0.1], [0.1, 0.5, 0.4]]])[None]
    target = torch.tensor([[[0, 1, 1], [255, 2, 0]]])
    prior = torch.tensor([0.5, 0.5, 0.5])
    argmax, kept = pseudo_label_confusion(probs, target, prior, [0.0, 1.0], partition=partition)
    expected = np.zeros((3, 3), np.int64)
    expected[0, 0] = 1  # (0,0): gt 0, argmax 0
    expected[1, 0] = 1  # (0,1): gt 1, argmax 0
    expected[1, 1] = 1  # (0,2): gt 1, argmax 1
    expected[2, 2] = 1  # (1,1): gt 2, argmax 2;  (1,0) is ignored
    expected[0, 2] = 1  # (1,2): gt 0, argmax 2
    assert np.array_equal(argmax, expected)
    for progress, counts in kept.items():
        labels, _, _ = s4mc_pseudo_labels(probs, torch.ones(1, 2, 3, dtype=torch.bool), prior,
                                          progress, classes=probs.argmax(1),
                                          partition=partition)
        by_hand = np.zeros((3, 3), np.int64)
        for y in range(2):
            for x in range(3):
                if target[0, y, x] != 255 and labels[0, y, x] != 255:
                    by_hand[target[0, y, x], labels[0, y, x]] += 1
        assert np.array_equal(counts, by_hand)
        assert counts.sum() <= argmax.sum()
    assert kept[1.0].sum() >= kept[0.0].sum()  # DPA keeps more pixels late in training
    with pytest.raises(ValueError, match="does not match"):
        pseudo_label_confusion(probs, target[:, :1], prior, [0.0])


def test_audit_table_recall_and_precision_by_hand() -> None:
    from leseg.stages.pseudo_label_audit import audit_table

    argmax = np.array([[10, 2, 0], [4, 4, 0], [0, 0, 0]])  # 20 pixels; class 2 absent: left out
    kept = {0.5: np.array([[6, 0, 0], [3, 1, 0], [0, 0, 0]])}
    table, summary = audit_table(argmax, kept, ["road", "sign", "sky"])
    road, sign = summary["classes"]["road"], summary["classes"]["sign"]
    assert road["gt_share"] == pytest.approx(60.0) and road["argmax_share"] == pytest.approx(70.0)
    assert road["argmax_iou"] == pytest.approx(100 * 10 / 16)
    assert road["kept@0.5"] == pytest.approx(50.0) and road["recall@0.5"] == pytest.approx(50.0)
    assert road["precision@0.5"] == pytest.approx(100 * 6 / 9)
    assert sign["kept@0.5"] == pytest.approx(50.0) and sign["recall@0.5"] == pytest.approx(12.5)
    assert sign["precision@0.5"] == pytest.approx(100.0)
    assert summary["kept@0.5"] == pytest.approx(50.0) and summary["accuracy@0.5"] == pytest.approx(70.0)
    assert "sky" not in summary["classes"] and "| sign | 40.0 | 30.0 |" in table
