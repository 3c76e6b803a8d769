"""Decode heads: backbone features (list, finest first) → logits at their finest used level.

- :class:`DeepLabV3Head` — ASPP, no decoder (Chen et al. 2017).
- :class:`DeepLabV3PlusHead` — ASPP + stride-4 low-level decoder (Chen et al., ECCV 2018).
- :class:`FCN8sHead` — per-level score heads fused coarse to fine (Long et al., CVPR 2015).
- :class:`FCNAuxHead` — auxiliary (deep-supervision) head on layer3 (PSPNet; U2PL Cityscapes).
"""

from leseg.models.heads.aux import FCNAuxHead
from leseg.models.heads.deeplab import ASPP, DeepLabV3Head, DeepLabV3PlusHead
from leseg.models.heads.fcn8s import FCN8sHead

__all__ = ["ASPP", "DeepLabV3Head", "DeepLabV3PlusHead", "FCN8sHead", "FCNAuxHead"]
