"""BYOL self-supervised pretraining of a segmentation backbone (Grill et al., NeurIPS 2020).

Online network: backbone f_θ → global average pool of one feature level (layer4 by default) → y →
projector g_θ → z → predictor q_θ → p. Target network: a copy of backbone + projector (f_ξ, g_ξ),
never trained by gradients, updated after every optimiser step as ξ ← τ·ξ + (1 − τ)·θ by
:class:`leseg.callbacks.ema.EMATeacher` (attached by :meth:`BYOL.configure_callbacks`), with τ on
BYOL's cosine schedule from τ_base = 0.996 to 1 over the run (§3.2) or constant (the reference
segmentation project's 0.996, ``sem_seg/networks/byol.py``).

Loss (§3.2, eq. 2): for views v, v′ of one image, ℓ(p, z′) = 2 − 2·⟨p/‖p‖, z′/‖z′‖⟩ with z′ from
the target network (stop-gradient), symmetrised: L = ℓ(q(z_θ(v)), z_ξ(v′)) + ℓ(q(z_θ(v′)), z_ξ(v)),
each term averaged over the batch, so L ∈ [0, 8].

Optimiser: LARS (You et al. 2017; ``timm.optim.Lars``) with biases and normalisation parameters
excluded from weight decay and trust-ratio adaptation (§C: the paper's recipe, lr 0.2 × B/256,
weight decay 1.5e-6, linear warm-up then cosine decay), or SGD / AdamW over all parameters (the
reference project: SGD lr 0.03, momentum 0.9, weight decay 1e-5).

After pretraining, ``python -m leseg.export <checkpoint>`` writes the online backbone as a plain
weights file for ``model.backbone.weights=<file>``.

Logged: ``train/loss``, ``train/tau`` (τ of the last target update), ``train/z_std`` (mean
per-dimension standard deviation of the L2-normalised online projections over the batch: ≈ 1/√d for
healthy, spread-out projections, → 0 when the representation collapses to a constant).
"""

from __future__ import annotations

import copy
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from timm.optim import Lars
from torch import nn

from leseg.callbacks.ema import EMATeacher
from leseg.components.byol import byol_loss
from leseg.methods.optim import build_optimizer, build_scheduler
from leseg.models.heads.byol import BYOLNetwork, prediction_head, projection_head

__all__ = ["BYOL"]

TAU_SCHEDULES = ("cosine", "constant")
DEFAULT_OPTIMIZER = {"name": "lars", "lr": 0.2, "momentum": 0.9, "weight_decay": 1.5e-6,
                     "trust_coeff": 1e-3, "exclude_bias_and_norm": True}
DEFAULT_SCHEDULER = {"name": "cosine", "warmup_fraction": 0.01}


