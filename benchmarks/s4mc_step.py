"""S4MC training-step time against the supervised step on the same batch; prints a markdown table.

    python benchmarks/s4mc_step.py [--device cpu|cuda] [--backbone resnet18] [--output-stride 16]
                                   [--batch 2] [--size 128 128] [--steps 5] [--warmup 2] [--bf16]
                                   [--out FILE.md]

Both steps use the same DeepLabV3+ network (same initial weights), SGD and batch: B labeled
images (B, 3, H, W) with labels, plus — for S4MC — B unlabeled images with a padded band marked
invalid. Timed, per optimiser step (forward, loss, backward, SGD step; CUDA synchronised; median
wall-clock time over ``--steps`` steps after ``--warmup`` steps):

* ``supervised``: CE on the B labeled images (:class:`~leseg.methods.supervised.SupervisedSegmentation`'s step);
* ``supervised, 2B images``: the same on 2B labeled images — the student's share of S4MC's cost
  (S4MC's student sees concat(labeled, unlabeled));
* ``S4MC``: :meth:`leseg.methods.s4mc.S4MC.compute_losses` (eval-mode teacher on x_u, CutMix,
  train-mode teacher on the mixed concat batch, refinement + DPA, rescaled CE) + backward + SGD +
  the EMA update; CutMix is applied at every step (``mix_prob`` 1, the upper bound of p = 0.5);
* ``S4MC, no 2nd teacher pass``: the same with ``teacher_train_forward=False``;
* the parts alone (no backward): teacher eval forward, CutMix, refinement + DPA + rescaled CE.

The ratio column is time / supervised step. Results are machine-specific; the device is printed.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch

from leseg.components.ema import ema_update
from leseg.components.losses import cross_entropy
from leseg.methods.optim import build_optimizer, param_groups
from leseg.methods.s4mc import S4MC
from leseg.models.backbones import build_backbone
from leseg.models.heads import DeepLabV3PlusHead
from leseg.models.segmentor import Segmentor

NUM_CLASSES = 21


def make_net(backbone: str, output_stride: int) -> Segmentor:
    """DeepLabV3+ (randomly initialised; weights do not change the time) for 21 classes."""
    dilations = (12, 24, 36) if output_stride == 8 else (6, 12, 18)
    return Segmentor(build_backbone(backbone, output_stride=output_stride),
                     partial(DeepLabV3PlusHead, channels=256 if output_stride == 8 else 128,
                             dilations=dilations), num_classes=NUM_CLASSES)


def make_batch(batch: int, height: int, width: int, device: str) -> tuple[dict, dict]:
    """Labeled (image, label) and unlabeled (image, valid) batches; a right band is padding."""
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, NUM_CLASSES, (batch, height, width), generator=g)
    valid = torch.ones(batch, height, width, dtype=torch.bool)
    valid[..., width - width // 8:] = False
    labels[~valid] = 255
    labeled = {"image": torch.randn(batch, 3, height, width, generator=g).to(device),
               "label": labels.to(device)}
    unlabeled = {"image": torch.randn(batch, 3, height, width, generator=g).to(device),
                 "valid": valid.to(device)}
    return labeled, unlabeled


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def median_seconds(fn: Callable[[], object], device: str, steps: int, warmup: int) -> float:
    """Median wall-clock seconds of ``steps`` calls after ``warmup`` calls (CUDA synchronised)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _optimizer(net: torch.nn.Module) -> torch.optim.Optimizer:
    groups = param_groups(getattr(net, "backbone", None), net.parameters(), lr=1e-3,
                          head_lr_mult=10.0)
    return build_optimizer(groups, name="sgd", lr=1e-3, momentum=0.9, weight_decay=1e-4)


