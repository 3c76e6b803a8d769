"""Self-supervised monocular depth networks (Hoyer et al. CVPR 2021 on monodepth2)."""

from leseg.models.depth.decoder import DepthDecoder
from leseg.models.depth.encoder import DepthEncoder
from leseg.models.depth.net import DepthNet
from leseg.models.depth.pose import PoseNet

__all__ = ["DepthDecoder", "DepthEncoder", "DepthNet", "PoseNet"]