class BYOL(L.LightningModule):
    """BYOL pretraining LightningModule (see the module docstring for the algorithm).

    Args:
        backbone: the backbone to pretrain (built from ``model.backbone`` so that the export loads
            into the fine-tuning model with every key matched).
        projector: ``{"hidden_dim": 4096, "out_dim": 256}`` (paper) or 512/128 (reference).
        predictor: ``{"hidden_dim": 4096}``; its output width equals the projector's.
        target: ``{"tau_base": 0.996, "schedule": "cosine" | "constant", "copy_buffers": false}``
            — the EMA of the target network; ``copy_buffers`` copies the online BatchNorm running
            statistics into the target after each update (BYOL's target runs in training mode, so
            they only matter for evaluating the target).
        optimizer: ``name`` (``lars`` | ``sgd`` | ``adamw`` | ``adam``), ``lr``, ``momentum``,
            ``weight_decay``, ``exclude_bias_and_norm`` (default true for LARS: biases and
            norm parameters get neither weight decay nor LARS adaptation), LARS ``trust_coeff``
            (η, 1e-3) and ``trust_clip``. None = :data:`DEFAULT_OPTIMIZER` (the paper's LARS).
        scheduler: :func:`leseg.methods.optim.build_scheduler` keys (``name``: cosine | poly |
            constant | step, ...) plus ``warmup_fraction``: linear warm-up over this fraction of
            the run's optimiser steps (overrides ``warmup_iters``). None =
            :data:`DEFAULT_SCHEDULER` (cosine, 1 % warm-up: the paper's 10 of 1,000 epochs).
        feature_level: backbone level pooled into the representation (−1 = deepest).
        name: method name for logs.
        **descriptive: further config keys kept in ``hparams`` only (``num_classes``,
            ``ignore_index``, ``inference`` of the fine-tuning target).

    Batch: ``view1``, ``view2`` (B, 3, h, w) float32 normalised, B ≥ 2 per device.

    Raises:
        ValueError: unknown τ schedule, τ_base outside [0, 1], unknown optimiser, bad widths.
    """

    def __init__(self, backbone: nn.Module, projector: dict[str, int] | None = None,
                 predictor: dict[str, int] | None = None, target: dict[str, Any] | None = None,
                 optimizer: dict[str, Any] | None = None, scheduler: dict[str, Any] | None = None,
                 feature_level: int = -1, name: str = "byol", **descriptive: Any) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["backbone"], logger=False)
        proj_cfg = {"hidden_dim": 4096, "out_dim": 256, **(projector or {})}
        pred_cfg = {"hidden_dim": 4096, **(predictor or {})}
        target_cfg = {"tau_base": 0.996, "schedule": "cosine", "copy_buffers": False,
                      **(target or {})}
        if target_cfg["schedule"] not in TAU_SCHEDULES:
            raise ValueError(f"method.target.schedule={target_cfg['schedule']!r} is not one of "
                             f"{TAU_SCHEDULES}")
        if not 0.0 <= float(target_cfg["tau_base"]) <= 1.0:
            raise ValueError(f"method.target.tau_base must be in [0, 1], got "
                             f"{target_cfg['tau_base']}")
        self.target_cfg = target_cfg
        width = list(backbone.channels)[feature_level]
        self.online = BYOLNetwork(backbone, projection_head(width, **proj_cfg), feature_level)
        self.predictor = prediction_head(proj_cfg["out_dim"], pred_cfg["hidden_dim"])
        self.target = copy.deepcopy(self.online)
        self.target.requires_grad_(False)
        self.ema: EMATeacher | None = None

    # ------------------------------------------------------------------ networks
    @property
    def backbone(self) -> nn.Module:
        """The online backbone (the network that is exported and fine-tuned)."""
        return self.online.backbone

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Online representation y (B, C) of images (B, 3, H, W)."""
        return self.online(images)[0]

    def configure_callbacks(self) -> list[L.Callback]:
        """The target-network EMA: always attached, so the target cannot silently stay frozen."""
        self.ema = EMATeacher(alpha=float(self.target_cfg["tau_base"]),
                              schedule=str(self.target_cfg["schedule"]),
                              copy_buffers=bool(self.target_cfg["copy_buffers"]),
                              student="online", teacher="target")
        return [self.ema]

    # ------------------------------------------------------------------ training
    def shared_step(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """BYOL loss of a two-view batch and the online projections of view 1 (B, D).

        Raises:
            KeyError: the batch lacks ``view1`` / ``view2``.
            ValueError: fewer than 2 images (BatchNorm in the MLPs needs a batch).
        """
        missing = [k for k in ("view1", "view2") if k not in batch]
        if missing:
            raise KeyError(f"BYOL needs two-view batches (keys view1, view2; use "
                           f"leseg.data.unlabeled.UnlabeledDataModule), missing {missing}")
        v1, v2 = batch["view1"], batch["view2"]
        if v1.shape[0] < 2:
            raise ValueError(f"BYOL needs at least 2 images per device batch (BatchNorm in the "
                             f"projector), got {v1.shape[0]}")
        _, z1 = self.online(v1)
        _, z2 = self.online(v2)
        p1, p2 = self.predictor(z1), self.predictor(z2)
        with torch.no_grad():
            _, t1 = self.target(v1)
            _, t2 = self.target(v2)
        return byol_loss(p1, p2, t1, t2), z1.detach()

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """Symmetrised BYOL loss (scalar float32) of one two-view batch."""
        loss, z = self.shared_step(batch)
        batch_size = z.shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=batch_size)
        z_std = F.normalize(z, dim=1).std(dim=0).mean()
        self.log("train/z_std", z_std, batch_size=batch_size)
        if self.ema is not None and self.ema.last_alpha is not None:
            self.log("train/tau", float(self.ema.last_alpha), batch_size=batch_size)
        return loss

    # ------------------------------------------------------------------ optimisation
    def parameter_groups(self, weight_decay: float, exclude_bias_and_norm: bool
                         ) -> list[dict[str, Any]]:
        """Online backbone + projector + predictor parameters, split for weight decay.

        Returns:
            ``[{"params": weights, "weight_decay": weight_decay, "name": "weights"},
            {"params": biases and norm parameters, "weight_decay": 0, "name": "bias_norm"}]``
            when ``exclude_bias_and_norm`` (1-D parameters are biases and BN/GN affine
            parameters), else one group with everything; empty groups are left out. The target
            network is never in them.
        """
        params = [p for module in (self.online, self.predictor) for p in module.parameters()
                  if p.requires_grad]
        if not exclude_bias_and_norm:
            return [{"params": params, "weight_decay": weight_decay, "name": "all"}]
        groups = [{"params": [p for p in params if p.ndim > 1], "weight_decay": weight_decay,
                   "name": "weights"},
                  {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0,
                   "name": "bias_norm", "exclude_from_lars": True}]
        return [g for g in groups if g["params"]]

    def configure_optimizers(self) -> dict[str, Any]:
        """The optimiser (LARS, SGD, AdamW, Adam) and a per-step LR schedule (see class docs)."""
        opt_cfg = dict(self.hparams.optimizer or DEFAULT_OPTIMIZER)
        name = str(opt_cfg.pop("name", "lars")).lower()
        exclude = bool(opt_cfg.pop("exclude_bias_and_norm", name == "lars"))
        weight_decay = float(opt_cfg.pop("weight_decay", 0.0))
        lr = float(opt_cfg.pop("lr", DEFAULT_OPTIMIZER["lr"] if name == "lars" else 0.01))
        groups = self.parameter_groups(weight_decay, exclude)
        for g in groups:
            g["lr"] = lr
        if name == "lars":
            for g in groups:  # timm's Lars adapts only groups with weight decay unless told
                g["always_adapt"] = not g.pop("exclude_from_lars", False)
            optimizer = Lars(groups, lr=lr,
                             momentum=float(opt_cfg.get("momentum", 0.9)),
                             weight_decay=weight_decay,
                             trust_coeff=float(opt_cfg.get("trust_coeff", 1e-3)),
                             trust_clip=bool(opt_cfg.get("trust_clip", False)))
        else:
            for g in groups:
                g.pop("exclude_from_lars", None)
            optimizer = build_optimizer(groups, name=name, lr=lr, weight_decay=weight_decay,
                                        **opt_cfg)
        sched_cfg = dict(self.hparams.scheduler or DEFAULT_SCHEDULER)
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        fraction = sched_cfg.pop("warmup_fraction", None)
        if fraction is not None:
            if not 0.0 <= float(fraction) < 1.0:
                raise ValueError(f"method.scheduler.warmup_fraction must be in [0, 1), got "
                                 f"{fraction}")
            sched_cfg["warmup_iters"] = int(round(float(fraction) * total))
        scheduler = build_scheduler(optimizer, total, **sched_cfg)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1}}
