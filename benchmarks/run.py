"""Throughput benchmarks for the leseg foundation; prints a markdown table and writes JSON + markdown.

    python benchmarks/run.py [--device cpu|cuda] [--out benchmarks/results] [--quick]

Measures (images/s, higher is better; wall-clock, after warm-up iterations):
1. training throughput of the supervised baseline through Lightning against a plain PyTorch loop on
   the same model, batch and optimiser — the framework's overhead as a ratio (the two alternate
   for 3 rounds; medians), and Lightning's own per-step cost in CPU milliseconds on a near-empty
   network;
2. data loading at Cityscapes resolution (2048x1024 frames, the Cityscapes training transforms:
   random scale 0.5–2, crop 769, flip) through the real DataModule code;
3. whole-image against sliding-window evaluation throughput at 1024x2048.
Results are machine-specific; the device is recorded with them.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from leseg.inference.predictor import Predictor
from leseg.methods.supervised import SupervisedSegmentation
from leseg.models.backbones import build_backbone
from leseg.models.heads import DeepLabV3PlusHead
from leseg.models.segmentor import Segmentor
from leseg.utils.io import atomic_write_json, atomic_write_text


def make_net(backbone: str, num_classes: int = 19, output_stride: int = 16) -> torch.nn.Module:
    from functools import partial

    return Segmentor(build_backbone(backbone, output_stride=output_stride),
                     partial(DeepLabV3PlusHead, channels=128), num_classes=num_classes)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class _Timer(L.Callback):
    def __init__(self, warmup: int, clock=time.perf_counter) -> None:
        self.warmup, self.start, self.end, self.steps = warmup, None, None, 0
        self.clock = clock

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: D102
        if batch_idx == self.warmup:
            _sync(str(pl_module.device))
            self.start = self.clock()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: D102
        if batch_idx >= self.warmup:
            self.steps += 1
        _sync(str(pl_module.device))
        self.end = self.clock()


def _dict_loader(images: torch.Tensor, labels: torch.Tensor, batch: int) -> DataLoader:
    ds = TensorDataset(images, labels)
    return DataLoader(ds, batch_size=batch, shuffle=False, drop_last=True,
                      collate_fn=lambda items: {"image": torch.stack([i for i, _ in items]),
                                                "label": torch.stack([lbl for _, lbl in items])})


def _lightning_run(device: str, backbone: str, batch: int, images: torch.Tensor,
                   labels: torch.Tensor, steps: int, warmup: int, opt_cfg: dict) -> float:
    """Images/s of ``steps`` timed Lightning steps (after ``warmup``) of the supervised module."""
    torch.manual_seed(0)
    module = SupervisedSegmentation(make_net(backbone), num_classes=19, optimizer=dict(opt_cfg),
                                    scheduler={"name": "poly", "power": 0.9})
    timer = _Timer(warmup)
    trainer = L.Trainer(accelerator="gpu" if device.startswith("cuda") else "cpu", devices=1,
                        max_steps=steps + warmup, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[timer],
                        limit_val_batches=0, num_sanity_val_steps=0)
    trainer.fit(module, train_dataloaders=_dict_loader(images, labels, batch))
    return timer.steps * batch / (timer.end - timer.start)


def _plain_run(device: str, backbone: str, batch: int, images: torch.Tensor,
               labels: torch.Tensor, steps: int, warmup: int, opt_cfg: dict) -> float:
    """Images/s of the same steps in a plain PyTorch loop (same net init, SGD + poly LR)."""
    torch.manual_seed(0)
    net = make_net(backbone).to(device).train()
    from leseg.components.losses import cross_entropy
    from leseg.methods.optim import build_optimizer, build_scheduler, param_groups

    cfg = dict(opt_cfg)
    groups = param_groups(net.backbone, net.parameters(), lr=cfg["lr"], head_lr_mult=cfg.pop("head_lr_mult"))
    opt = build_optimizer(groups, **cfg)
    sched = build_scheduler(opt, steps + warmup, name="poly", power=0.9)
    start = None
    for i, b in enumerate(_dict_loader(images, labels, batch)):
        if i == warmup:
            _sync(device)
            start = time.perf_counter()
        x, y = b["image"].to(device), b["label"].to(device)
        loss = cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    _sync(device)
    return steps * batch / (time.perf_counter() - start)


def bench_training(device: str, backbone: str, batch: int, size: tuple[int, int], steps: int,
                   warmup: int, rounds: int = 3) -> dict:
    """Lightning vs plain loop: same net init, batch, SGD + poly LR; returns images/s of both.

    The two runs alternate for ``rounds`` rounds (Lightning first in odd rounds, plain first in
    even ones), so that a change of machine load or a first-run effect (allocator, caches) hits
    both; the reported figures are the medians, the ratio the median of the per-round ratios.
    """
    h, w = size
    n = batch * (steps + warmup)
    g = torch.Generator().manual_seed(0)
    images = torch.randn(n, 3, h, w, generator=g)
    labels = torch.randint(0, 19, (n, h, w), generator=g)
    opt_cfg = {"name": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4, "head_lr_mult": 10.0}
    args = (device, backbone, batch, images, labels, steps, warmup, opt_cfg)
    lightning, plain = [], []
    for r in range(rounds):
        if r % 2 == 0:
            lightning.append(_lightning_run(*args))
            plain.append(_plain_run(*args))
        else:
            plain.append(_plain_run(*args))
            lightning.append(_lightning_run(*args))
    ratios = [p / li for p, li in zip(plain, lightning, strict=True)]
    return {"backbone": backbone, "batch": batch, "size": f"{h}x{w}", "rounds": rounds,
            "lightning_img_s": statistics.median(lightning), "plain_img_s": statistics.median(plain),
            "overhead_ratio": statistics.median(ratios), "round_ratios": ratios}


class _TinyNet(torch.nn.Module):
    """Two convolutions: a training step with almost no compute, to expose per-step overhead."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.head = torch.nn.Conv2d(8, 19, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.head(self.backbone(x))


