"""S4MC LightningModule: padding never reaches a loss, CutMix partners, teacher evaluation, prior,
warm-up + EMA wiring, and a few iterations end to end on synthetic and real frames."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from torch import nn

import leseg.methods.s4mc as s4mc_module
from leseg.callbacks.ema import EMATeacher
from leseg.data.splits import make_splits
from leseg.methods.s4mc import S4MC
from leseg.tasks.eval import evaluate
from leseg.tasks.train import train

from conftest import compose_cfg, sample_data

K = 3


def _pixel_net(seed: int = 0) -> nn.Module:
    """A 1x1 convolution: the logits of a pixel depend on that pixel alone."""
    torch.manual_seed(seed)
    return nn.Conv2d(3, K, kernel_size=1)


def _module(**kwargs) -> S4MC:
    args = {"net": _pixel_net(), "num_classes": K, "prior": [0.9, 0.8, 0.95], "mix_prob": 1.0}
    module = S4MC(**{**args, **kwargs})
    with torch.no_grad():  # a teacher that disagrees with the student
        module.teacher.weight.mul_(-0.5).add_(0.3)
    return module


def _batch(seed: int = 1) -> tuple[dict, dict]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, K, (2, 6, 6), generator=g)
    labels[:, :, 4:] = 255  # labeled padding
    valid = torch.ones(2, 6, 6, dtype=torch.bool)
    valid[0, :, 4:] = False  # right pad
    valid[1, :2, :] = False  # top pad
    labeled = {"image": torch.randn(2, 3, 6, 6, generator=g), "label": labels}
    unlabeled = {"image": torch.randn(2, 3, 6, 6, generator=g), "valid": valid}
    return labeled, unlabeled


def _losses(module: S4MC, labeled: dict, unlabeled: dict, progress: float = 0.25) -> dict:
    torch.manual_seed(123)
    random.seed(123)
    return module.compute_losses(labeled, unlabeled, progress)


def test_padded_pixels_never_reach_a_loss() -> None:
    module = _module()
    labeled, unlabeled = _batch()
    ref = _losses(module, labeled, unlabeled)
    assert ref["mix"]["mixed"] and ref["loss_unsup"] > 0 and 0 < ref["keep_ratio"] < 1

    # change every padded pixel (labeled: label 255; unlabeled: valid False): same losses
    noisy_l = {**labeled, "image": labeled["image"].clone()}
    noisy_l["image"][:, :, :, 4:] = 50 * torch.randn(2, 3, 6, 2)
    noisy_u = {**unlabeled, "image": unlabeled["image"].clone()}
    pad = ~unlabeled["valid"]
    noisy_u["image"] = torch.where(pad.unsqueeze(1), 50 * torch.randn(2, 3, 6, 6),
                                   unlabeled["image"])
    out = _losses(module, noisy_l, noisy_u)
    for key in ("loss", "loss_sup", "loss_unsup", "keep_ratio", "threshold"):
        assert torch.equal(out[key], ref[key]), key
    assert torch.equal(out["pseudo_labels"], ref["pseudo_labels"])

    # ... while a change at a valid unlabeled pixel does change the unsupervised loss
    moved = {**unlabeled, "image": unlabeled["image"].clone()}
    moved["image"][0, :, 3, 1] += 5.0
    assert not torch.equal(_losses(module, labeled, moved)["loss_unsup"], ref["loss_unsup"])


@pytest.mark.parametrize("partition", ["global", "per_class"])
def test_unsupervised_loss_ignores_student_and_teacher_values_at_padding(partition: str) -> None:
    module = _module(dpa_partition=partition)
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, K, 5, 5, generator=g)
    probs = torch.randn(2, K, 5, 5, generator=g).softmax(1)
    classes = probs.argmax(1)
    valid = torch.rand(2, 5, 5, generator=g) > 0.3
    loss, stats = module.unsupervised_loss(logits, probs, classes, valid, progress=0.0)
    pad = (~valid).unsqueeze(1)
    loss2, stats2 = module.unsupervised_loss(
        torch.where(pad, torch.randn(2, K, 5, 5, generator=g) * 9, logits),
        torch.where(pad, torch.rand(2, K, 5, 5, generator=g), probs),
        torch.where(~valid, torch.zeros_like(classes), classes), valid, progress=0.0)
    assert torch.equal(loss, loss2) and torch.equal(stats["labels"], stats2["labels"])
    assert (stats["labels"][~valid] == 255).all()
    # at the start DPA drops (100 - 60) % of the unrefined margins: the threshold is that percentile
    assert stats["drop_percent"] == pytest.approx(40.0)


def test_cutmix_draws_partners_with_partner_indices(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    original = s4mc_module.partner_indices

    def spy(batch_size, generator=None, device=None):
        partner = original(batch_size, generator, device)
        calls.append(partner)
        return partner

    monkeypatch.setattr(s4mc_module, "partner_indices", spy)
    module = _module()
    images = torch.arange(1.0, 5.0).view(4, 1, 1, 1).expand(4, 3, 8, 8).clone()
    classes = torch.arange(4).view(4, 1, 1).expand(4, 8, 8).clone()
    valid = torch.ones(4, 8, 8, dtype=torch.bool)
    valid[2] = False
    probs = torch.rand(4, K, 8, 8)
    for _ in range(5):
        (mixed, mcls, mvalid, mprobs), info = module.strong_augment(images, classes, valid, probs)
        partner, mask = info["partner"], info["mask"]
        assert torch.equal(partner, calls[-1]) and (partner != torch.arange(4)).all()
        # CutMix box of half the 8x8 image (to whole pixels: e.g. 5x6 = 30)
        assert ((mask.sum(dim=(1, 2)) - 32).abs() <= 4).all()
        for i in range(4):
            j = int(partner[i])
            assert (mixed[i][:, mask[i]] == j + 1).all() and (mixed[i][:, ~mask[i]] == i + 1).all()
            assert (mcls[i][mask[i]] == j).all() and (mcls[i][~mask[i]] == i).all()
            assert torch.equal(mvalid[i], torch.where(mask[i], valid[j], valid[i]))
            assert torch.equal(mprobs[i], torch.where(mask[i], probs[j], probs[i]))
    assert len(calls) == 5


def test_one_unlabeled_image_is_a_clear_error_even_when_the_coin_says_no_mix() -> None:
    module = _module(mix_prob=0.5)
    images, valid = torch.zeros(1, 3, 4, 4), torch.ones(1, 4, 4, dtype=torch.bool)
    with pytest.raises(ValueError, match="at least 2 unlabeled images.*data.unlabeled_batch_size"):
        module.strong_augment(images, torch.zeros(1, 4, 4, dtype=torch.long), valid,
                              torch.rand(1, K, 4, 4))
    _module(mix="none").strong_augment(images, torch.zeros(1, 4, 4, dtype=torch.long), valid,
                                       torch.rand(1, K, 4, 4))  # no mixing: one image is fine


def test_teacher_is_evaluated_after_the_warmup() -> None:
    module = _module()
    x = torch.randn(2, 3, 5, 7)
    student = module.net(x).softmax(1)
    teacher = module.teacher(x).softmax(1)
    assert not torch.allclose(student, teacher)
    with torch.no_grad():
        assert torch.allclose(module.predict_probs(x), student)  # still in the warm-up
        module.teacher_ready.fill_(True)
        assert torch.allclose(module.predict_probs(x), teacher)
    assert all(not p.requires_grad for p in module.teacher.parameters())
    assert all(p.requires_grad for p in module.net.parameters())


@pytest.mark.parametrize(("schedule", "epoch", "step", "expected"), [
    ("epoch", 30, 660, 30 / 36),            # the reference: epochs of the whole run
    ("step", 30, 660, 660 / 792),           # steps of the whole run
    ("post_warmup", 24, 528, 0.0),          # pseudo-labels start: drop 100 - P %
    ("post_warmup", 30, 660, 132 / 264),    # half-way through the 264 steps after the warm-up
    ("post_warmup", 10, 220, 0.0),          # inside the warm-up: clamped to 0
])
def test_dpa_progress_per_schedule(schedule: str, epoch: int, step: int, expected: float) -> None:
    # 36 epochs of 22 steps with a 24-epoch (528-step) supervised-only warm-up
    module = _module(dpa_schedule=schedule)
    module.warmup_steps = 24 * 22
    module._trainer = type("T", (), {"max_epochs": 36, "current_epoch": epoch, "global_step": step,
                                     "estimated_stepping_batches": 36 * 22})()
    assert module.training_progress() == pytest.approx(expected)


def test_prior_is_estimated_from_label_maps_and_unseen_classes_get_the_mean() -> None:
    module = S4MC(_pixel_net(), num_classes=K)
    # 4-neighbour edges: five 0-0, two 0-1 → E_0 = 10/12, E_1 = 0/2; class 2 unseen → mean
    prior = module.estimate_prior([torch.tensor([[0, 0, 0], [0, 0, 1]])])
    assert prior.tolist() == pytest.approx([5 / 6, 0.0, 5 / 12])
    assert torch.equal(module.prior, prior)
    with pytest.raises(ValueError, match="has no pair of neighbouring labeled pixels"):
        module.estimate_prior([torch.full((2, 2), 255)])
    with pytest.raises(ValueError, match="method.prior must have 3 values"):
        S4MC(_pixel_net(), num_classes=K, prior=[0.5, 0.5])
    with pytest.raises(ValueError, match="prior E is not set"):
        S4MC(_pixel_net(), num_classes=K).unsupervised_loss(
            torch.zeros(1, K, 2, 2), torch.full((1, K, 2, 2), 1 / K),
            torch.zeros(1, 2, 2, dtype=torch.long), torch.ones(1, 2, 2, dtype=torch.bool), 0.0)


def test_published_priors_are_offered_by_name() -> None:
    import math

    from leseg.components.pseudo_labels import published_prior, refine_probs

    voc = S4MC(nn.Conv2d(3, 21, 1), num_classes=21, prior="voc")
    assert voc.prior_configured and voc.prior.shape == (21,)
    assert voc.prior[2].item() == pytest.approx(0.9555923573386919)  # bicycle, the lowest
    city = published_prior("Cityscapes", 19)
    assert city[3].item() == pytest.approx(0.831981383888851)  # wall
    # one pixel, zero-padded neighbours (q = 0): p̃ = p + β(0 − max(0, p·E)) = p (1 − β E)
    probs = torch.zeros(1, 19, 1, 1)
    probs[0, 3] = 1.0
    refined = refine_probs(probs, city)
    assert refined[0, 3, 0, 0].item() == pytest.approx(1 - math.exp(-0.5) * 0.831981383888851)
    with pytest.raises(ValueError, match="method.prior=voc is the published 21-class vector but "
                                         "num_classes=3"):
        S4MC(_pixel_net(), num_classes=K, prior="voc")
    with pytest.raises(ValueError, match="method.prior='coco'"):
        S4MC(_pixel_net(), num_classes=K, prior="coco")


def test_configuration_errors_name_the_key() -> None:
    with pytest.raises(ValueError, match="contrastive=u2pl needs pixel representations.*"
                                         "representation_channels"):
        S4MC(_pixel_net(), num_classes=K, contrastive="u2pl")
    with pytest.raises(ValueError, match="method.u2pl has unknown keys \\['num_anchors'\\]"):
        S4MC(_pixel_net(), num_classes=K, u2pl={"num_anchors": 3})
    with pytest.raises(ValueError, match="method.mix='mixup' is not one of"):
        S4MC(_pixel_net(), num_classes=K, mix="mixup")
    with pytest.raises(ValueError, match="method.dpa_partition='classwise' is not one of"):
        S4MC(_pixel_net(), num_classes=K, dpa_partition="classwise")
    with pytest.raises(ValueError, match="method.mix_prob"):
        S4MC(_pixel_net(), num_classes=K, mix_prob=1.5)
    with pytest.raises(ValueError, match="method.ema_schedule='cosine' is not one of"):
        S4MC(_pixel_net(), num_classes=K, ema_schedule="cosine")
    with pytest.raises(ValueError, match="method.ema_hold_steps must be >= 0"):
        S4MC(_pixel_net(), num_classes=K, ema_hold_steps=-1)
    (ema,) = _module(ema_schedule="warmup_average", ema_alpha=0.9).configure_callbacks()
    assert ema.schedule == "warmup_average" and ema.alpha == 0.9
    with pytest.raises(ValueError, match="aux_weight=0.4 needs an auxiliary head: set model.aux_head"):
        S4MC(_pixel_net(), num_classes=K, aux_weight=0.4)
    with pytest.raises(ValueError, match="expects batches {'labeled'"):
        _module().training_step({"image": torch.zeros(1, 3, 2, 2)}, 0)


def test_ohem_supervised_loss_keeps_only_hard_pixels() -> None:
    module = _module(sup_loss="ohem", ohem_thresh=0.7, ohem_min_kept=1)
    logits = torch.tensor([[[[5.0, 0.0]], [[0.0, 0.0]], [[0.0, 0.0]]]])  # (1, 3, 1, 2)
    labels = torch.tensor([[[0, 0]]])  # pixel 0 is easy (p ≈ 0.99), pixel 1 hard (p = 1/3)
    assert module.supervised_loss(logits, labels).item() == pytest.approx(torch.log(torch.tensor(3.0)).item())


S4MC_TINY = ("data=synthetic_voc_semi", "inference=synthetic_voc", "method=s4mc", "data.split=2",
             "method.sup_only_epochs=1")


def test_few_iterations_on_synthetic_voc_with_warmup_ema_and_eval(make_train_cfg, data_dir: Path,
                                                                   tmp_path: Path) -> None:
    cfg = make_train_cfg("synthetic_voc", overrides=S4MC_TINY)
    metrics, objects = train(cfg)
    model, trainer = objects["model"], objects["trainer"]
    assert (data_dir / "splits" / "synthetic_voc" / "2" / "unlabeled.txt").is_file()
    # 6 unlabeled // batch 4 = 1 step per epoch: epoch 0 is the supervised warm-up, epoch 1 S4MC
    assert trainer.global_step == 2 and model.warmup_steps == 1
    ema = [c for c in trainer.callbacks if isinstance(c, EMATeacher)]
    assert len(ema) == 1 and ema[0].warmup_steps == 1
    # ema_schedule=u2pl: the first semi-supervised epoch (step 2) holds teacher = student (α = 0)
    assert ema[0].last_alpha == 0.0 and ema[0].hold_steps == 1
    assert all(torch.equal(t, s) for t, s in zip(model.teacher.parameters(),
                                                 model.net.parameters(), strict=True))
    assert model.hparams.eval_net == "teacher" and model.hparams.ema_schedule == "u2pl"
    assert bool(model.teacher_ready)
    for key in ("train/loss_sup", "train/loss_unsup", "train/pseudo_keep_ratio",
                "train/dpa_threshold", "test/mIoU"):
        assert key in metrics, key
    assert 0.0 < metrics["train/pseudo_keep_ratio"] <= 1.0
    assert not torch.isnan(model.prior).any()

    best = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())["best_checkpoint"]
    ckpt = torch.load(best, weights_only=True)
    assert any(k.startswith("teacher.") for k in ckpt["state_dict"]) and "prior" in ckpt["state_dict"]
    ecfg = compose_cfg("eval", [f"ckpt_path={best}", "extras.print_config=false",
                                "trainer.enable_progress_bar=false", "trainer.limit_test_batches=1"],
                       tmp_path / "eval")
    emetrics, eobjects = evaluate(ecfg)
    assert 0.0 <= emetrics["test/mIoU"] <= 1.0 and bool(eobjects["model"].teacher_ready)


def test_synthetic_city_semi_and_supervised_twin_run(make_train_cfg) -> None:
    common = ("data=synthetic_city_semi", "inference=synthetic_city", "data.split=2",
              "trainer.max_epochs=1", "test=false")
    _, objects = train(make_train_cfg("synthetic_city", overrides=common + (
        "method=s4mc", "method.sup_only_epochs=0", "method.teacher_train_forward=false"), out="s4mc"))
    assert objects["trainer"].global_step == 1 and bool(objects["model"].teacher_ready)
    _, objects = train(make_train_cfg("synthetic_city", overrides=common + (
        "data.labeled_only=true",), out="twin"))
    assert objects["trainer"].global_step == 1  # the same number of steps, labeled batches only


def test_u2pl_contrastive_and_aux_head_train_on_synthetic_voc(make_train_cfg) -> None:
    aux = ("+model.aux_head={_target_: leseg.models.heads.FCNAuxHead, _partial_: true, "
           "in_index: -2, channels: 16}")
    cfg = make_train_cfg("synthetic_voc", overrides=S4MC_TINY + (
        "method.contrastive=u2pl", "method.u2pl.num_queries=8", "method.u2pl.num_negatives=4",
        "method.u2pl.queue_size=64", "method.u2pl.background_queue_size=96",
        "method.sup_loss=ohem", "method.ohem_min_kept=100", "method.aux_weight=0.4", aux,
        "test=false"))
    assert cfg.model.head.representation_channels == 256  # built because contrastive=u2pl
    metrics, objects = train(cfg)
    model = objects["model"]
    assert model.net.aux_head is not None and model.net.has_representation
    for key in ("train/loss_aux", "train/loss_contrastive", "train/loss_unsup"):
        assert key in metrics and torch.isfinite(torch.as_tensor(metrics[key])), key
    # the queues were filled (capacity-bounded) and are saved with the module
    lengths = [model.queues.length(c) for c in range(model.num_classes)]
    assert sum(lengths) > 0 and lengths[0] <= 96 and max(lengths[1:]) <= 64
    assert "queues.queue_0" in model.state_dict()


def test_contrastive_term_gets_gradient_through_the_representation_head() -> None:
    from leseg.models.backbones import build_backbone
    from leseg.models.heads import DeepLabV3PlusHead
    from leseg.models.segmentor import Segmentor

    torch.manual_seed(0)
    net = Segmentor(build_backbone("resnet18", output_stride=16),
                    lambda **kw: DeepLabV3PlusHead(channels=16, representation_channels=8, **kw),
                    num_classes=K)
    module = S4MC(net, num_classes=K, prior=[0.9, 0.9, 0.9], contrastive="u2pl", mix_prob=1.0,
                  u2pl={"num_queries": 4, "num_negatives": 2, "queue_size": 50,
                        "background_queue_size": 50, "anchor_prob_thresh": 0.0,
                        "low_entropy_threshold": 50.0})
    g = torch.Generator().manual_seed(0)
    labeled = {"image": torch.randn(2, 3, 32, 32, generator=g),
               "label": torch.randint(0, K, (2, 32, 32), generator=g)}
    unlabeled = {"image": torch.randn(2, 3, 32, 32, generator=g),
                 "valid": torch.ones(2, 32, 32, dtype=torch.bool)}
    module.train()
    _losses(module, labeled, unlabeled, progress=0.0)  # fills the queues
    out = _losses(module, labeled, unlabeled, progress=0.0)
    assert out["loss_contrastive"] is not None and out["loss_contrastive"] > 0
    rep_weight = net.head.representation[-1].weight
    grad, = torch.autograd.grad(out["loss_contrastive"], rep_weight)
    assert grad.abs().sum() > 0


def _real_overrides(tmp_path: Path, data: str, root: Path, crop: str) -> list[str]:
    return [f"data={data}", "method=s4mc",  # the data config brings its evaluation protocol
            "model=deeplabv3plus_r18", "model.head.channels=32", "trainer=cpu", "logger=none",
            "~callbacks.progress_bar", "~callbacks.model_summary", "trainer.max_epochs=1",
            "trainer.limit_train_batches=1", "trainer.limit_val_batches=1",
            "trainer.num_sanity_val_steps=0", "trainer.enable_progress_bar=false",
            "trainer.enable_model_summary=false", f"data.root={root}",
            f"data.splits_dir={tmp_path / 'splits'}", "data.batch_size=2", "data.num_workers=0",
            "data.persistent_workers=false", "data.pin_memory=false", "++data.max_val_samples=1",
            f"data.train_transforms.crop_size={crop}", "data.train_transforms.scale_range=[0.5,1.0]",
            "method.sup_only_epochs=0", "method.mix_prob=1.0", "test=false",
            "extras.print_config=false", f"paths.data_dir={tmp_path}"]


def test_few_iterations_on_real_voc_sample_frames(tmp_path: Path) -> None:
    root = sample_data("voc_sample", "VOC2012")
    make_splits("voc", root, [2], seed=0, out=tmp_path / "splits")  # 2 labeled, 2 unlabeled
    cfg = compose_cfg("train", _real_overrides(tmp_path, "voc_semi", root, "[96,96]") +
                      ["data.split=2"], tmp_path / "run")
    metrics, objects = train(cfg)
    assert objects["trainer"].global_step == 1
    assert "train/loss_unsup" in metrics and 0.0 <= metrics["val/mIoU"] <= 1.0


def test_few_iterations_on_real_cityscapes_sample_frames(tmp_path: Path) -> None:
    root = sample_data("cityscapes_sample")
    split = tmp_path / "splits" / "1"
    split.mkdir(parents=True)
    (split / "labeled.txt").write_text("frankfurt_000000_000294\n")  # 128x256 frame
    (split / "unlabeled.txt").write_text(  # the 2048x1024 frame, U2PL path format
        "leftImg8bit/val/frankfurt/frankfurt_000001_058914_leftImg8bit.png\n")
    cfg = compose_cfg("train", _real_overrides(tmp_path, "cityscapes_semi", root, "[64,128]") +
                      ["data.split=1", "data.train_set=val", "method.sup_loss=ohem",
                       "method.ohem_min_kept=1000"], tmp_path / "run")
    metrics, objects = train(cfg)
    assert objects["trainer"].global_step == 1
    assert "train/loss_unsup" in metrics and 0.0 <= metrics["val/mIoU"] <= 1.0
