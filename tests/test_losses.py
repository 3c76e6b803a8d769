"""Losses checked against hand-computed values."""

from __future__ import annotations

import math

import torch

from leseg.components.losses import cross_entropy, normalized_focal_loss


def _logits_for(p_fg: list[float]) -> torch.Tensor:
    """(1, 2, 1, n) logits whose softmax gives foreground probabilities ``p_fg``."""
    p = torch.tensor(p_fg, dtype=torch.float64)
    return torch.stack([torch.zeros_like(p), torch.log(p / (1 - p))])[None, :, None, :]


def test_normalized_focal_loss_by_hand() -> None:
    """Pixels with p_t = 0.9, 0.5 and an ignored one: β = 0.01, 0.25;
    L = 0.5 · (0.01·(−ln 0.9) + 0.25·(−ln 0.5)) / 0.26."""
    logits = _logits_for([0.9, 0.5, 0.3])
    labels = torch.tensor([[[1, 0, 255]]])
    expected = 0.5 * (0.01 * -math.log(0.9) + 0.25 * -math.log(0.5)) / 0.26
    got = normalized_focal_loss(logits, labels)
    assert abs(got.item() - expected) < 1e-6
    # gamma = 0: the weights are all 1 and the loss is alpha x plain CE over the valid pixels
    ce = cross_entropy(logits, labels)
    assert abs(normalized_focal_loss(logits, labels, gamma=0.0).item() - 0.5 * ce.item()) < 1e-6


def test_normalized_focal_loss_keeps_a_small_object_weighted() -> None:
    """99 easy background pixels (p_t 0.99) and one missed object pixel (p_t 0.1): CE spreads its
    weight over all 100 pixels, the NFL puts ≈ all of it on the missed pixel."""
    p_fg = [0.01] * 99 + [0.1]
    labels = torch.tensor([[[0] * 99 + [1]]])
    logits = _logits_for(p_fg).requires_grad_(True)
    normalized_focal_loss(logits, labels).backward()
    g_nfl = logits.grad[0, 1, 0].abs()
    logits.grad = None
    cross_entropy(logits, labels).backward()
    g_ce = logits.grad[0, 1, 0].abs()
    share = lambda g: (g[-1] / g.sum()).item()  # noqa: E731
    assert share(g_ce) < 0.5 < 0.99 < share(g_nfl)


def test_normalized_focal_loss_of_an_all_ignored_batch_is_zero_and_attached() -> None:
    logits = torch.zeros(2, 2, 3, 3, requires_grad=True)
    loss = normalized_focal_loss(logits, torch.full((2, 3, 3), 255))
    assert loss.item() == 0.0 and loss.requires_grad