def bench_step_overhead(steps: int, warmup: int = 20) -> dict:
    """Lightning's per-step cost beyond the plain loop, in CPU milliseconds (process time, one
    thread, a 2-conv network on 2×3×16×16): the hooks, the optimiser closure and ``self.log``,
    insensitive to other processes' load. Compared with the per-step time of the training row
    this bounds what Lightning itself can add to that ratio."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        g = torch.Generator().manual_seed(0)
        n = 2 * (steps + warmup)
        images, labels = torch.randn(n, 3, 16, 16, generator=g), torch.randint(0, 19, (n, 16, 16), generator=g)
        opt_cfg = {"name": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4, "head_lr_mult": 10.0}
        module = SupervisedSegmentation(_TinyNet(), num_classes=19, optimizer=dict(opt_cfg),
                                        scheduler={"name": "poly", "power": 0.9})
        timer = _Timer(warmup, clock=time.process_time)
        trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=steps + warmup, logger=False,
                            enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False, callbacks=[timer], limit_val_batches=0,
                            num_sanity_val_steps=0)
        trainer.fit(module, train_dataloaders=_dict_loader(images, labels, 2))
        lightning_ms = (timer.end - timer.start) / timer.steps * 1e3

        from leseg.components.losses import cross_entropy
        from leseg.methods.optim import build_optimizer, build_scheduler, param_groups

        net, cfg = _TinyNet().train(), dict(opt_cfg)
        opt = build_optimizer(param_groups(net.backbone, net.parameters(), lr=cfg["lr"],
                                           head_lr_mult=cfg.pop("head_lr_mult")), **cfg)
        sched = build_scheduler(opt, steps + warmup, name="poly", power=0.9)
        start = None
        for i, b in enumerate(_dict_loader(images, labels, 2)):
            if i == warmup:
                start = time.process_time()
            loss = cross_entropy(net(b["image"]), b["label"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        plain_ms = (time.process_time() - start) / steps * 1e3
    finally:
        torch.set_num_threads(threads)
    return {"lightning_ms": lightning_ms, "plain_ms": plain_ms,
            "overhead_ms": lightning_ms - plain_ms}


def bench_loading(workers: int, n_frames: int, batches: int) -> dict:
    """Cityscapes-resolution loading through CityscapesDataModule with the training transforms."""
    from leseg.data.datamodules import CityscapesDataModule
    from leseg.data.synthetic import ensure_synthetic

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "synthetic_city_full"
        ensure_synthetic("city", root, num_train=n_frames, num_val=1, height=1024, width=2048, seed=0)
        dm = CityscapesDataModule(
            name="bench", root=str(root), num_classes=19, batch_size=4, num_workers=workers,
            persistent_workers=False, train_transforms={"scale_range": [0.5, 2.0],
                                                        "crop_size": [769, 769], "hflip": 0.5})
        dm.setup("fit")
        loader = dm.train_dataloader()
        it, count = iter(loader), 0
        next(it)  # worker start-up excluded
        start = time.perf_counter()
        for _ in range(batches):
            try:
                b = next(it)
            except StopIteration:
                it = iter(loader)
                b = next(it)
            count += b["image"].shape[0]
        ips = count / (time.perf_counter() - start)
    return {"workers": workers, "frame": "2048x1024", "crop": "769x769", "img_s": ips}


@torch.inference_mode()
def bench_eval(device: str, backbone: str, size: tuple[int, int], repeats: int) -> list[dict]:
    """Whole-image vs sliding-window (crop 769, stride 513) inference on one (1, 3, H, W) image."""
    net = make_net(backbone).to(device).eval()
    image = torch.randn(1, 3, *size, device=device)
    rows = []
    for name, pred in (("whole", Predictor(mode="whole")),
                       ("slide 769/513", Predictor(mode="slide", crop_size=(769, 769),
                                                   stride=(513, 513)))):
        pred(net, image)  # warm-up
        _sync(device)
        start = time.perf_counter()
        for _ in range(repeats):
            pred(net, image)
        _sync(device)
        rows.append({"mode": name, "size": f"{size[0]}x{size[1]}",
                     "img_s": repeats / (time.perf_counter() - start)})
    return rows


def to_markdown(results: dict) -> str:
    """The results as markdown tables."""
    env = results["environment"]
    lines = [f"Device: **{env['device']}**, torch {env['torch']}, {env['threads']} threads, "
             f"{env['date']}.", "",
             "| training (supervised baseline) | batch | size | Lightning img/s | plain loop img/s | plain / Lightning |",
             "|---|---:|---|---:|---:|---:|"]
    for r in results["training"]:
        lines.append(f"| DeepLabV3+ {r['backbone']} | {r['batch']} | {r['size']} | "
                     f"{r['lightning_img_s']:.2f} | {r['plain_img_s']:.2f} | {r['overhead_ratio']:.3f} |")
    for r in results["training"]:
        if "round_ratios" in r:
            lines += ["", f"Medians of {r['rounds']} alternating rounds in one process; per-round "
                      "plain / Lightning: " + ", ".join(f"{x:.3f}" for x in r["round_ratios"]) + "."]
    if "step_overhead" in results:
        o = results["step_overhead"]
        lines += ["", f"Lightning's own per-step cost (CPU time, 1 thread, 2-conv network): "
                  f"{o['lightning_ms']:.2f} ms/step against {o['plain_ms']:.2f} ms for the plain "
                  f"loop, {o['overhead_ms']:.2f} ms of hooks, closure and logging per step."]
    lines += ["", "| data loading (Cityscapes transforms) | workers | frame | crop | img/s |",
              "|---|---:|---|---|---:|"]
    for r in results["loading"]:
        lines.append(f"| CityscapesDataModule | {r['workers']} | {r['frame']} | {r['crop']} | {r['img_s']:.2f} |")
    lines += ["", "| evaluation | size | img/s |", "|---|---|---:|"]
    for r in results["eval"]:
        lines.append(f"| {r['mode']} | {r['size']} | {r['img_s']:.3f} |")
    return "\n".join(lines) + "\n"


def main() -> None:  # noqa: D103
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--quick", action="store_true", help="fewer steps (smoke test)")
    args = parser.parse_args()
    gpu = args.device.startswith("cuda")
    steps, warmup = (3, 1) if args.quick else ((50, 5) if gpu else (10, 2))
    train_cases = ([("resnet50", 8, (512, 1024))] if gpu else [("resnet18", 8, (128, 256))])
    results = {
        "environment": {
            "device": torch.cuda.get_device_name() if gpu else f"CPU ({platform.processor() or platform.machine()})",
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "date": time.strftime("%Y-%m-%d"),
        },
        "training": [bench_training(args.device, b, n, s, steps, warmup, 1 if args.quick else 3)
                     for b, n, s in train_cases],
        "step_overhead": bench_step_overhead(20 if args.quick else 200),
        "loading": [bench_loading(w, 8, 4 if args.quick else 12) for w in (0, 2)],
        "eval": bench_eval(args.device, "resnet50" if gpu else "resnet18", (1024, 2048),
                           1 if args.quick else (10 if gpu else 2)),
    }
    md = to_markdown(results)
    tag = "gpu" if gpu else "cpu"
    atomic_write_json(args.out / f"foundation_{tag}.json", results)
    atomic_write_text(args.out / f"foundation_{tag}.md", md)
    print(md)


if __name__ == "__main__":
    main()
