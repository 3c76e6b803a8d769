"""BYOL: loss, target network and its τ schedule, optimiser groups, export into the fine-tuning
model, the linear-probe monitor, and a few iterations on real frames."""

from __future__ import annotations

import json
import math
from pathlib import Path

import hydra
import lightning as L
import pytest
import torch
from timm.optim import Lars
from torch import nn
from torch.utils.data import DataLoader

from leseg.callbacks.linear_probe import LinearProbe, fit_linear_probe
from leseg.components.byol import byol_loss, normalized_regression_loss
from leseg.components.ema import cosine_tau
from leseg.data.datamodules import collate_samples
from leseg.data.unlabeled import UnlabeledDataModule
from leseg.export import export_backbone
from leseg.export import main as export_main
from leseg.methods.byol import BYOL
from leseg.models.backbones import build_backbone
from leseg.tasks.train import train

from conftest import TINY_CITY, compose_cfg, sample_data

SMALL_MLP = {"projector": {"hidden_dim": 32, "out_dim": 16}, "predictor": {"hidden_dim": 32}}
TINY_SYNTHETIC = [f"data.synthetic.{k}={v}" for k, v in TINY_CITY.items() if k != "kind"]


def experiment_cfg(experiment: str, data_dir: Path, out: Path, *overrides: str):
    """``experiment`` composed as train.py would, shrunk to a CPU test (tiny data, no logger)."""
    return compose_cfg("train", [
        f"experiment={experiment}", f"paths.data_dir={data_dir}", "logger=none",
        "~callbacks.progress_bar", "~callbacks.model_summary", "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false", "trainer.num_sanity_val_steps=0",
        "data.num_workers=0", "data.persistent_workers=false", "extras.print_config=false",
        *TINY_SYNTHETIC, *overrides], out)


def make_byol(norm: str = "bn", **kwargs) -> BYOL:
    torch.manual_seed(0)
    return BYOL(build_backbone("resnet18", norm=norm), **{**SMALL_MLP, **kwargs})


class RandomViews(torch.utils.data.Dataset):
    """n two-view samples of random (3, 32, 32) images."""

    def __init__(self, n: int = 8) -> None:
        g = torch.Generator().manual_seed(0)
        self.views = torch.randn(n, 2, 3, 32, 32, generator=g)

    def __len__(self) -> int:
        return len(self.views)

    def __getitem__(self, i: int) -> dict:
        return {"view1": self.views[i, 0], "view2": self.views[i, 1], "name": str(i)}


def fit(module: BYOL, steps: int, tmp_path: Path, **trainer_kwargs) -> L.Trainer:
    trainer = L.Trainer(accelerator="cpu", max_steps=steps, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path, **trainer_kwargs)
    loader = DataLoader(RandomViews(), batch_size=4, shuffle=False, drop_last=True,
                        collate_fn=collate_samples)
    trainer.fit(module, train_dataloaders=loader)
    return trainer


# ------------------------------------------------------------------------------------ loss
def test_loss_on_hand_computed_vectors() -> None:
    e1, e2 = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    assert normalized_regression_loss(e1, 5 * e1).item() == pytest.approx(0.0)  # same direction
    assert normalized_regression_loss(e1, e2).item() == pytest.approx(2.0)  # orthogonal
    assert normalized_regression_loss(e1, -3 * e1).item() == pytest.approx(4.0)  # opposite
    diag = torch.tensor([[1.0, 1.0]])
    assert normalized_regression_loss(diag, e1).item() == pytest.approx(2 - math.sqrt(2))
    # batch mean: (0 + 2) / 2
    assert normalized_regression_loss(torch.cat([e1, e1]), torch.cat([e1, e2])).item() == \
        pytest.approx(1.0)
    # symmetrised: l(p1, z2) + l(p2, z1) = l(e1, e2) + l(diag, e1) = 2 + (2 - sqrt 2)
    assert byol_loss(e1, diag, e1, e2).item() == pytest.approx(4 - math.sqrt(2))
    with pytest.raises(ValueError, match=r"\(B, D\)"):
        normalized_regression_loss(e1, torch.ones(1, 3))


