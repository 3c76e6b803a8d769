"""DeepLabV3 / DeepLabV3+ / FCN-8s heads and the Segmentor, on small feature pyramids."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch
from torch import nn

from leseg.models.backbones import build_backbone
from leseg.models.heads import DeepLabV3Head, DeepLabV3PlusHead, FCN8sHead
from leseg.models.segmentor import Segmentor

K = 5
CHANNELS = [8, 16, 32, 64]
SIZES = [(16, 12), (8, 6), (4, 3), (4, 3)]  # strides 4, 8, 16, 16 of a 64x48 image (OS16)


def pyramid(batch: int = 2) -> list[torch.Tensor]:
    return [torch.randn(batch, c, h, w) for c, (h, w) in zip(CHANNELS, SIZES)]


def convs(module: nn.Module) -> list[nn.Conv2d]:
    return [m for m in module.modules() if isinstance(m, nn.Conv2d)]


def test_deeplabv3_head_runs_aspp_on_the_chosen_level() -> None:
    head = DeepLabV3Head(CHANNELS, K, channels=16, dilations=(2, 3, 4))
    assert head(pyramid()).shape == (2, K, 4, 3)
    aspp_convs = [m[0] for m in head.aspp.branches]
    assert [c.dilation for c in aspp_convs] == [(1, 1), (2, 2), (3, 3), (4, 4)]
    assert all(c.in_channels == 64 for c in aspp_convs)
    # 1x1 + three atrous + image pooling, concatenated then projected
    assert head.aspp.project[0][0].in_channels == 5 * 16
    on_level_1 = DeepLabV3Head(CHANNELS, K, in_index=1, channels=16).eval()
    assert on_level_1(pyramid(batch=1)).shape == (1, K, 8, 6)


def test_aspp_image_pooling_sees_the_whole_feature_map() -> None:
    head = DeepLabV3Head([8], K, channels=8, dilations=(1,)).eval()
    feat = torch.randn(1, 8, 12, 12)
    changed = feat.clone()
    changed[:, :, 11, 11] += 5.0  # a far corner; the 1x1 / 3x3 branches cannot see it from (0, 0)
    with torch.no_grad():
        delta = head([changed]) - head([feat])
    assert float(delta[:, :, 0, 0].abs().max()) > 0


def test_deeplabv3plus_head_decodes_at_the_low_level_resolution() -> None:
    head = DeepLabV3PlusHead(CHANNELS, K, channels=16, low_level_channels=6)
    assert head(pyramid()).shape == (2, K, 16, 12)
    assert head.low_level_project[0].in_channels == 8
    assert head.low_level_project[0].out_channels == 6
    assert head.fuse[0][0].in_channels == 16 + 6
    assert [m[0].dilation for m in head.aspp.branches] == [(1, 1), (6, 6), (12, 12), (18, 18)]
    level_1 = DeepLabV3PlusHead(CHANNELS, K, low_level_index=1, channels=16)
    assert level_1(pyramid()).shape == (2, K, 8, 6)


def test_fcn8s_score_heads_follow_the_spec() -> None:
    head = FCN8sHead(CHANNELS, K)  # levels 1, 2, 3 (16, 32, 64 channels)
    assert head.in_index == [1, 2, 3]
    for in_ch, score in zip(CHANNELS[1:], head.score_heads):
        assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs(score)] == [
            (in_ch, in_ch // 8, (3, 3)), (in_ch // 8, in_ch // 8, (3, 3)), (in_ch // 8, K, (1, 1))]
    assert head(pyramid()).shape == (2, K, 8, 6)  # the finest used level (stride 8)


def test_fcn8s_fuses_every_level_by_upsampling_and_summation() -> None:
    class Constant(nn.Module):
        def __init__(self, value: float) -> None:
            super().__init__()
            self.value = value

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.full((x.shape[0], K, *x.shape[-2:]), self.value)

    head = FCN8sHead(CHANNELS, K, in_index=(0, 2, 3))
    head.score_heads = nn.ModuleList([Constant(1.0), Constant(10.0), Constant(100.0)])
    out = head(pyramid())
    # bilinear upsampling keeps constants, so the sum of the three levels is 111 everywhere
    assert out.shape == (2, K, 16, 12)
    assert torch.allclose(out, torch.full_like(out, 111.0))


@pytest.mark.parametrize(("factory", "needle"), [
    (lambda: FCN8sHead(CHANNELS, K, in_index=(-1, -2)), "finest first"),
    (lambda: FCN8sHead(CHANNELS, K, in_index=(1, 1)), "distinct"),
    (lambda: FCN8sHead(CHANNELS, K, in_index=(4,)), "in_index=4"),
    (lambda: DeepLabV3Head(CHANNELS, K, in_index=-5), "in_index=-5"),
    (lambda: DeepLabV3PlusHead(CHANNELS, K, low_level_index=7), "low_level_index=7"),
])
def test_bad_level_indices(factory, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        factory()


def test_wrong_number_of_feature_levels() -> None:
    with pytest.raises(ValueError, match="4 feature levels"):
        DeepLabV3PlusHead(CHANNELS, K)(pyramid()[:3])


# -------------------------------------------------------------------------------------- segmentor
def test_segmentor_returns_logits_at_input_size_and_trains_end_to_end() -> None:
    backbone = build_backbone("resnet18", output_stride=16)
    model = Segmentor(backbone, functools.partial(DeepLabV3PlusHead, channels=16), num_classes=K,
                      name="deeplabv3plus-r18-d16")
    assert model.backbone is backbone and isinstance(model.head, DeepLabV3PlusHead)
    assert model.head.in_channels == backbone.channels
    assert model.num_classes == K and model.name == "deeplabv3plus-r18-d16"
    images = torch.randn(2, 3, 65, 47)  # sizes not divisible by the output stride
    logits = model(images)
    assert logits.shape == (2, K, 65, 47)
    logits.sum().backward()
    assert backbone.body.conv1.weight.grad is not None
    assert model.head.classifier.weight.grad is not None


def test_segmentor_with_fcn8s_and_backbone_check() -> None:
    model = Segmentor(build_backbone("resnet18"), FCN8sHead, num_classes=K).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 40, 56)).shape == (1, K, 40, 56)
    with pytest.raises(ValueError, match="channels"):
        Segmentor(nn.Identity(), FCN8sHead, num_classes=K)


def test_every_model_config_builds_a_working_segmentor() -> None:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.utils import instantiate

    conf = Path(__file__).resolve().parents[1] / "conf"
    names = sorted(p.stem for p in (conf / "model").glob("*.yaml"))
    assert names
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
            segmentors = 0
            for name in names:
                cfg = compose("train", overrides=[f"model={name}"])
                if cfg.model.get("_target_") != "leseg.models.segmentor.Segmentor":
                    continue  # CAM / affinity / depth networks: tested with their methods
                segmentors += 1
                model = instantiate(cfg.model).eval()
                assert isinstance(model, Segmentor), name
                with torch.no_grad():
                    out = model(torch.randn(1, 3, 32, 64))
                assert out.shape == (1, cfg.model.num_classes, 32, 64), name
            assert segmentors >= 8
    finally:
        GlobalHydra.instance().clear()


def test_aux_head_reads_layer3_and_representation_head_shares_the_fused_feature() -> None:
    from leseg.models.heads import FCNAuxHead

    aux = FCNAuxHead(CHANNELS, K, channels=8)
    assert aux.block[0][0].in_channels == 32  # level -2
    assert aux(pyramid()).shape == (2, K, 4, 3)

    torch.manual_seed(0)
    head = DeepLabV3PlusHead(CHANNELS, K, channels=16, representation_channels=6).eval()
    feats = pyramid(batch=1)
    logits, rep = head.forward_with_representation(feats)
    assert logits.shape == (1, K, 16, 12) and rep.shape == (1, 6, 16, 12)
    assert torch.equal(logits, head(feats))  # the representation branch leaves logits alone
    # the branch reads concat(ASPP, low-level projection), as U2PL's representation head
    assert head.representation[0][0].in_channels == 16 + 48
    with pytest.raises(RuntimeError, match="representation_channels > 0"):
        DeepLabV3PlusHead(CHANNELS, K, channels=16).forward_with_representation(feats)
    with pytest.raises(ValueError, match="representation_channels must be >= 0"):
        DeepLabV3PlusHead(CHANNELS, K, representation_channels=-1)


def test_segmentor_forward_train_returns_aux_and_representations() -> None:
    from leseg.models.heads import FCNAuxHead

    net = Segmentor(build_backbone("resnet18", output_stride=16),
                    functools.partial(DeepLabV3PlusHead, channels=16, representation_channels=8),
                    num_classes=K, aux_head=functools.partial(FCNAuxHead, channels=8)).eval()
    x = torch.randn(1, 3, 64, 48)
    out = net.forward_train(x, representation=True)
    assert out["logits"].shape == out["aux"].shape == (1, K, 64, 48)
    assert out["rep"].shape == (1, 8, 16, 12)  # stride 4, the decoder's resolution
    assert torch.equal(out["logits"], net(x)) and net.has_representation
    assert set(net.forward_train(x)) == {"logits", "aux"}
    plain = Segmentor(build_backbone("resnet18", output_stride=16),
                      functools.partial(DeepLabV3PlusHead, channels=16), num_classes=K)
    with pytest.raises(RuntimeError, match="model.head.representation_channels"):
        plain.forward_train(x, representation=True)


def test_supervised_loss_adds_the_weighted_auxiliary_criterion() -> None:
    import torch.nn.functional as F

    from leseg.methods.supervised import SupervisedSegmentation
    from leseg.models.heads import FCNAuxHead

    torch.manual_seed(0)
    net = Segmentor(build_backbone("resnet18", output_stride=16),
                    functools.partial(DeepLabV3PlusHead, channels=16), num_classes=K,
                    aux_head=functools.partial(FCNAuxHead, channels=8))
    module = SupervisedSegmentation(net, K, aux_weight=0.4)
    x, y = torch.randn(2, 3, 32, 32), torch.randint(0, K, (2, 32, 32))
    y[:, :4] = 255
    torch.manual_seed(1)
    out = module.student_outputs(x)
    loss, aux = module.labeled_loss(out, y)
    expected_aux = F.cross_entropy(out["aux"], y, ignore_index=255)
    assert aux.item() == pytest.approx(expected_aux.item(), rel=1e-5)
    assert loss.item() == pytest.approx((F.cross_entropy(out["logits"], y, ignore_index=255)
                                  + 0.4 * expected_aux).item(), rel=1e-5)
    plain = Segmentor(build_backbone("resnet18", output_stride=16),
                      functools.partial(DeepLabV3PlusHead, channels=16), num_classes=K)
    with pytest.raises(ValueError, match="needs an auxiliary head: set model.aux_head"):
        SupervisedSegmentation(plain, K, aux_weight=0.4)
    with pytest.raises(ValueError, match="method.sup_loss='focal' is not one of"):
        SupervisedSegmentation(plain, K, sup_loss="focal")
