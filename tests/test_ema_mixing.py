"""EMA teacher updates and mixing masks against hand-computed cases."""

from __future__ import annotations

import copy

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from leseg.callbacks.ema import EMATeacher
from leseg.components.ema import cosine_tau, ema_update, u2pl_alpha, warmup_average_alpha
from leseg.components.mixing import apply_mix, classmix_masks, cutmix_masks, partner_indices


def test_alpha_schedules_end_points() -> None:
    assert warmup_average_alpha(1, 0.99) == 0.5
    assert warmup_average_alpha(3, 0.99) == 0.75
    assert warmup_average_alpha(1000, 0.99) == 0.99
    assert cosine_tau(0, 100, 0.996) == pytest.approx(0.996)
    assert cosine_tau(100, 100, 0.996) == pytest.approx(1.0)
    assert cosine_tau(50, 100, 0.996) == pytest.approx(0.998)


def test_ema_update_formula_and_buffers() -> None:
    student, teacher = nn.BatchNorm1d(1), nn.BatchNorm1d(1)
    with torch.no_grad():
        student.weight.fill_(2.0)
        teacher.weight.fill_(0.0)
        student.running_mean.fill_(5.0)
    ema_update(teacher, student, alpha=0.75)
    assert teacher.weight.item() == pytest.approx(0.5)  # 0.75·0 + 0.25·2
    assert teacher.running_mean.item() == 0.0  # buffers untouched by default
    ema_update(teacher, student, alpha=0.75, copy_buffers=True)
    assert teacher.weight.item() == pytest.approx(0.875) and teacher.running_mean.item() == 5.0


class _Tiny(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(1, 1, bias=False)
        self.teacher = copy.deepcopy(self.net).requires_grad_(False)
        self.student_history: list[float] = []

    def training_step(self, batch, idx):
        loss = (self.net(batch[0]) - 1.0).pow(2).mean()
        return loss

    def on_train_batch_end(self, outputs, batch, idx) -> None:
        self.student_history.append(self.net.weight.item())

    def configure_optimizers(self):
        return torch.optim.SGD(self.net.parameters(), lr=0.1)


@pytest.mark.parametrize("accumulate", [1, 2])
def test_callback_matches_hand_rolled_average_after_k_steps(accumulate: int) -> None:
    torch.manual_seed(0)
    module = _Tiny()
    t0 = module.teacher.weight.item()
    ema = EMATeacher(alpha=0.99)
    loader = DataLoader(TensorDataset(torch.ones(8, 1)), batch_size=1)
    # Callbacks run before the module's own hook, so record the student per optimizer step here.
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        accumulate_grad_batches=accumulate, callbacks=[ema])
    trainer.fit(module, loader)
    # student weights after each optimizer step (one every `accumulate` batches)
    steps = module.student_history[accumulate - 1::accumulate]
    assert trainer.global_step == len(steps) == 8 // accumulate
    expected = t0
    for k, w in enumerate(steps, start=1):
        a = min(1 - 1 / (k + 1), 0.99)
        expected = a * expected + (1 - a) * w
    assert module.teacher.weight.item() == pytest.approx(expected, rel=1e-6)


def test_u2pl_alpha_holds_the_student_then_averages() -> None:
    # U2PL / S4MC train_semi.py: t = s for the first semi-supervised epoch (here 3 steps), then
    # min(1 - 1/k, 0.99) with k counted from the end of the warm-up
    assert [u2pl_alpha(k, 3) for k in (1, 2, 3)] == [0.0, 0.0, 0.0]
    assert u2pl_alpha(4, 3) == pytest.approx(0.75)
    assert u2pl_alpha(100, 3) == pytest.approx(0.99) and u2pl_alpha(5000, 3) == 0.99
    assert u2pl_alpha(1, 0) == 0.0  # no hold: the reference's first step is a copy as well
    with pytest.raises(ValueError, match="step >= 1"):
        u2pl_alpha(0, 3)


@pytest.mark.parametrize("warmup", [0, 2])
def test_callback_u2pl_schedule_by_hand(warmup: int) -> None:
    torch.manual_seed(0)
    module = _Tiny()
    t0 = module.teacher.weight.item()
    ema = EMATeacher(alpha=0.99, schedule="u2pl", hold_steps=3, warmup_steps=warmup)
    loader = DataLoader(TensorDataset(torch.ones(9, 1)), batch_size=1)
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[ema])
    trainer.fit(module, loader)
    expected = t0
    for step, w in enumerate(module.student_history, start=1):
        k = step - warmup
        if k < 0:
            continue  # warm-up: the teacher is left alone
        a = 0.0 if k <= 3 else min(1 - 1 / k, 0.99)  # k = 0: the reset copies the student
        expected = a * expected + (1 - a) * w
        if k == 3:
            assert expected == w  # the held teacher is the student
    assert module.teacher.weight.item() == pytest.approx(expected, rel=1e-6)
    assert ema.last_alpha == pytest.approx(min(1 - 1 / (9 - warmup), 0.99))
    with pytest.raises(ValueError, match="hold_steps must be >= 0"):
        EMATeacher(schedule="u2pl", hold_steps=-1)


def test_partners_never_self_and_batch_of_one_is_an_error() -> None:
    g = torch.Generator().manual_seed(0)
    for b in (2, 3, 7):
        for _ in range(50):
            p = partner_indices(b, generator=g)
            assert (p != torch.arange(b)).all() and ((p >= 0) & (p < b)).all()
    with pytest.raises(ValueError, match="at least 2 images"):
        partner_indices(1)


def test_cutmix_box_is_half_the_image_and_rectangular() -> None:
    masks = cutmix_masks(16, 32, 48, area_ratio=0.5, generator=torch.Generator().manual_seed(1))
    for m in masks:
        area = m.sum().item()
        assert abs(area - 0.5 * 32 * 48) <= 48  # to the nearest pixel row/column
        ys, xs = m.nonzero(as_tuple=True)
        box = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
        assert box.item() == area  # filled rectangle
        # the sides span the reference's ranges (U2PL generate_cutout_mask): h in [H/2, H], w in [W/2, W]
        assert 16 <= ys.max() - ys.min() + 1 <= 32 and 24 <= xs.max() - xs.min() + 1 <= 48


def test_apply_mix_moves_all_targets_alike_and_classmix_takes_half_the_classes() -> None:
    labels = torch.tensor([[[0, 0], [1, 1]], [[2, 3], [255, 3]]])
    images = labels.float().unsqueeze(1).repeat(1, 3, 1, 1)
    partner = torch.tensor([1, 0])
    masks = classmix_masks(labels, partner, generator=torch.Generator().manual_seed(0))
    # image 0 takes 1 of the partner's 2 classes {2, 3}; image 1 takes 1 of {0, 1}
    assert masks[0].sum() in (1, 2) and masks[1].sum() == 2
    mixed_img, mixed_lbl = apply_mix(masks, partner, images, labels)
    assert torch.equal(mixed_img[:, 0].long(), mixed_lbl)  # the same pixels moved in both
    assert torch.equal(mixed_lbl[0][masks[0]], labels[1][masks[0]])
    assert torch.equal(mixed_lbl[0][~masks[0]], labels[0][~masks[0]])
    with pytest.raises(ValueError, match="does not match mask"):
        apply_mix(masks, partner, torch.zeros(2, 3, 3))