def test_loss_stops_the_gradient_of_the_target() -> None:
    p = torch.tensor([[1.0, 2.0]], requires_grad=True)
    z = torch.tensor([[2.0, -1.0]], requires_grad=True)
    normalized_regression_loss(p, z).backward()
    assert p.grad is not None and p.grad.abs().sum() > 0
    assert z.grad is None


# ------------------------------------------------------------------------------------ target
def test_target_gets_no_gradient_and_is_not_optimised() -> None:
    module = make_byol()
    batch = next(iter(DataLoader(RandomViews(), batch_size=4, collate_fn=collate_samples)))
    loss, _ = module.shared_step(batch)
    loss.backward()
    assert all(p.grad is None and not p.requires_grad for p in module.target.parameters())
    online = list(module.online.parameters()) + list(module.predictor.parameters())
    assert all(p.grad is not None for p in online)
    groups = module.parameter_groups(1e-6, exclude_bias_and_norm=True)
    optimised = {id(p) for g in groups for p in g["params"]}
    assert optimised == {id(p) for p in online}
    assert not optimised & {id(p) for p in module.target.parameters()}


def test_target_starts_as_a_copy_of_the_online_network() -> None:
    module = make_byol()
    online, target = module.online.state_dict(), module.target.state_dict()
    assert online.keys() == target.keys()
    assert all(torch.equal(online[k], target[k]) for k in online)
    assert module.target.backbone is not module.online.backbone


def test_tau_schedule_end_points(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cosine_tau(0, 10, 0.996) == pytest.approx(0.996)
    assert cosine_tau(10, 10, 0.996) == pytest.approx(1.0)
    assert cosine_tau(5, 10, 0.996) == pytest.approx(0.998)  # halfway: (0.996 + 1) / 2

    import leseg.callbacks.ema as ema_module

    alphas: list[float] = []
    original = ema_module.ema_update

    def recording_update(teacher, student, alpha, copy_buffers=False):
        alphas.append(alpha)
        original(teacher, student, alpha, copy_buffers)

    monkeypatch.setattr(ema_module, "ema_update", recording_update)
    fit(make_byol(target={"tau_base": 0.9, "schedule": "cosine"}), 4, tmp_path)
    # one update per optimiser step k = 1..4 of K = 4: τ_k = 1 − 0.1·(cos(πk/4) + 1)/2
    assert alphas == pytest.approx([1 - 0.1 * (math.cos(math.pi * k / 4) + 1) / 2
                                    for k in range(1, 5)])
    assert alphas[-1] == pytest.approx(1.0)

    alphas.clear()
    fit(make_byol(target={"tau_base": 0.99, "schedule": "constant"}), 3, tmp_path)
    assert alphas == [0.99, 0.99, 0.99]


def test_constant_tau_moves_the_target_by_the_ema_formula(tmp_path: Path) -> None:
    module = make_byol(target={"tau_base": 1.0, "schedule": "constant"},
                       optimizer={"name": "sgd", "lr": 0.1, "momentum": 0.0})
    start = {k: v.clone() for k, v in module.target.state_dict().items()}
    fit(module, 2, tmp_path)
    assert module.ema.last_alpha == 1.0
    # τ = 1 freezes the target while the online network trains
    assert all(torch.equal(module.target.state_dict()[k], v) for k, v in start.items()
               if k.endswith("weight"))
    assert not torch.equal(module.online.backbone.body.conv1.weight,
                           start["backbone.body.conv1.weight"])

    module = make_byol(target={"tau_base": 0.5, "schedule": "constant"},
                       optimizer={"name": "sgd", "lr": 0.1, "momentum": 0.0})
    xi_0 = module.target.backbone.body.conv1.weight.detach().clone()
    fit(module, 1, tmp_path)
    theta_1 = module.online.backbone.body.conv1.weight
    assert not torch.equal(theta_1, xi_0)
    # τ = 0.5 after the one step: ξ₁ = 0.5·ξ₀ + 0.5·θ₁
    assert torch.allclose(module.target.backbone.body.conv1.weight, (xi_0 + theta_1) / 2,
                          atol=1e-6)


# ------------------------------------------------------------------------------------ optimiser
def test_lars_excludes_biases_and_norms(tmp_path: Path) -> None:
    module = make_byol()
    trainer = fit(module, 1, tmp_path)
    optimizer = trainer.optimizers[0]
    assert isinstance(optimizer, Lars)
    by_name = {g["name"]: g for g in optimizer.param_groups}
    assert by_name["weights"]["weight_decay"] == pytest.approx(1.5e-6)
    assert by_name["weights"]["always_adapt"] is True
    assert by_name["bias_norm"]["weight_decay"] == 0.0
    assert by_name["bias_norm"]["always_adapt"] is False
    assert all(p.ndim <= 1 for p in by_name["bias_norm"]["params"])
    assert all(p.ndim > 1 for p in by_name["weights"]["params"])

    module = make_byol(optimizer={"name": "sgd", "lr": 0.03, "weight_decay": 1e-5,
                                  "exclude_bias_and_norm": False})
    sgd = fit(module, 1, tmp_path).optimizers[0]
    assert isinstance(sgd, torch.optim.SGD) and len(sgd.param_groups) == 1
    assert sgd.param_groups[0]["weight_decay"] == pytest.approx(1e-5)


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="schedule='linear'"):
        make_byol(target={"schedule": "linear"})
    with pytest.raises(ValueError, match="at least 2 images"):
        module = make_byol()
        module.shared_step({"view1": torch.randn(1, 3, 32, 32), "view2": torch.randn(1, 3, 32, 32)})
    with pytest.raises(KeyError, match="view1"):
        make_byol().shared_step({"image": torch.randn(2, 3, 32, 32)})


