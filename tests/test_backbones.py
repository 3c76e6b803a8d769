"""timm feature backbones: levels, output stride, local weights files, extra input channels."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import timm
import torch

from leseg.models.backbones import adapt_input_conv, build_backbone


def _xavier_bound(shape: tuple[int, ...]) -> float:
    out_ch, in_ch, kh, kw = shape
    return math.sqrt(6.0 / (in_ch * kh * kw + out_ch * kh * kw))


@pytest.mark.parametrize(("output_stride", "reductions"), [
    (8, [4, 8, 8, 8]), (16, [4, 8, 16, 16]), (32, [4, 8, 16, 32]),
])
def test_resnet_levels_follow_output_stride(output_stride: int, reductions: list[int]) -> None:
    backbone = build_backbone("resnet18", output_stride=output_stride)
    assert backbone.channels == [64, 128, 256, 512]
    assert backbone.reductions == reductions
    feats = backbone(torch.randn(2, 3, 64, 40))
    assert [tuple(f.shape) for f in feats] == [
        (2, c, math.ceil(64 / r), math.ceil(40 / r)) for c, r in zip(backbone.channels, reductions)]


@pytest.mark.parametrize("name", ["resnet50c", "resnet50d", "resnet101c"])
def test_deep_stem_resnets_dilate_to_output_stride_8(name: str) -> None:
    backbone = build_backbone(name, output_stride=8)
    assert backbone.channels == [256, 512, 1024, 2048]
    assert backbone.reductions == [4, 8, 8, 8]
    first_conv = next(m for m in backbone.modules() if isinstance(m, torch.nn.Conv2d))
    assert first_conv.kernel_size == (3, 3)  # deep 3x3 stem, not the 7x7 of plain ResNet


def test_explicit_out_indices() -> None:
    backbone = build_backbone("resnet18", out_indices=(2, 3, 4))
    assert backbone.channels == [128, 256, 512] and backbone.reductions == [8, 16, 32]
    assert len(backbone(torch.randn(2, 3, 64, 64))) == 3


def test_hrnet_levels_and_feature_location() -> None:
    backbone = build_backbone("hrnet_w18")
    # timm's five "incre" levels; index 2 is the stride-8, 256-channel feature S5 uses
    assert backbone.channels == [64, 128, 256, 512, 1024]
    assert backbone.reductions == [2, 4, 8, 16, 32]
    native = build_backbone("hrnet_w18", feature_location="")
    assert native.channels == [64, 18, 36, 72, 144]
    feats = native(torch.randn(1, 3, 64, 32))
    assert tuple(feats[2].shape) == (1, 36, 8, 4)
    with pytest.raises(ValueError, match="divisible by 32"):
        native(torch.randn(1, 3, 48, 32))


@pytest.mark.parametrize(("name", "output_stride", "allowed"), [
    ("hrnet_w18", 16, r"\[32\]"), ("hrnet_w48", 8, r"\[32\]"), ("resnet18", 4, r"\[8, 16, 32\]"),
])
def test_invalid_output_stride_names_model_and_allowed_values(name: str, output_stride: int,
                                                              allowed: str) -> None:
    with pytest.raises(ValueError, match=rf"{name}.*{allowed}"):
        build_backbone(name, output_stride=output_stride)


def test_unknown_model_and_wrong_input_channels() -> None:
    with pytest.raises(ValueError, match="not_a_model"):
        build_backbone("not_a_model")
    backbone = build_backbone("resnet18", in_chans=4)
    with pytest.raises(ValueError, match=r"\(B, 4, H, W\)"):
        backbone(torch.randn(1, 3, 32, 32))


# ---------------------------------------------------------------------------------- weights files
def _timm_resnet18_state(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return timm.create_model("resnet18", pretrained=False).state_dict()  # includes fc.*


def test_missing_weights_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "r18_imagenet.pth"
    with pytest.raises(FileNotFoundError) as info:
        build_backbone("resnet18", weights=str(path))
    message = str(info.value)
    assert str(path) in message
    assert "never downloads" in message
    assert "model.backbone.weights" in message


@pytest.mark.parametrize("wrap", ["raw", "state_dict", "model", "backbone"])
def test_weights_load_from_nested_prefixed_state_dicts(tmp_path: Path, wrap: str) -> None:
    source = _timm_resnet18_state()
    prefixed = {f"module.backbone.{k}": v for k, v in source.items()}
    path = tmp_path / "weights.pth"
    torch.save(prefixed if wrap == "raw" else {wrap: prefixed, "epoch": 3}, path)
    backbone = build_backbone("resnet18", output_stride=8, weights=str(path))
    loaded = backbone.body.state_dict()
    assert loaded, "no parameters"
    for key, value in loaded.items():
        assert torch.equal(value, source[key]), key


def test_weights_for_stages_cut_by_out_indices_are_ignored(tmp_path: Path) -> None:
    source = _timm_resnet18_state()
    path = tmp_path / "weights.pth"
    torch.save(source, path)
    backbone = build_backbone("resnet18", out_indices=(1, 2), weights=str(path))  # no layer3/4
    assert torch.equal(backbone.body.state_dict()["layer2.0.conv1.weight"],
                       source["layer2.0.conv1.weight"])


def test_missing_and_unexpected_keys_raise_with_strict(tmp_path: Path) -> None:
    source = _timm_resnet18_state()
    del source["layer1.0.conv1.weight"]
    source["extra_block.weight"] = torch.zeros(3)
    path = tmp_path / "partial.pth"
    torch.save(source, path)
    with pytest.raises(ValueError) as info:
        build_backbone("resnet18", weights=str(path))
    message = str(info.value)
    assert str(path) in message
    assert "layer1.0.conv1.weight" in message and "extra_block.weight" in message
    assert "fc.weight" not in message  # classifier keys are dropped silently

    with pytest.warns(UserWarning, match="layer1.0.conv1.weight"):
        backbone = build_backbone("resnet18", weights=str(path), strict=False)
    assert torch.equal(backbone.body.state_dict()["layer2.0.conv1.weight"],
                       source["layer2.0.conv1.weight"])


def test_shape_mismatch_names_key_and_file(tmp_path: Path) -> None:
    source = _timm_resnet18_state()
    source["layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    path = tmp_path / "bad_shape.pth"
    torch.save(source, path)
    with pytest.raises(ValueError, match=r"bad_shape\.pth.*layer1\.0\.conv1\.weight"):
        build_backbone("resnet18", weights=str(path), strict=False)


def test_file_without_state_dict_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "not_weights.pth"
    torch.save([1, 2, 3], path)
    with pytest.raises(ValueError, match="not_weights.pth"):
        build_backbone("resnet18", weights=str(path))


# ------------------------------------------------------------------------- extra input channels
def test_adapt_input_conv_keeps_rgb_and_xavier_initialises_extra_channels() -> None:
    torch.manual_seed(0)
    rgb = torch.randn(64, 3, 7, 7)
    widened = adapt_input_conv(rgb, in_chans=5)
    assert widened.shape == (64, 5, 7, 7)
    assert torch.equal(widened[:, :3], rgb)
    extra = widened[:, 3:]
    bound = _xavier_bound(tuple(extra.shape))  # sqrt(6 / (2·49 + 64·49)) ≈ 0.043
    assert float(extra.abs().max()) <= bound
    # uniform(-b, b) has std b / sqrt(3); PyTorch's default conv init (bound 1/sqrt(98) ≈ 0.10)
    # or zeros would fail this
    assert float(extra.std()) == pytest.approx(bound / math.sqrt(3), rel=0.1)
    assert torch.equal(adapt_input_conv(rgb, 3), rgb)


def test_adapt_input_conv_errors() -> None:
    with pytest.raises(ValueError, match=r"\(O, 3, kh, kw\)"):
        adapt_input_conv(torch.zeros(8, 4, 3, 3), 5)
    with pytest.raises(ValueError, match="in_chans"):
        adapt_input_conv(torch.zeros(8, 3, 3, 3), 2)


@pytest.mark.parametrize("name", ["resnet18", "resnet50c"])
def test_rgb_weights_load_into_a_wider_stem(tmp_path: Path, name: str) -> None:
    torch.manual_seed(0)
    source = timm.create_model(name, pretrained=False).state_dict()
    path = tmp_path / "rgb.pth"
    torch.save(source, path)
    backbone = build_backbone(name, in_chans=4, weights=str(path))
    stem_key = "conv1.weight" if name == "resnet18" else "conv1.0.weight"
    stem = backbone.body.state_dict()[stem_key]
    assert stem.shape[1] == 4
    assert torch.equal(stem[:, :3], source[stem_key])
    assert float(stem[:, 3].abs().max()) <= _xavier_bound((stem.shape[0], 1, *stem.shape[2:]))
    assert float(stem[:, 3].abs().max()) > 0
    assert len(backbone(torch.randn(2, 4, 64, 64))) == 4