def run(args: argparse.Namespace) -> list[tuple[str, float]]:
    """[(row name, median seconds)] for every timed variant."""
    device = args.device
    height, width = args.size
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if args.bf16 else None
    labeled, unlabeled = make_batch(args.batch, height, width, device)
    double = {"image": torch.cat([labeled["image"], unlabeled["image"]]),
              "label": torch.cat([labeled["label"], labeled["label"]])}

    def timed(fn: Callable[[], object]) -> float:
        def wrapped() -> object:
            if amp is None:
                return fn()
            with amp:
                return fn()
        return median_seconds(wrapped, device, args.steps, args.warmup)

    torch.manual_seed(0)
    base_net = make_net(args.backbone, args.output_stride)
    rows = []

    net = make_net(args.backbone, args.output_stride).to(device).train()
    net.load_state_dict(base_net.state_dict())
    opt = _optimizer(net)

    def supervised_step(batch: dict) -> None:
        loss = cross_entropy(net(batch["image"]), batch["label"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    rows.append(("supervised", timed(lambda: supervised_step(labeled))))
    rows.append(("supervised, 2B images", timed(lambda: supervised_step(double))))

    for name, second_pass in (("S4MC", True), ("S4MC, no 2nd teacher pass", False)):
        student = make_net(args.backbone, args.output_stride)
        student.load_state_dict(base_net.state_dict())
        module = S4MC(student, NUM_CLASSES, mix_prob=1.0, prior=[0.97] * NUM_CLASSES,
                      teacher_train_forward=second_pass).to(device).train()
        s_opt = _optimizer(module.net)

        def s4mc_step(module: S4MC = module, s_opt: torch.optim.Optimizer = s_opt) -> None:
            out = module.compute_losses(labeled, unlabeled, progress=0.5)
            s_opt.zero_grad(set_to_none=True)
            out["loss"].backward()
            s_opt.step()
            ema_update(module.teacher, module.net, 0.99)

        rows.append((name, timed(s4mc_step)))

    teacher = module.teacher

    @torch.no_grad()
    def teacher_eval() -> torch.Tensor:
        teacher.eval()
        return teacher(unlabeled["image"]).float().softmax(1)

    rows.append(("part: teacher eval forward on x_u", timed(teacher_eval)))
    probs = teacher_eval()
    classes = probs.argmax(1)
    rows.append(("part: CutMix of images, labels, valid, probs",
                 timed(lambda: module.strong_augment(unlabeled["image"], classes,
                                                     unlabeled["valid"], probs))))
    logits = torch.randn_like(probs)
    rows.append(("part: refinement + DPA + rescaled CE",
                 timed(lambda: module.unsupervised_loss(logits, probs, classes,
                                                        unlabeled["valid"], 0.5))))
    module.dpa_partition = "per_class"  # the class-balanced extension: one percentile per class
    rows.append(("part: refinement + per-class DPA + rescaled CE",
                 timed(lambda: module.unsupervised_loss(logits, probs, classes,
                                                        unlabeled["valid"], 0.5))))
    return rows


def markdown(rows: list[tuple[str, float]], args: argparse.Namespace) -> str:
    """The table with the device and settings in a caption line."""
    device = (torch.cuda.get_device_name(0) if args.device.startswith("cuda")
              else f"CPU {platform.processor() or platform.machine()}, "
                   f"{torch.get_num_threads()} threads")
    base = rows[0][1]
    lines = [f"Device: {device}; torch {torch.__version__}; DeepLabV3+ {args.backbone} OS"
             f"{args.output_stride}; batch {args.batch} labeled (+ {args.batch} unlabeled for "
             f"S4MC) at {args.size[0]}x{args.size[1]}; {'bf16 autocast' if args.bf16 else 'fp32'};"
             f" median of {args.steps} steps after {args.warmup}.", "",
             "| step | time (ms) | ratio to supervised |", "|---|---:|---:|"]
    lines += [f"| {name} | {1000 * sec:.1f} | {sec / base:.2f} |" for name, sec in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> str:
    """Command-line entry point; returns the markdown table."""
    parser = argparse.ArgumentParser(prog="python benchmarks/s4mc_step.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--output-stride", type=int, default=16, choices=(8, 16))
    parser.add_argument("--batch", type=int, default=2, help="labeled (= unlabeled) batch, >= 2")
    parser.add_argument("--size", type=int, nargs=2, default=(128, 128), metavar=("H", "W"))
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA only)")
    parser.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = parser.parse_args(argv)
    if args.batch < 2:
        parser.error("--batch must be >= 2: CutMix draws each image's partner from the others")
    if args.bf16 and not args.device.startswith("cuda"):
        parser.error("--bf16 needs --device cuda")
    table = markdown(run(args), args)
    print(table, end="")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table)
    return table


if __name__ == "__main__":
    main()