# ------------------------------------------------------------------------------------ export
@pytest.mark.parametrize("norm", ["bn", "ws_gn"])
def test_exported_backbone_loads_into_the_finetuning_model(data_dir: Path, tmp_path: Path,
                                                           norm: str) -> None:
    module = make_byol(norm=norm)
    with torch.no_grad():
        module.online.backbone.body.layer3[0].conv1.weight.add_(1.0)  # differs from any init
    ckpt = tmp_path / "checkpoints" / "byol.ckpt"
    ckpt.parent.mkdir()
    torch.save({"state_dict": module.state_dict()}, ckpt)
    path = export_backbone(ckpt)
    assert path == tmp_path / "backbone_online.pth"
    assert json.loads(Path(f"{path}.json").read_text())["network"] == "online"

    cfg = experiment_cfg("supervised_fcn8s-r18_synthetic-city-128x256", data_dir, tmp_path / "ft",
                         f"model.backbone.norm={norm}", f"model.backbone.weights={path}")
    assert cfg.model.name == "fcn8s-r18"
    assert "strict" not in cfg.model.backbone  # build_backbone's default: every key must match
    net = hydra.utils.instantiate(cfg.model)
    expected = module.online.backbone.body.state_dict()
    loaded = net.backbone.body.state_dict()
    assert loaded.keys() == expected.keys()
    assert all(torch.equal(loaded[k], expected[k]) for k in expected)


def test_export_errors_name_the_checkpoint(tmp_path: Path, capsys) -> None:
    ckpt = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"model.conv.weight": torch.zeros(1)}}, ckpt)
    with pytest.raises(ValueError, match=r"other.ckpt has no weights under 'net.backbone.body.'"):
        export_backbone(ckpt)
    assert export_main([str(tmp_path / "missing.ckpt")]) == 2
    assert "no checkpoint file" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ probe
def test_linear_probe_fits_separable_features() -> None:
    # class = sign of channel 0 at each pixel: a linear classifier must get it right
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(2, 3, 4, 4, generator=g)
    labels = (feats[:, 0] > 0).long()
    labels[0, 0, 0] = 255
    classifier = fit_linear_probe(feats, labels, num_classes=2, steps=200, lr=0.5)
    pred = classifier(feats).argmax(dim=1)
    valid = labels != 255
    assert torch.equal(pred[valid], labels[valid])

    class Identity(nn.Module):  # "backbone" whose only feature is the image itself
        def __init__(self) -> None:
            super().__init__()
            self.p = nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return [x]

    images = torch.randn(4, 3, 8, 8, generator=g)
    images[:, 1] = torch.sign(images[:, 1]) * (1 + images[:, 1].abs())  # margin 1 around 0
    labels = (images[:, 1] > 0).long()
    probe = LinearProbe(levels=[-1], steps=200, lr=0.5)
    result = probe.probe(Identity(), images, labels, num_classes=2)
    assert result["mIoU"] == pytest.approx(1.0) and result["aAcc"] == pytest.approx(1.0)


