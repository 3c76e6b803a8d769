"""Per-image time of SSENet's pseudo-mask stages, and how the random walk grows with image size.

    python benchmarks/ssenet_stages.py [--device cpu|cuda] [--trunk resnet38|resnet50|resnet18]
                                       [--size 375 500] [--repeats 3] [--walk-sizes 128 256 375 500]
                                       [--scales 1.0 0.5 1.5 2.0] [--out FILE.md]

Timed per image (median wall-clock seconds over ``--repeats`` runs after one warm-up; CUDA
synchronised), on a random image of ``--size`` (VOC-sized 375×500 by default) with 2 present
classes and randomly initialised networks (weights do not change the time):

* ``CAM inference``: :func:`leseg.components.cam.aggregate_cams` over ``--scales`` with flips
  (4 forward passes of the CAM network, each image with its flip as one batch of 2), and the
  former one-pass-per-flip version (8 passes, ``benchmarks/former.py``), timed alternately;
* ``dense CRF (α = 4 and 24)``: two :func:`leseg.components.crf.crf_label_map` calls (CPU,
  ``pydensecrf2``; skipped when it is missing);
* ``AffinityNet features + random walk``: the affinity forward pass and
  :func:`leseg.components.random_walk.propagate_cams` (β 8, t 256), dense and sparse.

Then the random walk alone (affinities given) for square images of ``--walk-sizes`` pixels:
time and peak memory of the dense (n × n) evaluation against the sparse one and the former
torch-COO sparse walk (one run each for memory,
:class:`methods.PeakMemory`: CUDA ``max_memory_allocated``; CPU the growth of the process's peak
resident set over the phase). Results are machine-specific; the device is printed.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from former import reference_aggregate_cams, reference_sparse_walk
from methods import PeakMemory  # benchmarks/ is on sys.path when run as a script

from leseg.components.affinity import affinity, pair_indices
from leseg.components.cam import aggregate_cams
from leseg.components.crf import crf_available, crf_label_map
from leseg.components.random_walk import propagate_cams, random_walk
from leseg.models.heads.affinity import AffinityNetModel
from leseg.models.heads.cam import CAMNet
from leseg.models.resnet38 import ResNet38, TimmCAMTrunk


def _trunk(name: str):
    if name == "resnet38":
        return ResNet38()
    return TimmCAMTrunk(name)


def _time(fn: Callable[[], object], device: str, repeats: int, warm: bool = True) -> float:
    if warm:
        fn()
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> str:
    """Run the benchmark and return (and print) the markdown report."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--trunk", default="resnet38")
    p.add_argument("--size", type=int, nargs=2, default=[375, 500])
    p.add_argument("--scales", type=float, nargs="+", default=[1.0, 0.5, 1.5, 2.0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--walk-sizes", type=int, nargs="+", default=[128, 256, 375, 500])
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    dev = args.device
    torch.manual_seed(0)
    h, w = args.size
    image = torch.randn(1, 3, h, w, device=dev)
    labels = torch.zeros(1, 20, device=dev)
    labels[0, [4, 14]] = 1
    cam_net = CAMNet(_trunk(args.trunk)).to(dev).eval()
    aff_net = AffinityNetModel(_trunk(args.trunk)).to(dev).eval()
    rows = []
    with torch.no_grad():
        cams = aggregate_cams(cam_net, image, labels, args.scales, True)
        # flips batched (new) against one pass per flip (former), alternating so that both
        # see the same load
        new_t, old_t = [], []
        for _ in range(args.repeats):
            new_t.append(_time(lambda: aggregate_cams(cam_net, image, labels, args.scales, True),
                               dev, 1, warm=not new_t))
            old_t.append(_time(lambda: reference_aggregate_cams(cam_net, image, labels,
                                                                args.scales, True),
                               dev, 1, warm=not old_t))
        t_new, t_old = statistics.median(new_t), statistics.median(old_t)
        rows.append(("CAM inference", f"{len(args.scales)} scales × flip, flips batched", t_new))
        rows.append(("CAM inference", f"{len(args.scales)} scales × flip, former (one pass per "
                     f"flip): {t_old / t_new:.2f}× the batched time", t_old))
        if crf_available():
            img = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
            c = cams[0].cpu().numpy()
            y = labels[0].cpu().numpy()
            t = _time(lambda: (crf_label_map(img, c, y, 4), crf_label_map(img, c, y, 24)),
                      "cpu", args.repeats)
            rows.append(("dense CRF α = 4 and 24", "CPU, 10 iterations", t))
        ph, pw = -(-h // 8) * 8, -(-w // 8) * 8
        padded = F.pad(image, (0, pw - w, 0, ph - h))
        for dense in (True, False):
            def walk(dense: bool = dense) -> torch.Tensor:
                feats = aff_net(padded)
                aff = affinity(feats)
                return propagate_cams(cams[0], aff[0], tuple(feats.shape[-2:]), dense=dense)
            t = _time(walk, dev, args.repeats)
            rows.append(("AffinityNet + random walk", "dense" if dense else "sparse", t))
        scaling = []
        for size in args.walk_sizes:
            gh = gw = -(-size // 8)
            _, dst = pair_indices(gh, gw)
            aff = torch.rand(dst.shape, device=dev)
            scores = torch.rand(21, gh, gw, device=dev)
            entry = [size, gh * gw]
            runs = [lambda s=scores, a=aff, g=(gh, gw), d=dense: random_walk(s, a, *g, dense=d)
                    for dense in (True, False)]
            runs.append(lambda s=scores, a=aff, g=(gh, gw): reference_sparse_walk(s, a, *g))
            for run in runs:
                with PeakMemory(dev) as mem:
                    run()
                t = _time(run, dev, args.repeats)
                entry += [t, mem.mib]
            scaling.append(entry)
    device = torch.cuda.get_device_name() if dev == "cuda" else platform.processor() or "cpu"
    lines = [f"# SSENet stage times ({args.trunk}, {h}×{w}, {dev}: {device}, "
             f"torch {torch.__version__}, {torch.get_num_threads()} threads)", "",
             "| stage | setting | s / image |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {t:.3f} |" for a, b, t in rows]
    lines += ["", "Random walk alone (21 score maps, β 8, t 256):", "",
              "| image side (px) | grid pixels n | dense s | dense MiB | sparse s | sparse MiB | "
              "former sparse s (torch COO) | former MiB | former / sparse |",
              "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {s} | {n} | {td:.3f} | {md:.0f} | {ts:.3f} | {ms:.0f} | {to:.3f} | {mo:.0f} | "
              f"{to / ts:.1f}× |" for s, n, td, md, ts, ms, to, mo in scaling]
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        from leseg.utils.io import atomic_write_text

        atomic_write_text(Path(args.out), report)
    return report


if __name__ == "__main__":
    main()
