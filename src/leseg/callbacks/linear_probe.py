"""A cheap representation monitor for self-supervised pretraining: a pixel-wise linear probe.

Before training starts (the initialisation's baseline, written straight to the loggers at step 0)
and after every ``every_n_epochs`` training epochs (and the last one) the callback

1. runs the *frozen* backbone (eval mode, no gradients) on a handful of labelled images from the
   DataModule's ``probe_dataset()`` (e.g. 8 Cityscapes frames), takes the chosen feature levels
   (by default the last three, ResNet layer2–4, resized to the finest of them — stride 8 — and
   concatenated) and standardises every channel with the statistics of the fitting pixels;
2. fits a linear classifier (a 1×1 convolution, zero-initialised) with full-batch Adam on the
   feature-grid pixels of the first half of the images, labels nearest-downsampled to the grid;
3. predicts the other half — logits bilinearly upsampled to the label resolution — and logs
   ``probe/mIoU`` and ``probe/aAcc`` (dataset-level confusion matrix over the held-out images,
   :mod:`leseg.metrics.segmentation`) through ``pl_module.log`` (so wandb, TensorBoard and CSV
   loggers get them, and ``ModelCheckpoint`` can monitor them).

A rising probe mIoU shows the representation becoming linearly more informative about the classes
while BYOL trains, before any fine-tuning; a flat one after a few epochs is a sign of collapse or of
too little data/epochs. The probe is a monitor, not a result: it sees only a few images and its
numbers are not comparable to fine-tuning mIoU.

Nothing here consumes global random numbers (zero init, full batch), so the probe does not change
the training run's randomness.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn

from leseg.metrics.segmentation import SegmentationMetric

__all__ = ["LinearProbe", "fit_linear_probe", "resolve_attribute"]


def resolve_attribute(obj: Any, path: str) -> Any:
    """``obj.a.b.c`` for ``path = "a.b.c"``.

    Raises:
        AttributeError: naming the first missing part and the object's type.
    """
    current = obj
    for part in path.split("."):
        if not hasattr(current, part):
            raise AttributeError(f"LinearProbe: {type(obj).__name__} has no attribute {path!r} "
                                 f"(missing {part!r}); set the callback's backbone= path")
        current = getattr(current, part)
    return current


def _level_features(features: Sequence[torch.Tensor], levels: Sequence[int]) -> torch.Tensor:
    chosen = [features[i] for i in levels]
    size = max((f.shape[-2:] for f in chosen), key=lambda s: s[0] * s[1])
    chosen = [f if f.shape[-2:] == size else
              F.interpolate(f, size=size, mode="bilinear", align_corners=False) for f in chosen]
    return torch.cat(chosen, dim=1)


def fit_linear_probe(features: torch.Tensor, labels: torch.Tensor, num_classes: int,
                     ignore_index: int = 255, steps: int = 100, lr: float = 0.1,
                     weight_decay: float = 0.0) -> nn.Conv2d:
    """Fit a pixel-wise linear classifier (1×1 conv) by full-batch Adam on cross-entropy.

    Args:
        features: (N, C, h, w) float features (standardised by the caller).
        labels: (N, h, w) int64 class indices on the same grid, ``ignore_index`` excluded.
        num_classes: K.
        ignore_index: label value excluded from the loss.
        steps: Adam iterations; lr: its learning rate; weight_decay: L2 penalty on the weights.

    Returns:
        The fitted ``nn.Conv2d(C, K, 1)`` (zero-initialised, so the fit is deterministic).

    Raises:
        ValueError: shapes that do not match, or no labelled pixel at all.
    """
    if features.ndim != 4 or labels.shape != (features.shape[0], *features.shape[-2:]):
        raise ValueError(f"fit_linear_probe: features (N, C, h, w) and labels (N, h, w) must match,"
                         f" got {tuple(features.shape)} and {tuple(labels.shape)}")
    if not bool((labels != ignore_index).any()):
        raise ValueError("fit_linear_probe: every probe pixel is ignore_index")
    classifier = nn.Conv2d(features.shape[1], num_classes, 1).to(features.device)
    nn.init.zeros_(classifier.weight)
    nn.init.zeros_(classifier.bias)
    optimizer = torch.optim.Adam(classifier.parameters(), lr=lr, weight_decay=weight_decay)
    with torch.enable_grad():
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(classifier(features), labels, ignore_index=ignore_index)
            loss.backward()
            optimizer.step()
    return classifier.requires_grad_(False)


class LinearProbe(L.Callback):
    """Log a pixel-wise linear probe of the frozen backbone during (self-supervised) training.

    Args:
        backbone: attribute path of the backbone on the LightningModule (``backbone`` = BYOL's
            online backbone; ``net.backbone`` for segmentation methods).
        every_n_epochs: probe after every n-th training epoch; the last epoch is always probed.
        levels: backbone feature levels to concatenate (−1 = deepest; default layer2–4).
        at_start: also probe the initial backbone before the first step and log the result at
            step 0 directly to the loggers (so the curve starts at the initialisation's value).
        steps, lr, weight_decay: the classifier fit (see :func:`fit_linear_probe`).
        batch_size: images per backbone forward pass.
        prefix: metric-key prefix (``probe`` → ``probe/mIoU``, ``probe/aAcc``).

    The labelled images come from ``trainer.datamodule.probe_dataset()`` (samples with ``image``
    (3, H, W) float32 and ``label`` (H, W) int64, all of one size; e.g.
    :class:`leseg.data.unlabeled.UnlabeledDataModule` with ``probe`` set); the class count from
    ``trainer.datamodule.num_classes``. Without them the callback warns once and does nothing.
    The first ⌈N/2⌉ images fit the classifier, the rest are evaluated.

    Raises:
        ValueError: ``every_n_epochs`` < 1 or no levels.
        AttributeError (at fit start): the backbone path does not exist on the module.
    """

    def __init__(self, backbone: str = "backbone", every_n_epochs: int = 1,
                 levels: Sequence[int] = (-3, -2, -1), steps: int = 100, lr: float = 0.1,
                 weight_decay: float = 0.0, batch_size: int = 4, prefix: str = "probe",
                 at_start: bool = True) -> None:
        if every_n_epochs < 1:
            raise ValueError(f"LinearProbe.every_n_epochs must be >= 1, got {every_n_epochs}")
        if not levels:
            raise ValueError("LinearProbe.levels must name at least one feature level")
        self.backbone, self.every_n_epochs = backbone, int(every_n_epochs)
        self.levels = [int(i) for i in levels]
        self.steps, self.lr, self.weight_decay = int(steps), float(lr), float(weight_decay)
        self.batch_size, self.prefix, self.at_start = int(batch_size), prefix, bool(at_start)
        self._data: tuple[torch.Tensor, torch.Tensor] | None = None
        self._disabled = False
        self.last_result: dict[str, float] | None = None
        self.initial_result: dict[str, float] | None = None

    # ------------------------------------------------------------------ data
    def _probe_data(self, trainer: L.Trainer) -> tuple[torch.Tensor, torch.Tensor] | None:
        if self._data is not None or self._disabled:
            return self._data
        dm = getattr(trainer, "datamodule", None)
        dataset = dm.probe_dataset() if hasattr(dm, "probe_dataset") else None
        if dataset is None or len(dataset) < 2 or getattr(dm, "num_classes", None) is None:
            rank_zero_warn("LinearProbe: the DataModule provides no probe_dataset() with >= 2 "
                           "labelled images (and num_classes); the probe is disabled. Set "
                           "data.probe (see leseg.data.unlabeled).")
            self._disabled = True
            return None
        samples = [dataset[i] for i in range(len(dataset))]
        shapes = {tuple(s["image"].shape) for s in samples}
        if len(shapes) > 1:
            raise ValueError(f"LinearProbe: probe images differ in size {sorted(shapes)}; set "
                             f"data.probe.resize")
        self._data = (torch.stack([s["image"] for s in samples]),
                      torch.stack([s["label"] for s in samples]).long())
        return self._data

    # ------------------------------------------------------------------ probing
    @torch.no_grad()
    def _features(self, backbone: nn.Module, images: torch.Tensor, device: torch.device
                  ) -> torch.Tensor:
        chunks = []
        for start in range(0, images.shape[0], self.batch_size):
            batch = images[start:start + self.batch_size].to(device)
            chunks.append(_level_features(backbone(batch), self.levels).float())
        return torch.cat(chunks)

    def probe(self, backbone: nn.Module, images: torch.Tensor, labels: torch.Tensor,
              num_classes: int, ignore_index: int = 255) -> dict[str, float]:
        """Fit on the first ⌈N/2⌉ images, evaluate on the rest.

        Args:
            backbone: maps (B, 3, H, W) to a list of feature maps; run in eval mode (its mode is
                restored afterwards), without gradients.
            images: (N, 3, H, W) float32 normalised; labels: (N, H, W) int64 with ignore_index.
            num_classes: K.

        Returns:
            ``{"mIoU": ..., "aAcc": ...}`` in [0, 1] (NaN when the held-out half has no labelled
            pixel).
        """
        device = next(backbone.parameters()).device
        was_training = backbone.training
        backbone.eval()
        try:
            feats = self._features(backbone, images, device)
        finally:
            backbone.train(was_training)
        n_fit = (images.shape[0] + 1) // 2
        grid = feats.shape[-2:]
        labels = labels.to(device)
        small = F.interpolate(labels[:, None].float(), size=grid, mode="nearest")[:, 0].long()
        fit = feats[:n_fit]
        mean = fit.mean(dim=(0, 2, 3), keepdim=True)
        std = fit.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
        feats = (feats - mean) / std
        classifier = fit_linear_probe(feats[:n_fit], small[:n_fit], num_classes, ignore_index,
                                      self.steps, self.lr, self.weight_decay)
        logits = F.interpolate(classifier(feats[n_fit:]), size=labels.shape[-2:],
                               mode="bilinear", align_corners=False)
        metric = SegmentationMetric(num_classes, ignore_index).to(device)
        metric.update(logits.argmax(dim=1), labels[n_fit:])
        result = metric.compute()
        return {"mIoU": float(result["mIoU"]), "aAcc": float(result["aAcc"])}

    def _run(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, float] | None:
        data = self._probe_data(trainer)
        if data is None:
            return None
        images, labels = data
        dm = trainer.datamodule
        try:
            return self.probe(resolve_attribute(pl_module, self.backbone), images, labels,
                              int(dm.num_classes), int(getattr(dm, "ignore_index", 255)))
        except ValueError as err:  # e.g. every probe pixel ignored: warn, do not stop training
            rank_zero_warn(f"LinearProbe skipped: {err}")
            return None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:  # noqa: D102
        resolve_attribute(pl_module, self.backbone)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Probe the initial backbone (a fresh run only) and log it at step 0 to the loggers."""
        if not self.at_start or trainer.global_step > 0:
            return
        result = self._run(trainer, pl_module)
        if result is None:
            return
        self.initial_result = result
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.log_metrics({f"{self.prefix}/{k}": v for k, v in result.items()}, step=0)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Probe after every ``every_n_epochs``-th epoch and after the last one; log the result."""
        epoch = trainer.current_epoch + 1
        last = trainer.max_epochs is not None and epoch >= trainer.max_epochs
        last = last or (trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps)
        if epoch % self.every_n_epochs and not last:
            return
        result = self._run(trainer, pl_module)
        if result is None:
            return
        self.last_result = result
        for key, value in result.items():
            pl_module.log(f"{self.prefix}/{key}", value, sync_dist=False)