# ------------------------------------------------------------------------------------ end to end
def test_pretrain_export_finetune_through_the_configs(data_dir: Path, tmp_path: Path) -> None:
    cfg = experiment_cfg(
        "byol_r18_synthetic-city-unlabeled-128x128", data_dir, tmp_path / "byol", "logger=csv",
        "trainer.max_epochs=2", "data.batch_size=4", "data.views.size=[32,32]",
        "method.projector.hidden_dim=32", "method.projector.out_dim=16",
        "method.predictor.hidden_dim=32", "callbacks.linear_probe.every_n_epochs=1",
        "data.probe.num_images=4")
    metrics, objects = train(cfg)
    assert objects["trainer"].global_step == 4  # 8 images / batch 4, 2 epochs
    assert math.isfinite(metrics["train/loss"]) and 0.0 <= metrics["probe/mIoU"] <= 1.0
    assert objects["model"].ema.last_alpha == pytest.approx(1.0)
    csv = (Path(cfg.paths.output_dir) / "csv" / "metrics.csv").read_text().splitlines()
    header = csv[0].split(",")
    probe_rows = [dict(zip(header, r.split(","))) for r in csv[1:]]
    probe_steps = [int(r["step"]) for r in probe_rows if r.get("probe/mIoU")]
    assert probe_steps[0] == 0 and len(probe_steps) == 3  # baseline, after epoch 1 and 2
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, weights_only=True)  # plain hyper-parameters only
    assert ckpt["hyper_parameters"]["projector"] == {"hidden_dim": 32, "out_dim": 16}
    assert export_main([str(last)]) == 0
    weights = Path(cfg.paths.output_dir) / "backbone_online.pth"

    finetune = experiment_cfg(
        "supervised_fcn8s-r18_synthetic-city-128x256", data_dir, tmp_path / "ft", "data.split=full",
        f"model.backbone.weights={weights}", "trainer.max_steps=1", "test=false",
        "data.batch_size=2", "trainer.limit_val_batches=1", "trainer.val_check_interval=1",
        "data.train_transforms.crop_size=[64,128]")
    _, ft_objects = train(finetune)
    online = objects["model"].online.backbone.body.state_dict()
    # the fine-tuning run started from the exported weights (one SGD step later: close, not equal)
    start = ft_objects["model"].net.backbone.body.layer4[1].conv2.weight
    assert torch.allclose(start, online["layer4.1.conv2.weight"], atol=1e-2)


def test_a_few_iterations_on_real_frames(tmp_path: Path) -> None:
    city = sample_data("cityscapes_sample")
    dm = UnlabeledDataModule(
        name="cityscapes_sample", root=str(city), sources=["leftImg8bit/val/*/*_leftImg8bit.png"],
        views={"pipeline": "reference", "crop_size": [64, 64]}, batch_size=2,
        probe={"dataset": "cityscapes", "split": "val", "num_images": 2, "resize": [64, 128]})
    module = make_byol(optimizer={"name": "sgd", "lr": 0.03, "weight_decay": 1e-5},
                       target={"tau_base": 0.996, "schedule": "constant"})
    target_before = module.target.backbone.body.conv1.weight.detach().clone()
    probe = LinearProbe(steps=20)
    trainer = L.Trainer(accelerator="cpu", max_steps=3, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path, callbacks=[probe])
    trainer.fit(module, datamodule=dm)
    assert trainer.global_step == 3
    assert math.isfinite(float(trainer.callback_metrics["train/loss"]))
    assert not torch.equal(module.target.backbone.body.conv1.weight, target_before)
    assert probe.last_result is not None and 0.0 <= probe.last_result["aAcc"] <= 1.0
    assert probe.initial_result is not None  # the initialisation's baseline, before step 1
