"""Three Ways training-step times: self-supervised depth, supervised, DepthMix and ClassMix steps.

    python benchmarks/depth.py [--device cpu|cuda] [--encoder resnet18] [--batch 2]
                               [--size 128 256] [--decoder-channels 64 128 128 256 256]
                               [--steps 5] [--warmup 2] [--bf16] [--quick] [--out FILE.md]

Timed per optimiser step (forward, loss, backward, optimiser step; CUDA synchronised; median
wall-clock time over ``--steps`` steps after ``--warmup``), random weights and images:

* ``SDE step``: :meth:`leseg.methods.depth.SelfSupervisedDepth.sde_loss` on B frame triplets
  (−1, 0, +1) with intrinsics — depth net + 2 pose passes, warping and SSIM at 4 scales — + Adam
  (phase 2: encoder trained, no feature-distance copy);
* ``supervised (transfer) step``: CE of the depth-architecture segmentation network on B images;
* ``DepthMix step``: :meth:`leseg.methods.depthmix.DepthMixMeanTeacher.compute_losses` on B labeled
  + B unlabeled images (teacher pass, frozen depth network for the disparity, DepthMix, jitter +
  blur, student passes on both) + SGD + the EMA update; jitter and blur are forced on
  (probability 1, the upper bound);
* ``ClassMix step``: the same with ClassMix (no depth network pass).

``--quick`` is a smoke setting (64x128, tiny decoder, 1 step after 1 warm-up) that only checks
the script runs. Results are machine-specific; the device is printed.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from s4mc_step import median_seconds  # benchmarks/ is on sys.path when run as a script

from leseg.components.ema import ema_update
from leseg.components.losses import cross_entropy
from leseg.methods.depth import SelfSupervisedDepth
from leseg.methods.depthmix import DepthMixMeanTeacher
from leseg.methods.optim import build_optimizer, param_groups
from leseg.models.depth import DepthNet
from leseg.models.depth.segmentation import DepthDisparity, DepthSegmentor

NUM_CLASSES = 19


def _sgd(net: torch.nn.Module) -> torch.optim.Optimizer:
    groups = param_groups(net.backbone, net.parameters(), lr=1e-3, head_lr_mult=10.0)
    return build_optimizer(groups, name="sgd", lr=1e-3, momentum=0.9, weight_decay=5e-4)


def run(args: argparse.Namespace) -> list[tuple[str, float]]:
    """[(row name, median seconds)] for every timed variant."""
    device, (h, w), b = args.device, args.size, args.batch
    dec = tuple(args.decoder_channels)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if args.bf16 else None
    g = torch.Generator().manual_seed(0)

    def timed(fn: Callable[[], object]) -> float:
        def wrapped() -> object:
            if amp is None:
                return fn()
            with amp:
                return fn()
        return median_seconds(wrapped, device, args.steps, args.warmup)

    rows = []
    torch.manual_seed(0)
    depth_net = DepthNet(args.encoder, decoder_channels=dec)
    sde = SelfSupervisedDepth(depth_net, freeze_encoder=False).to(device).train()
    adam = torch.optim.Adam(sde.parameters(), lr=1e-4)
    K = torch.tensor([[0.58 * w, 0, 0.5 * w], [0, 1.92 * h, 0.5 * h], [0, 0, 1.0]])
    seq = {"frames": torch.rand(b, 3, 3, h, w, generator=g).to(device),
           "intrinsics": K.expand(b, 3, 3).contiguous().to(device)}

    def sde_step() -> None:
        loss = sde.sde_loss(seq)["loss"]
        adam.zero_grad(set_to_none=True)
        loss.backward()
        adam.step()

    rows.append(("SDE step (depth + pose, 4 scales)", timed(sde_step)))

    labeled = {"image": torch.randn(b, 3, h, w, generator=g).to(device),
               "label": torch.randint(0, NUM_CLASSES, (b, h, w), generator=g).to(device)}
    unlabeled = {"image": torch.randn(b, 3, h, w, generator=g).to(device),
                 "valid": torch.ones(b, h, w, dtype=torch.bool).to(device)}
    seg = DepthSegmentor(NUM_CLASSES, encoder=args.encoder, decoder_channels=dec).to(device)
    opt = _sgd(seg)

    def supervised_step() -> None:
        loss = cross_entropy(seg(labeled["image"]), labeled["label"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    rows.append(("supervised (transfer) step", timed(supervised_step)))

    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "depth.pt"
        torch.save({f"net.{k}": v for k, v in depth_net.state_dict().items()}, ckpt)
        frozen = DepthDisparity(str(ckpt), encoder=args.encoder, decoder_channels=dec)
    for mix in ("depthmix", "classmix"):
        student = DepthSegmentor(NUM_CLASSES, encoder=args.encoder, decoder_channels=dec)
        module = DepthMixMeanTeacher(student, NUM_CLASSES, depth_net=frozen, mix=mix,
                                     color_jitter_prob=1.0, blur_prob=1.0).to(device).train()
        m_opt = _sgd(module.net)

        def mix_step(module: DepthMixMeanTeacher = module,
                     m_opt: torch.optim.Optimizer = m_opt) -> None:
            out = module.compute_losses(labeled, unlabeled)
            m_opt.zero_grad(set_to_none=True)
            out["loss"].backward()
            m_opt.step()
            ema_update(module.teacher, module.net, 0.99)

        rows.append((f"{'DepthMix' if mix == 'depthmix' else 'ClassMix'} step (mean teacher)",
                     timed(mix_step)))
    return rows


def markdown(rows: list[tuple[str, float]], args: argparse.Namespace) -> str:
    """The table with the device and settings in a caption line."""
    device = (torch.cuda.get_device_name(0) if args.device.startswith("cuda")
              else f"CPU {platform.processor() or platform.machine()}, "
                   f"{torch.get_num_threads()} threads")
    base = dict(rows)["supervised (transfer) step"]
    lines = [f"Device: {device}; torch {torch.__version__}; {args.encoder} OS16 encoder, decoder "
             f"{list(args.decoder_channels)}; batch {args.batch} (+ {args.batch} unlabeled for the "
             f"mean teacher; {args.batch} frame triplets for SDE) at {args.size[0]}x{args.size[1]};"
             f" {'bf16 autocast' if args.bf16 else 'fp32'}; median of {args.steps} steps after "
             f"{args.warmup}{' (--quick smoke setting)' if args.quick else ''}.", "",
             "| step | time (ms) | ratio to supervised |", "|---|---:|---:|"]
    lines += [f"| {name} | {1000 * sec:.1f} | {sec / base:.2f} |" for name, sec in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> str:
    """Command-line entry point; returns the markdown table."""
    parser = argparse.ArgumentParser(prog="python benchmarks/depth.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--encoder", default="resnet18")
    parser.add_argument("--decoder-channels", type=int, nargs=5, default=[64, 128, 128, 256, 256])
    parser.add_argument("--batch", type=int, default=2, help="labeled (= unlabeled) batch, >= 2")
    parser.add_argument("--size", type=int, nargs=2, default=(128, 256), metavar=("H", "W"))
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA only)")
    parser.add_argument("--quick", action="store_true", help="smoke setting: tiny and 1 step")
    parser.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = parser.parse_args(argv)
    if args.batch < 2:
        parser.error("--batch must be >= 2: mixing draws each image's partner from the others")
    if args.bf16 and not args.device.startswith("cuda"):
        parser.error("--bf16 needs --device cuda")
    if any(s % 32 for s in args.size):
        parser.error("--size must be multiples of 32 (the ResNet pyramid)")
    if args.quick:
        args.size, args.decoder_channels, args.steps, args.warmup = (64, 128), [8, 8, 16, 16, 32], 1, 1
    table = markdown(run(args), args)
    print(table, end="")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table)
    return table


if __name__ == "__main__":
    main()
