"""S5: segmentation of one chosen class from the image plus a *suggestion* synthesised from labels.

Reference: Magolor/S5 (``train_cityscapes.py``, ``transforms_vision.py``, ``model_wrapper.py``;
no paper — its code is the specification). Per sample a class is chosen (the binarised
DataModule, :mod:`leseg.data.binary`), a suggestion map is derived from its mask (block / flood /
box, or the RITM click and DEXTR extreme-point baselines, :mod:`leseg.components.suggestions`),
and a segmenter with 3 + k input channels predicts the class's mask (2 logits) with plain
cross-entropy at the label resolution (Magolor/S5). "Self-supervised" means only that the
interactive input is generated from existing labels: no interaction is ever recorded.

Where the suggestion is made: here, in :meth:`S5.on_after_batch_transfer`, from the binary
``label`` the DataModule delivers, on the batch's device. The data layer may not import the
suggestion components (docs/ARCHITECTURE.md) and k is a property of the network's input, so the
method owns both; after the hook every batch carries ``suggestion`` (B, k, H, W) float32. At
validation / test the generator is seeded by the image name (``generator_for(name,
"suggestion")``) and training-only randomness (extreme-point jitter) is off, so evaluation repeats
exactly (the reference re-draws at every validation).

Resolution (Magolor/S5): the binary target and the suggestion are built at the label's
resolution; the (3 + k)-channel input — image and suggestion together, as the reference's
``ResizeImage`` on the 4-channel tensor (``transforms_vision.py``) — is resized by ``input_scale``
(S5: 0.5, 1024×2048 → 512×1024, bilinear, align_corners=False: torchvision's ``TF.resize`` default,
without antialiasing as in the 2021 torchvision the reference ran on) and the logits are upsampled
back to the label for the loss and the metrics (bilinear, align_corners=True as the reference's
``ISSModelWrapper.run_batch``).

Metrics, pooled over the dataset (sums of intersections and unions, as in Magolor/S5):
``<stage>/fg_IoU`` (prediction), ``<stage>/suggestion_IoU`` (the suggestion alone: channel
``suggestion_iou_channel`` ≥ 0.5, computed from the full-resolution suggestion rather than the
reference's down- and up-sampled one; 0 without a suggestion) and ``<stage>/boost`` = fg − sg (S5's
model-selection metric ``bs_mIoU``). Unlike the reference, evaluation runs the network in eval
mode (BatchNorm running statistics, no dropout).

**leseg extension, not part of S5** (RITM, arXiv 2102.06583): the RITM interactive protocol
(:mod:`leseg.metrics.interactive`) on the first ``noc_images`` validation images: clicks at the
centre of the largest error region, NoC@85 / NoC@90 with a ``noc_max_clicks`` (20) cap and the
number of objects never reaching them, logged as ``val/ext/NoC@85``, ``val/ext/NoC@90``,
``val/ext/NoC_fail@85``, ``val/ext/NoC_fail@90``, ``val/ext/NoC_objects``. The simulated clicks
replace the channels of the configured click generator(s) (the other generators' channels keep
their deterministic suggestion), so it runs only when ``suggestion`` contains ``click``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from leseg.components.losses import cross_entropy, normalized_focal_loss
from leseg.components.suggestions import (
    ClickSuggestion,
    Combined,
    SuggestionGenerator,
    build_suggestion,
    encode_clicks,
)
from leseg.methods.base import SegmentationModule
from leseg.metrics.interactive import Click, NoCAggregator, noc
from leseg.models.stem import widen_input_conv
from leseg.utils.logging import get_logger
from leseg.utils.seeding import generator_for

log = get_logger(__name__)

LOSSES = ("ce", "nfl")

__all__ = ["NO_SUGGESTION", "S5", "build_suggester", "pooled_fg_counts"]

#: ``method.suggestion`` values meaning "RGB only" (k = 0).
NO_SUGGESTION = ("none", "null", "")
SUGGESTION_SALT = "suggestion"


def build_suggester(spec: Any) -> SuggestionGenerator | None:
    """The suggestion generator for ``method.suggestion`` (None for ``none`` / null / empty list).

    Accepts what :func:`leseg.components.suggestions.build_suggestion` accepts (a name, a mapping
    ``{name: ..., **kwargs}``, a list → channels concatenated), plus ``none``.

    Raises:
        KeyError / ValueError / TypeError: from ``build_suggestion`` (unknown name, bad arguments),
            prefixed with the config key ``method.suggestion``.
    """
    if spec is None or (isinstance(spec, str) and spec.lower() in NO_SUGGESTION):
        return None
    if not isinstance(spec, str) and hasattr(spec, "__len__") and not hasattr(spec, "keys"):
        items = [s for s in spec if not (isinstance(s, str) and s.lower() in NO_SUGGESTION)]
        if not items:
            return None
        spec = items
    try:
        return build_suggestion(spec)
    except (KeyError, ValueError, TypeError) as err:
        raise type(err)(f"method.suggestion={spec!r}: {err}") from err


def pooled_fg_counts(pred: torch.Tensor, target: torch.Tensor, ignore_index: int = 255
                     ) -> torch.Tensor:
    """Foreground intersection and union over a batch, ignored pixels excluded.

    Args:
        pred: (B, H, W) bool predicted foreground. target: (B, H, W) int64 in {0, 1, ignore_index}.

    Returns:
        (2,) int64 tensor [|pred ∧ gt|, |pred ∨ gt|] summed over the batch (pool over the dataset
        by adding these; IoU = I / U).
    """
    valid = target != ignore_index
    gt = (target == 1) & valid
    pred = pred & valid
    return torch.stack([(pred & gt).sum(), (pred | gt).sum()]).long()


class S5(SegmentationModule):
    """S5 LightningModule (see the module docstring). Batch from a binarised DataModule.

    Batch in: ``image`` (B, 3, H, W) float32 normalised, ``label`` (B, H, W) int64 in
    {0, 1, 255}, ``name`` list[str]; :meth:`on_after_batch_transfer` adds ``suggestion``
    (B, k, H, W) float32.

    Args:
        net: segmentation network with 2 output classes (``model.num_classes=2``); its first
            convolution is widened to 3 + k inputs (:func:`leseg.models.stem.widen_input_conv`:
            RGB filters kept, the k new slices Xavier-uniform).
        num_classes: must be 2 (background, foreground).
        suggestion: ``method.suggestion``: ``block`` | ``flood`` | ``click`` | ``extreme`` |
            ``box`` | ``none``, a mapping ``{name: ..., **kwargs}``, or a list (combined).
        input_scale: resize factor of the (3 + k)-channel input (S5: 0.5); logits are upsampled
            to the label size.
        align_corners: of the logits upsampling to the label size (S5: True).
        input_align_corners: of the ``input_scale`` resize of image + suggestion (S5: False).
        suggestion_iou_channel: channel thresholded at 0.5 for ``suggestion_IoU``.
        noc_images: validation images (first in loader order) used for NoC, our extension;
            0 disables.
        noc_max_clicks, noc_thresholds: click budget (20) and IoU targets (0.85, 0.9).
        noc_every_n_epochs: run NoC in the validation of every n-th epoch (epochs n, 2n, ...;
            ``trainer.max_epochs`` = only the last one).
        loss: ``ce`` (S5: pixel-wise cross-entropy) or ``nfl`` (RITM's normalised focal loss,
            :func:`leseg.components.losses.normalized_focal_loss`, a leseg option for sparse
            hints such as clicks, where CE's early optimum is background everywhere).
        focal_gamma: γ of ``nfl`` (RITM: 2).
        optimizer, scheduler: as :class:`SegmentationModule`; ``scheduler.interval: epoch`` makes
            the schedule count epochs (S5's MultiStep milestones 60/120/150 are in epochs). Null:
            Adam lr 5e-4, constant LR.
        inference, ignore_index, class_names, name: as :class:`SegmentationModule`.

    Raises:
        ValueError: ``num_classes`` ≠ 2, a network without 2 output classes, ``input_scale`` ≤ 0,
            ``suggestion_iou_channel`` out of range, bad NoC settings, an unknown ``loss``;
            KeyError / TypeError: a bad
            ``suggestion`` (names ``method.suggestion``).
    """

    DEFAULT_OPTIMIZER = {"name": "adam", "lr": 5e-4}
    DEFAULT_SCHEDULER = {"name": "constant"}

    def __init__(self, net: nn.Module, num_classes: int = 2, ignore_index: int = 255,
                 optimizer: dict[str, Any] | None = None, scheduler: dict[str, Any] | None = None,
                 inference: dict[str, Any] | None = None, class_names: list[str] | None = None,
                 name: str = "s5", suggestion: Any = "block", input_scale: float = 1.0,
                 align_corners: bool = True, input_align_corners: bool = False,
                 suggestion_iou_channel: int = 0,
                 noc_images: int = 4, noc_max_clicks: int = 20,
                 noc_thresholds: Sequence[float] = (0.85, 0.9), noc_every_n_epochs: int = 1,
                 loss: str = "ce", focal_gamma: float = 2.0) -> None:
        if int(num_classes) != 2:
            raise ValueError(f"method.num_classes={num_classes}: S5 is a binary task "
                             f"(background, foreground), use 2")
        net_classes = getattr(net, "num_classes", 2)
        if int(net_classes) != 2:
            raise ValueError(f"model.num_classes={net_classes}: S5 predicts 2 logits "
                             f"(background, foreground); set model.num_classes=2")
        if input_scale <= 0:
            raise ValueError(f"method.input_scale must be > 0, got {input_scale}")
        if noc_images < 0 or noc_max_clicks < 1 or noc_every_n_epochs < 1:
            raise ValueError(f"method.noc_images >= 0, noc_max_clicks >= 1 and "
                             f"noc_every_n_epochs >= 1 required, got {noc_images}, "
                             f"{noc_max_clicks}, {noc_every_n_epochs}")
        if loss not in LOSSES:
            raise ValueError(f"method.loss={loss!r}: expected one of {LOSSES}")
        super().__init__(net, 2, ignore_index, optimizer, scheduler, inference, class_names, name)
        self.loss_name = loss
        self.focal_gamma = float(focal_gamma)
        self.suggester = build_suggester(suggestion)
        self.num_suggestion_channels = self.suggester.num_channels if self.suggester else 0
        k = self.num_suggestion_channels
        if k and not 0 <= suggestion_iou_channel < k:
            raise ValueError(f"method.suggestion_iou_channel={suggestion_iou_channel} is not a "
                             f"channel of the {k}-channel suggestion {self.suggester!r}")
        widen_input_conv(getattr(net, "backbone", net), 3 + k)
        self.input_scale = float(input_scale)
        self.align_corners = bool(align_corners)
        self.input_align_corners = bool(input_align_corners)
        self.suggestion_iou_channel = int(suggestion_iou_channel)
        self.noc_images = int(noc_images)
        self.noc_max_clicks = int(noc_max_clicks)
        self.noc_thresholds = tuple(float(t) for t in noc_thresholds)
        self.noc_every_n_epochs = int(noc_every_n_epochs)
        self._parts = self._flatten(self.suggester)
        self.has_clicks = any(isinstance(g, ClickSuggestion) for g in self._parts)
        self._counts: dict[str, torch.Tensor] = {}
        self._noc = NoCAggregator(self.noc_thresholds, self.noc_max_clicks)
        self._noc_seen = 0
        self.best_val_boost = float("-inf")
        if self.noc_images and not self.has_clicks:
            log.info("S5: NoC (leseg extension) needs a click suggestion; not computed for "
                     "suggestion=%r", suggestion)

    @staticmethod
    def _flatten(gen: SuggestionGenerator | None) -> list[SuggestionGenerator]:
        if gen is None:
            return []
        if isinstance(gen, Combined):
            return [p for g in gen.generators for p in S5._flatten(g)]
        return [gen]

    # -------------------------------------------------------------------------- suggestions
    def make_suggestions(self, labels: torch.Tensor, names: Sequence[str] | None,
                         training: bool) -> torch.Tensor:
        """Suggestion channels for a batch of binary targets.

        Args:
            labels: (B, H, W) int64 in {0, 1, ignore_index}; foreground = ``label == 1``.
            names: image names (seed the generator when ``training`` is False).
            training: True → torch's global generator and training randomness; False →
                ``generator_for(name, "suggestion")`` per image, deterministic.

        Returns:
            (B, k, H, W) float32 on ``labels.device`` (k = 0 without a suggestion).

        Raises:
            ValueError: evaluation without names; a generator's error for an empty target.
        """
        b, h, w = labels.shape
        if self.suggester is None:
            return labels.new_zeros((b, 0, h, w), dtype=torch.float32)
        if not training and (names is None or len(names) != b):
            raise ValueError("S5: deterministic (validation/test) suggestions need the batch's "
                             "'name' list to seed each image")
        out = []
        for i in range(b):
            gen = None if training else generator_for(str(names[i]), SUGGESTION_SALT)
            out.append(self.suggester(labels[i] == 1, gen, training=training))
        return torch.stack(out)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Add ``suggestion`` (B, k, H, W) to a batch that has a binary ``label`` and none yet."""
        if isinstance(batch, dict) and "label" in batch and "suggestion" not in batch:
            batch["suggestion"] = self.make_suggestions(batch["label"], batch.get("name"),
                                                        training=self.training)
        return batch

    def _batch_suggestion(self, batch: dict[str, Any]) -> torch.Tensor:
        if "suggestion" not in batch:  # called outside a Trainer (tests, visualisation)
            self.on_after_batch_transfer(batch, 0)
        sugg = batch["suggestion"]
        if sugg.shape[1] != self.num_suggestion_channels:
            raise ValueError(f"S5: batch suggestion has {sugg.shape[1]} channels, the network "
                             f"expects k={self.num_suggestion_channels} ({self.suggester!r})")
        return sugg

    # ------------------------------------------------------------------------------ model
    def net_input(self, images: torch.Tensor, suggestion: torch.Tensor) -> torch.Tensor:
        """(B, 3 + k, h, w) network input: images ⧺ suggestion, resized by ``input_scale``.

        Both are resized together (bilinear, ``input_align_corners``, S5: False), so a 0/1
        suggestion becomes fractional at its borders after a 0.5 resize.
        """
        x = torch.cat([images, suggestion.to(images.dtype)], dim=1) if suggestion.shape[1] \
            else images
        if self.input_scale != 1.0:
            size = (round(x.shape[-2] * self.input_scale), round(x.shape[-1] * self.input_scale))
            x = F.interpolate(x, size=size, mode="bilinear",
                              align_corners=self.input_align_corners)
        return x

    def batch_logits(self, batch: dict[str, Any]) -> torch.Tensor:
        """Logits (B, 2, H, W) at the label resolution (training forward)."""
        x = self.net_input(batch["image"], self._batch_suggestion(batch))
        logits = self.net(x)
        size = tuple(batch["label"].shape[-2:])
        if tuple(logits.shape[-2:]) != size:
            logits = F.interpolate(logits, size=size, mode="bilinear",
                                   align_corners=self.align_corners)
        return logits

    @torch.no_grad()
    def predict_foreground(self, batch: dict[str, Any]) -> torch.Tensor:
        """Foreground probabilities (B, H, W) in [0, 1] at the label size (inference protocol)."""
        x = self.net_input(batch["image"], self._batch_suggestion(batch))
        probs = self.predict_probs(x, out_size=tuple(batch["label"].shape[-2:]))
        return probs[:, 1]

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """Cross-entropy of the 2 logits against the binary target (ignore 255)."""
        logits = self.batch_logits(batch)
        if self.loss_name == "nfl":
            loss = normalized_focal_loss(logits, batch["label"], self.ignore_index,
                                         gamma=self.focal_gamma)
        else:
            loss = cross_entropy(logits, batch["label"], self.ignore_index)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["label"].shape[0])
        return loss

    # ------------------------------------------------------------------------- evaluation
    def _accumulate(self, stage: str, fg_prob: torch.Tensor, batch: dict[str, Any]) -> None:
        labels = batch["label"]
        sugg = batch["suggestion"]
        if sugg.shape[1]:
            sugg_mask = sugg[:, self.suggestion_iou_channel] >= 0.5
        else:
            sugg_mask = torch.zeros_like(labels, dtype=torch.bool)
        counts = torch.cat([pooled_fg_counts(fg_prob > 0.5, labels, self.ignore_index),
                            pooled_fg_counts(sugg_mask, labels, self.ignore_index)])
        prev = self._counts.get(stage)
        self._counts[stage] = counts if prev is None else prev + counts.to(prev.device)

    def _eval_batch(self, stage: str, batch: dict[str, Any],
                    metric) -> torch.Tensor:
        fg = self.predict_foreground(batch)
        pred = (fg > 0.5).long()
        metric.update(pred, batch["label"])
        self._accumulate(stage, fg, batch)
        return pred

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        """Pooled foreground counts, the base 2-class confusion matrix and, early on, NoC."""
        pred = self._eval_batch("val", batch, self.val_metric)
        if self._noc_due():
            self._noc_batch(batch)
        return {"pred": pred}

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        """As validation, without NoC (TTA is not used for S5)."""
        return {"pred": self._eval_batch("test", batch, self.test_metric)}

    def _pooled(self, stage: str) -> dict[str, float]:
        counts = self._counts.pop(stage, None)
        if counts is None:
            return {}
        i_pd, u_pd, i_sg, u_sg = (int(v) for v in counts.tolist())
        fg = i_pd / u_pd if u_pd else 1.0
        sg = i_sg / u_sg if u_sg else 1.0
        return {"fg_IoU": fg, "suggestion_IoU": sg, "boost": fg - sg}

    def _log_pooled(self, stage: str) -> dict[str, float]:
        result = self._pooled(stage)
        for key, value in result.items():
            self.log(f"{stage}/{key}", value, prog_bar=key != "suggestion_IoU", sync_dist=False)
        return result

    def on_validation_epoch_start(self) -> None:  # noqa: D102
        self._counts.pop("val", None)
        self._noc.reset()
        self._noc_seen = 0

    def on_validation_epoch_end(self) -> None:
        """Log fg_IoU / suggestion_IoU / boost (+ best boost), NoC (extension), base mIoU."""
        result = self._log_pooled("val")
        if result and not self.trainer.sanity_checking:
            self.best_val_boost = max(self.best_val_boost, result["boost"])
        if self.best_val_boost > float("-inf"):
            self.log("val/boost_best", self.best_val_boost, sync_dist=False)
        if self._noc_seen:
            for key, value in self.noc_summary().items():
                self.log(f"val/ext/{key}", value, sync_dist=False)
        super().on_validation_epoch_end()

    def on_test_epoch_end(self) -> None:
        """Base test metrics plus ``test/fg_IoU``, ``test/suggestion_IoU``, ``test/boost``."""
        result = self._log_pooled("test")
        super().on_test_epoch_end()
        self.test_results["single_scale"].update(result)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:  # noqa: D102
        super().on_save_checkpoint(checkpoint)
        checkpoint["leseg_best_val_boost"] = self.best_val_boost

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:  # noqa: D102
        super().on_load_checkpoint(checkpoint)
        self.best_val_boost = float(checkpoint.get("leseg_best_val_boost", float("-inf")))

    # ---------------------------------------------------- NoC (leseg extension, not S5)
    def _noc_due(self) -> bool:
        trainer = self._trainer
        if not (self.has_clicks and self.noc_images and self._noc_seen < self.noc_images):
            return False
        if trainer is None:
            return True
        return (not trainer.sanity_checking
                and (trainer.current_epoch + 1) % self.noc_every_n_epochs == 0)

    def click_input(self, clicks: Sequence[Click], static: Sequence[torch.Tensor | None],
                    shape: tuple[int, int], device: torch.device) -> torch.Tensor:
        """(k, H, W) suggestion channels for simulated clicks (NoC, leseg extension).

        Each click generator's channels encode the clicks as it would (positive; negative when it
        has a negative channel; S5's single-pixel quirk as single pixels); every other
        generator contributes its precomputed ``static`` channels.
        """
        pos = [(c.y, c.x) for c in clicks if c.positive]
        neg = [(c.y, c.x) for c in clicks if not c.positive]
        maps = []
        for part, fixed in zip(self._parts, static):
            if not isinstance(part, ClickSuggestion):
                maps.append(fixed)
                continue
            if part.reference_quirks:
                m = torch.zeros(1, *shape, device=device)
                for y, x in pos:
                    m[0, y, x] = 1.0
                maps.append(m)
                continue
            chans = [encode_clicks(pos, shape, part.radius, part.encoding, device)]
            if part.num_channels == 2:
                chans.append(encode_clicks(neg, shape, part.radius, part.encoding, device))
            maps.append(torch.stack(chans))
        return torch.cat(maps)

    @torch.no_grad()
    def noc_object(self, image: torch.Tensor, label: torch.Tensor, name: str,
                   max_clicks: int | None = None, stop_early: bool = True):
        """Run the RITM click protocol for one image's binary target (leseg extension).

        Args:
            image: (3, H, W) normalised. label: (H, W) int64 in {0, 1, 255}. name: seeds the
                non-click channels.
            max_clicks: click budget (None = ``noc_max_clicks``).
            stop_early: stop once the highest threshold is reached (False: make every click,
                for IoU-after-k-clicks curves, :mod:`leseg.stages.s5_noc_curve`).

        Returns:
            :class:`leseg.metrics.interactive.NoCResult`.
        """
        gt = label == 1
        ignore = label == self.ignore_index
        shape = tuple(gt.shape)
        static = [None if isinstance(p, ClickSuggestion)
                  else p(gt, generator_for(name, SUGGESTION_SALT), training=False)
                  for p in self._parts]

        def predictor(clicks: list[Click]) -> torch.Tensor:
            sugg = self.click_input(clicks, static, shape, gt.device)
            x = self.net_input(image[None], sugg[None])
            return self.predict_probs(x, out_size=shape)[0, 1]

        return noc(predictor, gt, max_clicks or self.noc_max_clicks, self.noc_thresholds,
                   ignore_mask=ignore if bool(ignore.any()) else None, stop_early=stop_early)

    def _noc_batch(self, batch: dict[str, Any]) -> None:
        for i in range(batch["label"].shape[0]):
            if self._noc_seen >= self.noc_images:
                return
            self._noc.update(self.noc_object(batch["image"][i], batch["label"][i],
                                             str(batch["name"][i])))
            self._noc_seen += 1

    def noc_summary(self) -> dict[str, float]:
        """``{"NoC@85", "NoC_fail@85", "NoC@90", "NoC_fail@90", "NoC_objects"}`` so far."""
        raw = self._noc.compute()
        out = {}
        for key, value in raw.items():
            if key == "num_objects":
                out["NoC_objects"] = value
            else:
                kind, thr = key.split("@")
                out[f"{'NoC' if kind == 'noc' else 'NoC_fail'}@{thr}"] = value
        return out
