"""S5: binarised data, stem widening, suggestions in the method, pooled metrics, NoC wiring,
training on synthetic and real Cityscapes frames, and the visualisation command.

The binarisation rule itself (class-size threshold, determinism per name) is tested in
tests/test_binarize.py, the generators in tests/test_suggestions.py and NoC on scripted predictors
in tests/test_interactive_metric.py; here they are tested as wired into the data and the method.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from leseg.data.binarize import BinarizeTarget
from leseg.data.binary import BinarizedDataset
from leseg.methods.s5 import S5, build_suggester, pooled_fg_counts
from leseg.metrics.interactive import Click
from leseg.models.backbones import build_backbone
from leseg.models.stem import widen_input_conv
from leseg.tasks.train import train
from leseg.visualize_s5 import main as visualize_main

from conftest import _tiny_overrides, compose_cfg, sample_data


class _ListDataset(torch.utils.data.Dataset):
    def __init__(self, samples):
        self.samples = samples

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        return dict(self.samples[i])


def _sample(label: torch.Tensor, name: str = "img") -> dict:
    return {"image": torch.zeros(3, *label.shape), "label": label, "name": name}


# ------------------------------------------------------------------------------------- data
def test_binarized_dataset_targets_void_and_determinism() -> None:
    label = torch.zeros(8, 8, dtype=torch.long)
    label[:4] = 3
    label[:, :2] = 255  # void
    label[7, 7] = 5     # 1 pixel: below min_pixels (10 at this reference size)
    rule = BinarizeTarget(min_pixels=10, reference_size=(8, 8))
    ds = BinarizedDataset(_ListDataset([_sample(label, "a")]), rule, training=False)
    first, again = ds[0], ds[0]
    assert torch.equal(first["label"], again["label"])  # validation: same class every pass
    chosen = int(first["class_id"])
    assert chosen in (0, 3)  # 255 and the 1-pixel class 5 are never chosen
    expected = (label == chosen).long()
    assert torch.equal(first["label"], expected)  # void -> background (S5 reference)
    keep_void = BinarizedDataset(_ListDataset([_sample(label, "a")]), rule, training=False,
                                 void_as_background=False)
    out = keep_void[0]["label"]
    assert set(out.unique().tolist()) == {0, 1, 255} and bool((out[:, :2] == 255).all())


def test_binarized_dataset_retries_training_crops_then_names_the_image() -> None:
    good = torch.full((4, 4), 2, dtype=torch.long)
    bad = torch.full((4, 4), 255, dtype=torch.long)

    class Flaky(_ListDataset):  # first draw: a crop of void only, then a usable crop
        calls = 0

        def __getitem__(self, i):
            Flaky.calls += 1
            return _sample(bad if Flaky.calls == 1 else good, "frame_7")

    rule = BinarizeTarget(min_pixels=1, reference_size=(4, 4))
    assert int(BinarizedDataset(Flaky([None]), rule, training=True)[0]["class_id"]) == 2
    never = BinarizedDataset(_ListDataset([_sample(bad, "frame_7")]), rule, training=True,
                             max_tries=3)
    with pytest.raises(ValueError, match=r"frame_7.*after 3 random crops"):
        never[0]


# ------------------------------------------------------------------------------------- stem
def test_widened_stem_keeps_rgb_weights_and_xavier_initialises_the_extra_channel() -> None:
    torch.manual_seed(0)
    backbone = build_backbone("resnet18")
    rgb = backbone.body.conv1.weight.detach().clone()  # (64, 3, 7, 7)
    conv = widen_input_conv(backbone, 4)
    assert conv.weight.shape == (64, 4, 7, 7) and backbone.in_chans == 4
    assert torch.equal(conv.weight[:, :3], rgb)
    extra = conv.weight[:, 3].detach()
    bound = math.sqrt(6.0 / (1 * 49 + 64 * 49))  # Xavier-uniform with the new slice's fans
    assert float(extra.abs().max()) <= bound and float(extra.abs().max()) > 0.5 * bound
    assert float(extra.std()) == pytest.approx(bound / math.sqrt(3.0), rel=0.1)  # U(-b, b)
    assert backbone.eval()(torch.zeros(1, 4, 32, 32))[-1].shape[1] == 512
    assert widen_input_conv(backbone, 4) is conv and torch.equal(conv.weight[:, 3], extra)
    with pytest.raises(ValueError, match="4 input channels"):
        widen_input_conv(backbone, 6)


class _SuggestionEcho(nn.Module):
    """Toy 2-class 'network': logits (5 − 10·s, 10·s − 5) from input channel 3 (the suggestion)."""

    num_classes = 2

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)

    def forward(self, x):
        return self.conv(x)


def _echo_s5(**kwargs) -> S5:
    model = S5(_SuggestionEcho(), inference={"mode": "whole"}, **kwargs)
    with torch.no_grad():
        w = torch.zeros_like(model.net.conv.weight)
        w[1, 3], w[0, 3] = 10.0, -10.0
        model.net.conv.weight.copy_(w)
        model.net.conv.bias.copy_(torch.tensor([5.0, -5.0]))
    return model


def test_input_half_resize_uses_align_corners_false_for_image_and_suggestion() -> None:
    # S5's ResizeImage (torchvision TF.resize, bilinear) on the 4-channel tensor: align_corners
    # False, so output column j samples source x = 2j + 0.5 (0.5 and 2.5 for 4 -> 2 columns)
    model = _echo_s5(suggestion="block", input_scale=0.5)
    images = torch.tensor([0.0, 1.0, 2.0, 3.0]).expand(1, 3, 2, 4)
    suggestion = torch.tensor([0.0, 1.0, 0.0, 0.0]).expand(1, 1, 2, 4)
    x = model.net_input(images, suggestion)
    assert x.shape == (1, 4, 1, 2)
    assert x[0, :3, 0].tolist() == [[0.5, 2.5]] * 3
    assert x[0, 3, 0].tolist() == [0.5, 0.0]
    # align_corners=True (the logits' upsampling setting) would sample x = 0 and 3 instead
    corners = _echo_s5(suggestion="block", input_scale=0.5, input_align_corners=True)
    assert corners.net_input(images, suggestion)[0, 3, 0].tolist() == [0.0, 0.0]
    assert model.align_corners is True  # logits are still upsampled with align_corners=True


def test_s5_widens_the_network_and_checks_classes_and_suggestion() -> None:
    model = _echo_s5(suggestion={"name": "click", "num_negative": 1})
    assert model.num_suggestion_channels == 2 and model.net.conv.weight.shape[1] == 5
    assert build_suggester("none") is None and build_suggester(["none"]) is None
    assert S5(_SuggestionEcho(), suggestion="none").net.conv.weight.shape[1] == 3
    with pytest.raises(KeyError, match="method.suggestion"):
        S5(_SuggestionEcho(), suggestion="scribble")
    bad = _SuggestionEcho()
    bad.num_classes = 19
    with pytest.raises(ValueError, match="model.num_classes=19"):
        S5(bad)


# ----------------------------------------------------------------- suggestions and metrics
def test_eval_suggestions_are_seeded_per_image_and_training_ones_are_random() -> None:
    model = _echo_s5(suggestion=["block", {"name": "click", "num_positive": 3}, "extreme"])
    labels = torch.zeros(2, 32, 64, dtype=torch.long)
    labels[:, 4:20, 8:40] = 1
    a = model.make_suggestions(labels, ["x", "y"], training=False)
    b = model.make_suggestions(labels, ["x", "y"], training=False)
    assert a.shape == (2, 3, 32, 64) and torch.equal(a, b)
    assert not torch.equal(a[0, 1], a[1, 1])  # other image name, other random clicks
    torch.manual_seed(0)
    t1 = model.make_suggestions(labels, None, training=True)
    t2 = model.make_suggestions(labels, None, training=True)
    assert not torch.equal(t1[:, 1], t2[:, 1])
    with pytest.raises(ValueError, match="name"):
        model.make_suggestions(labels, None, training=False)


def test_pooled_counts_hand_computed() -> None:
    target = torch.tensor([[[1, 1, 0, 255]], [[0, 1, 0, 0]]])
    pred = torch.tensor([[[True, False, True, True]], [[False, True, False, False]]])
    # image 1: I = 1, U = 3 (pixel 4 ignored); image 2: I = 1, U = 1
    assert pooled_fg_counts(pred, target).tolist() == [2, 4]


def test_validation_pools_prediction_and_suggestion_iou_and_boost() -> None:
    model = _echo_s5(suggestion="box")  # the toy net predicts exactly the suggestion
    model.eval()
    labels = torch.zeros(2, 16, 16, dtype=torch.long)
    labels[0, 2:6, 2:4] = 1
    labels[0, 4:6, 4:8] = 1          # L-shape: box 4x6 = 24 px, mask 8 + 8 = 16 px
    labels[1, 8:12, 8:12] = 1        # square: box = mask, 16 px
    batch = {"image": torch.zeros(2, 3, 16, 16), "label": labels, "name": ["p", "q"]}
    model.on_after_batch_transfer(batch, 0)
    model._eval_batch("val", batch, model.val_metric)
    result = model._pooled("val")
    assert result["fg_IoU"] == pytest.approx(32 / 40)  # (16 + 16) / (24 + 16)
    assert result["suggestion_IoU"] == pytest.approx(32 / 40)
    assert result["boost"] == pytest.approx(0.0)


def test_click_input_replaces_click_channels_and_keeps_the_others() -> None:
    model = _echo_s5(suggestion=["box", {"name": "click", "num_negative": 1, "radius": 1}])
    static = [torch.ones(1, 8, 8), None]
    maps = model.click_input([Click(2, 2, True), Click(6, 6, False)], static, (8, 8), "cpu")
    assert maps.shape == (3, 8, 8) and torch.equal(maps[0], torch.ones(8, 8))
    assert maps[1, 2, 2] == 1 and maps[1, 6, 6] == 0 and maps[2, 6, 6] == 1
    assert int(maps[1].sum()) == 5 and int(maps[2].sum()) == 5  # radius-1 disks: 5 pixels


def test_noc_runs_the_click_protocol_through_the_network() -> None:
    # The toy net echoes the positive-click disk: one click at the centre of a disk-shaped object
    # of radius 2 recovers it (IoU 1 after the first click, NoC@85 = NoC@90 = 1).
    model = _echo_s5(suggestion={"name": "click", "radius": 2}, noc_max_clicks=5)
    model.eval()
    label = torch.zeros(9, 9, dtype=torch.long)
    yy, xx = torch.meshgrid(torch.arange(9), torch.arange(9), indexing="ij")
    label[(yy - 4) ** 2 + (xx - 4) ** 2 <= 4] = 1
    result = model.noc_object(torch.zeros(3, 9, 9), label, "disk")
    assert result.clicks[0] == Click(4, 4, True) and result.noc == {0.85: 1, 0.9: 1}


def test_reference_schedule_steps_per_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    # S5: Adam 5e-4 (L2 2e-4), MultiStep at epochs 60/120/150 with gamma 0.3, counted in epochs.
    model = _echo_s5(optimizer={"name": "adam", "lr": 5e-4, "weight_decay": 2e-4},
                     scheduler={"name": "step", "milestones": [60, 120, 150], "gamma": 0.3,
                                "interval": "epoch"})
    fake = type("T", (), {"max_epochs": 175, "estimated_stepping_batches": 10_000})()
    monkeypatch.setattr(type(model), "trainer", property(lambda self: fake))
    conf = model.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    assert isinstance(opt, torch.optim.Adam) and conf["lr_scheduler"]["interval"] == "epoch"
    assert opt.param_groups[0]["weight_decay"] == 2e-4
    lrs = {}
    for epoch in range(175):
        lrs[epoch] = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
    expected = {0: 5e-4, 59: 5e-4, 60: 1.5e-4, 119: 1.5e-4, 120: 4.5e-5, 150: 1.35e-5, 174: 1.35e-5}
    assert {e: lrs[e] for e in expected} == pytest.approx(expected)
    model.hparams.scheduler["interval"] = "iteration"
    with pytest.raises(ValueError, match="scheduler.interval"):
        model.configure_optimizers()


# ------------------------------------------------------------------------ training runs
def _tiny_s5_overrides(data_dir: Path) -> list[str]:
    """conftest's tiny synthetic_city run, with the binarised data config and S5."""
    base = [o for o in _tiny_overrides("synthetic_city")
            if not o.startswith(("data=", "data.train_transforms"))]
    return base + [f"paths.data_dir={data_dir}", "data=synthetic_city_binary",
                   "inference=synthetic_city_binary", "method=s5", "method.input_scale=0.5",
                   "method.noc_images=1", "method.noc_max_clicks=2", "method.noc_every_n_epochs=1",
                   "callbacks.model_checkpoint.monitor=val/boost"]


