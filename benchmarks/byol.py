"""BYOL pretraining throughput; prints a markdown table and writes JSON + markdown.

    python benchmarks/byol.py [--device cpu|cuda] [--out benchmarks/results] [--quick]

Measures (images/s, higher is better; wall-clock after warm-up iterations; one image = its two
views through the online network, the target network, the backward pass, the optimiser step and the
target EMA update):

1. pretraining steps through Lightning with the real :class:`leseg.methods.byol.BYOL` module (LARS,
   cosine τ) on pre-made random views — the model's cost without data loading. CPU: ResNet-18,
   batch 32, 128×128 views (the synthetic_city experiment); GPU: ResNet-50, batch 64, 224×224 (the
   paper's view size), fp32 and bf16-mixed;
2. the two view pipelines on an in-memory 1024×2048 frame (Cityscapes resolution; PNG decoding
   excluded), one process;
3. the UnlabeledDataModule end to end (PNG decoding + views + collation) on generated
   synthetic_city frames at 512×1024, with 0 and 2 workers.

Results are machine-specific; the device is recorded with them.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from leseg.data.datamodules import collate_samples
from leseg.data.unlabeled import UnlabeledDataModule
from leseg.data.views import build_views
from leseg.methods.byol import BYOL
from leseg.models.backbones import build_backbone
from leseg.utils.io import atomic_write_json, atomic_write_text


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class _Views(Dataset):
    """``n`` pre-made random two-view samples (3, s, s)."""

    def __init__(self, n: int, size: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.data = torch.randn(n, 2, 3, size, size, generator=g)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> dict:
        return {"view1": self.data[i, 0], "view2": self.data[i, 1], "name": str(i)}


class _Timer(L.Callback):
    """Wall-clock time of the training batches after ``warmup`` batches."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.end, self.steps = warmup, None, None, 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: D102
        if batch_idx == self.warmup:
            _sync(str(pl_module.device))
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: D102
        if batch_idx >= self.warmup:
            self.steps += 1
        _sync(str(pl_module.device))
        self.end = time.perf_counter()


def bench_pretraining(device: str, backbone: str, batch: int, size: int, steps: int, warmup: int,
                      precision: str = "32-true") -> dict:
    """Images/s of BYOL training steps (paper MLPs 4096/256, LARS, cosine τ) via Lightning."""
    torch.manual_seed(0)
    module = BYOL(build_backbone(backbone))
    timer = _Timer(warmup)
    trainer = L.Trainer(accelerator="gpu" if device.startswith("cuda") else "cpu", devices=1,
                        max_steps=steps + warmup, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[timer],
                        precision=precision)
    loader = DataLoader(_Views(batch * (steps + warmup), size), batch_size=batch, drop_last=True,
                        collate_fn=collate_samples)
    trainer.fit(module, train_dataloaders=loader)
    return {"backbone": backbone, "batch": batch, "size": f"{size}x{size}", "precision": precision,
            "img_s": timer.steps * batch / (timer.end - timer.start)}


def bench_views(repeats: int) -> list[dict]:
    """Two-view pipelines on one in-memory 1024x2048 uint8 frame (no decoding), images/s."""
    frame = np.random.default_rng(0).integers(0, 256, (1024, 2048, 3), dtype=np.uint8)
    rows = []
    for pipeline, kwargs in (("byol", {"size": [224, 224]}), ("reference", {"crop_size": [512, 512]})):
        views = build_views(pipeline, **kwargs)
        views(frame)  # warm-up
        start = time.perf_counter()
        for _ in range(repeats):
            views(frame)
        rows.append({"pipeline": pipeline, "frame": "2048x1024",
                     "views": "x".join(map(str, next(iter(kwargs.values())))),
                     "img_s": repeats / (time.perf_counter() - start)})
    return rows


def bench_loading(workers: int, n_frames: int, batches: int) -> dict:
    """UnlabeledDataModule (PNG decode + BYOL views 224 + collate) on 512x1024 frames, images/s."""
    from leseg.data.synthetic import ensure_synthetic

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "synthetic_city"
        ensure_synthetic("city", root, num_train=n_frames, num_val=1, height=512, width=1024, seed=0)
        dm = UnlabeledDataModule(name="bench", root=str(root),
                                 sources=["leftImg8bit/train/*/*_leftImg8bit.png"],
                                 views={"pipeline": "byol", "size": [224, 224]}, batch_size=4,
                                 num_workers=workers)
        dm.setup("fit")
        it, count = iter(dm.train_dataloader()), 0
        next(it)  # worker start-up excluded
        start = time.perf_counter()
        for _ in range(batches):
            try:
                batch = next(it)
            except StopIteration:
                it = iter(dm.train_dataloader())
                batch = next(it)
            count += batch["view1"].shape[0]
        ips = count / (time.perf_counter() - start)
    return {"workers": workers, "frame": "1024x512", "views": "224x224", "img_s": ips}


def to_markdown(results: dict) -> str:
    """The results as markdown tables."""
    env = results["environment"]
    lines = [f"Device: **{env['device']}**, torch {env['torch']}, {env['threads']} threads, "
             f"{env['date']}. One image = two views through online + target networks.", "",
             "| BYOL pretraining (Lightning) | batch | views | precision | img/s |",
             "|---|---:|---|---|---:|"]
    for r in results["pretraining"]:
        lines.append(f"| {r['backbone']} | {r['batch']} | {r['size']} | {r['precision']} | "
                     f"{r['img_s']:.2f} |")
    lines += ["", "| view pipeline (in memory, 1 process) | frame | views | img/s |",
              "|---|---|---|---:|"]
    for r in results["views"]:
        lines.append(f"| {r['pipeline']} | {r['frame']} | {r['views']} | {r['img_s']:.2f} |")
    lines += ["", "| UnlabeledDataModule (PNG + views) | workers | frame | views | img/s |",
              "|---|---:|---|---|---:|"]
    for r in results["loading"]:
        lines.append(f"| byol | {r['workers']} | {r['frame']} | {r['views']} | {r['img_s']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:  # noqa: D103
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--quick", action="store_true", help="fewer steps (smoke test)")
    args = parser.parse_args()
    gpu = args.device.startswith("cuda")
    steps, warmup = (2, 1) if args.quick else ((30, 5) if gpu else (8, 2))
    if gpu:
        cases = [("resnet50", 64, 224, "32-true"), ("resnet50", 64, 224, "bf16-mixed")]
    else:
        cases = [("resnet18", 8 if args.quick else 32, 128, "32-true")]
    results = {
        "environment": {
            "device": torch.cuda.get_device_name() if gpu else
            f"CPU ({platform.processor() or platform.machine()})",
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "date": time.strftime("%Y-%m-%d"),
        },
        "pretraining": [bench_pretraining(args.device, b, n, s, steps, warmup, p)
                        for b, n, s, p in cases],
        "views": bench_views(2 if args.quick else 20),
        "loading": [bench_loading(w, 8, 2 if args.quick else 12) for w in (0, 2)],
    }
    md = to_markdown(results)
    tag = "gpu" if gpu else "cpu"
    atomic_write_json(args.out / f"byol_{tag}.json", results)
    atomic_write_text(args.out / f"byol_{tag}.md", md)
    print(md)


if __name__ == "__main__":
    main()
