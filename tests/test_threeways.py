"""Three Ways (Hoyer et al. CVPR 2021), second half: depth transfer, DepthMix mean teacher,
annotation selection, multi-task network."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

DEC = (8, 8, 16, 16, 32)
H, W = 32, 64


def _depth_net(seed: int = 0):
    from leseg.models.depth import DepthNet

    torch.manual_seed(seed)
    net = DepthNet("resnet18", decoder_channels=DEC)
    # make the BN buffers non-trivial so that buffer transfer is checked too
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    return net


def _save_depth_ckpt(net, path: Path) -> Path:
    """A checkpoint laid out like a SelfSupervisedDepth Lightning checkpoint."""
    torch.save({"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()},
                "epoch": 1}, path)
    return path


# -------------------------------------------------------------------------------- transfer
def test_transfer_copies_every_encoder_and_decoder_entry(tmp_path: Path) -> None:
    from leseg.models.depth.segmentation import DepthSegmentor, export_depth_weights, main

    depth = _depth_net()
    ckpt = _save_depth_ckpt(depth, tmp_path / "depth.ckpt")
    seg = DepthSegmentor(5, encoder="resnet18", decoder_channels=DEC,
                         init_from_depth=str(ckpt))
    enc_keys = {f"encoder.{k}" for k in seg.backbone.state_dict()}
    dec_keys = {f"decoder.{k}" for k in seg.decoder.state_dict()}
    assert set(seg.transferred) == enc_keys | dec_keys  # nothing of either part left out
    assert not any(".disp." in k for k in seg.transferred)
    src = depth.state_dict()
    for key, value in seg.backbone.state_dict().items():
        torch.testing.assert_close(value, src[f"encoder.{key}"], rtol=0, atol=0)
    for key, value in seg.decoder.state_dict().items():
        torch.testing.assert_close(value, src[f"decoder.{key}"], rtol=0, atol=0)
    # the exported file transfers the same weights
    out = tmp_path / "export" / "depth.pt"
    assert main(["--ckpt", str(ckpt), "--out", str(out)]) == 0
    # encoder + whole decoder (disparity heads included), no pose network
    assert export_depth_weights(ckpt, out) == sum(1 for k in src if not k.startswith("pose."))
    seg2 = DepthSegmentor(5, encoder="resnet18", decoder_channels=DEC, init_from_depth=str(out))
    for (k1, v1), (k2, v2) in zip(seg.state_dict().items(), seg2.state_dict().items(),
                                  strict=True):
        if not k1.startswith("head."):
            assert k1 == k2 and torch.equal(v1, v2)
    # the network runs on ImageNet-normalised input and gives logits at the input size
    seg.eval()
    with torch.no_grad():
        logits = seg(torch.randn(2, 3, H, W))
    assert logits.shape == (2, 5, H, W)
    # same features as the depth network on the un-normalised images
    depth.eval()
    x01 = torch.rand(1, 3, H, W)
    x = (x01 - seg.input_mean) / seg.input_std
    with torch.no_grad():
        torch.testing.assert_close(seg.decode(x)[("features", 0)], depth(x01)[("features", 0)])


def test_transfer_errors_name_the_file(tmp_path: Path) -> None:
    from leseg.models.depth.segmentation import DepthSegmentor

    missing = tmp_path / "nope.ckpt"
    with pytest.raises(FileNotFoundError, match="nope.ckpt"):
        DepthSegmentor(5, encoder="resnet18", decoder_channels=DEC, init_from_depth=str(missing))
    ckpt = _save_depth_ckpt(_depth_net(), tmp_path / "depth.ckpt")
    with pytest.raises(ValueError, match=r"depth\.ckpt.*decoder_channels"):
        DepthSegmentor(5, encoder="resnet18", decoder_channels=(8, 8, 16, 16, 64),
                       init_from_depth=str(ckpt))
    other = tmp_path / "seg.ckpt"
    torch.save({"state_dict": {"net.backbone.x": torch.zeros(1)}}, other)
    with pytest.raises(KeyError, match="seg.ckpt"):
        DepthSegmentor(5, encoder="resnet18", decoder_channels=DEC, init_from_depth=str(other))