def test_few_iterations_on_synthetic_data_then_visualise(data_dir: Path, tmp_path: Path) -> None:
    cfg = compose_cfg("train", _tiny_s5_overrides(data_dir) + [
        "method.suggestion={name: click, num_negative: 1}", "trainer.max_epochs=1",
        "trainer.limit_val_batches=1", "trainer.limit_test_batches=1"], tmp_path / "run")
    metrics, objects = train(cfg)
    assert objects["trainer"].global_step == 2  # 1 epoch x 2 batches
    for key in ("val/fg_IoU", "val/suggestion_IoU", "val/boost", "val/boost_best",
                "val/ext/NoC@85", "val/ext/NoC_fail@90", "test/fg_IoU", "test/boost"):
        assert key in metrics, key
    assert metrics["val/boost"] == pytest.approx(metrics["val/fg_IoU"]
                                                 - metrics["val/suggestion_IoU"], abs=1e-6)
    assert 1 <= metrics["val/ext/NoC@85"] <= 2 and metrics["val/ext/NoC_objects"] == 1
    ckpt = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    out = visualize_main([f"ckpt_path={ckpt}", "n=2", f"out={tmp_path / 'grid.png'}"])
    grid = np.asarray(Image.open(out))
    assert grid.ndim == 3 and grid.shape[2] == 3
    assert grid.shape[0] > 2 * 64 and grid.shape[1] > 4 * 128  # 2 rows x 4 panels of 64x128


def test_few_iterations_on_real_cityscapes_sample_frames_and_visualise(tmp_path: Path) -> None:
    root = sample_data("cityscapes_sample")
    cfg = compose_cfg("train", [
        "experiment=s5_deeplabv3plus-r18-d16_synthetic-city-binary-64x128",
        "data=cityscapes_binary", "inference=cityscapes_binary", f"data.root={root}",
        "data.train_set=val", "data.train_transforms={resize: [64, 128]}",
        "data.val_transforms={resize: [64, 128]}", "data.batch_size=2", "data.val_batch_size=2",
        "data.num_workers=0", "data.persistent_workers=false", "data.pin_memory=false",
        "model.head.channels=32", "method.suggestion=flood", "method.noc_images=0",
        "trainer.max_epochs=1", "trainer.num_sanity_val_steps=0", "logger=none",
        "~callbacks.progress_bar", "~callbacks.model_summary", "trainer.enable_progress_bar=false",
        "callbacks.model_checkpoint.save_last=false",
        "trainer.enable_model_summary=false", "test=false", "extras.print_config=false",
        f"paths.data_dir={tmp_path}"], tmp_path / "run")
    metrics, objects = train(cfg)
    assert objects["trainer"].global_step == 1
    assert 0.0 <= metrics["val/fg_IoU"] <= 1.0 and 0.0 <= metrics["val/suggestion_IoU"] <= 1.0
    ckpt = objects["trainer"].checkpoint_callback.best_model_path
    out = visualize_main([f"ckpt_path={ckpt}", "n=2"])
    assert out == tmp_path / "run" / "s5_val_grid.png"
    assert np.asarray(Image.open(out)).shape[0] > 2 * 64


def test_visualise_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="ckpt_path"):
        visualize_main(["n=2"])
    with pytest.raises(SystemExit, match="unknown key 'rows'"):
        visualize_main(["ckpt_path=x", "rows=2"])
    with pytest.raises(FileNotFoundError, match="no checkpoint file"):
        visualize_main([f"ckpt_path={tmp_path / 'missing.ckpt'}"])


def test_s5_method_does_not_import_the_data_layer() -> None:
    # methods receive samples from a DataModule; the shared per-image seeding is in leseg.utils
    import ast
    import inspect

    import leseg.methods.s5 as s5_module

    tree = ast.parse(inspect.getsource(s5_module))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {a.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for a in node.names}
    assert "leseg.utils.seeding" in imported
    assert not [m for m in imported if m and m.startswith("leseg.data")]
