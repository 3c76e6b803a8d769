"""Time the S5 suggestion generators per 1024×2048 mask; print a markdown table.

    python benchmarks/suggestions.py [--device cpu|cuda] [--repeats 5] [--flood-loop-tiles 10]
                                     [--out FILE.md]

The mask is a deterministic "realistic" class mask: several ellipses of different sizes spread
over the frame (a few % of the pixels). Each generator is timed as the median wall-clock time of
``--repeats`` calls after one warm-up call (CUDA synchronised). The straightforward loop
implementations of the S5 reference, ``block_loop`` (all 1,024 tiles) and ``flood_loop``
(1,000 shifted ORs per tile), are timed against the vectorised generators; ``flood_loop`` is
**bounded**: it runs only the first ``--flood-loop-tiles`` of the 100 tiles and the time is
extrapolated linearly to the whole grid (every tile performs the same 1,000 slice operations),
which the table says. Results are machine-specific; the device is printed with them.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from leseg.components.suggestions import (
    BlockSuggestion,
    BoxSuggestion,
    ClickSuggestion,
    ExtremePointSuggestion,
    FloodSuggestion,
    block_loop,
    draw_flood_shifts,
    flood_loop,
)

HEIGHT, WIDTH = 1024, 2048
FLOOD_GRID, FLOOD_THRESHOLD = 10, 20


def realistic_mask(device: str) -> torch.Tensor:
    """(1024, 2048) bool: seven ellipses from 15 to 180 px radius, deterministic."""
    yy = torch.arange(HEIGHT, dtype=torch.float32)[:, None]
    xx = torch.arange(WIDTH, dtype=torch.float32)[None, :]
    mask = torch.zeros(HEIGHT, WIDTH, dtype=torch.bool)
    for cy, cx, ry, rx in [(300, 400, 120, 180), (600, 1500, 90, 60), (800, 300, 40, 25),
                           (200, 1800, 60, 120), (520, 1000, 15, 15), (900, 1200, 70, 150),
                           (150, 900, 25, 40)]:
        mask |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
    return mask.to(device)


def _time(fn: Callable[[], object], device: str, repeats: int) -> float:
    """Median seconds of ``repeats`` calls after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(device: str, repeats: int, flood_loop_tiles: int) -> list[dict]:
    """Time every generator (and the two loops); one dict per table row."""
    mask = realistic_mask(device)
    gen = torch.Generator(device=device).manual_seed(0)
    generators = {
        "block (S5, 32×32, reference quirks)": BlockSuggestion(),
        "block (clean tiles)": BlockSuggestion(reference_quirks=False),
        f"flood (S5, t={FLOOD_THRESHOLD}, 10×10, vectorised closure)":
            FloodSuggestion(FLOOD_THRESHOLD),
        "flood (S5, t=50, 10×10, vectorised closure)": FloodSuggestion(50),
        f"flood (clean dilation, t={FLOOD_THRESHOLD})":
            FloodSuggestion(FLOOD_THRESHOLD, reference_quirks=False),
        "click (1 positive disk)": ClickSuggestion(),
        "click (3 positive + 3 negative disks)": ClickSuggestion(3, 3),
        "click (3 + 3, distance maps)": ClickSuggestion(3, 3, encoding="distance"),
        "extreme (DEXTR, 4 Gaussians)": ExtremePointSuggestion(),
        "box": BoxSuggestion(),
    }
    rows = []
    for name, g in generators.items():
        seconds = _time(lambda g=g: g(mask, gen), device, repeats)
        rows.append({"suggestion": name, "vectorised_ms": seconds * 1e3})

    loop_block = _time(lambda: block_loop(mask), device, repeats)
    rows[0].update(loop_ms=loop_block * 1e3, loop_note="block_loop, all 1,024 tiles")

    tiles = FLOOD_GRID * FLOOD_GRID
    n = max(1, min(flood_loop_tiles, tiles))
    draws = draw_flood_shifts(tiles, FLOOD_THRESHOLD, 1000, gen)
    partial = _time(lambda: flood_loop(mask, FLOOD_THRESHOLD, FLOOD_GRID, draws=draws,
                                       max_tiles=n), device, max(1, repeats // 2))
    rows[2].update(loop_ms=partial * tiles / n * 1e3,
                   loop_note=f"flood_loop, {n} of {tiles} tiles timed, extrapolated ×{tiles / n:g}")
    return rows


def run_former(device: str, repeats: int) -> list[dict]:
    """The issue-19 fast paths against the code they replaced (``benchmarks/former.py``), timed
    alternately in this process so that both see the same machine load."""
    from former import reference_disks, reference_farthest, reference_flood

    from leseg.components.suggestions import encode_clicks, farthest_interior_point
    from leseg.components.suggestions.flood import flood_suggestion

    mask = realistic_mask(device)
    cpu_mask = mask.cpu()
    draws = draw_flood_shifts(FLOOD_GRID * FLOOD_GRID, FLOOD_THRESHOLD, 1000,
                              torch.Generator(device=device).manual_seed(0))

    def former_click() -> None:
        y, x, _ = reference_farthest(cpu_mask)
        reference_disks([(y, x)], tuple(mask.shape), 5.0)

    def new_click() -> None:
        y, x, _ = farthest_interior_point(mask)
        encode_clicks([(y, x)], tuple(mask.shape), 5.0, device=mask.device)

    cases = [
        (f"flood closure (S5, t={FLOOD_THRESHOLD}, 10×10, same draws)",
         lambda: reference_flood(cpu_mask, FLOOD_THRESHOLD, FLOOD_GRID, 1000, draws),
         lambda: flood_suggestion(mask, FLOOD_THRESHOLD, FLOOD_GRID, 1000, draws=draws),
         "per-tile torch integral images → numpy, batched shift sets, core shortcut"),
        ("click placement + disk (1 positive)", former_click, new_click,
         "one EDT over the region's box → one EDT per component group + 1 px; disk in its box"),
    ]
    def cpu_seconds(fn: Callable[[], object]) -> float:
        start = time.process_time()
        fn()
        return time.process_time() - start

    rows = []
    for name, former_fn, new_fn, change in cases:
        former_fn(), new_fn()
        old_t, new_t, old_c, new_c = [], [], [], []
        for _ in range(repeats):  # alternate, so that load changes hit both
            old_t.append(_time(former_fn, device, 1))
            new_t.append(_time(new_fn, device, 1))
            old_c.append(cpu_seconds(former_fn))
            new_c.append(cpu_seconds(new_fn))
        rows.append({"case": name, "former_ms": statistics.median(old_t) * 1e3,
                     "new_ms": statistics.median(new_t) * 1e3,
                     "former_cpu_ms": statistics.median(old_c) * 1e3,
                     "new_cpu_ms": statistics.median(new_c) * 1e3, "change": change})
    return rows


def former_markdown(rows: list[dict]) -> str:
    """Former against new implementation, one table."""
    lines = ["", "Issue 19 fast paths against the former code, same process, alternating runs "
             "(median wall-clock ms, and process CPU ms summed over threads, which other "
             "processes' load inflates less):", "",
             "| case | former (ms) | new (ms) | former / new | former CPU ms | new CPU ms | "
             "CPU ratio | change |", "|---|---:|---:|---:|---:|---:|---:|---|"]
    lines += [f"| {r['case']} | {r['former_ms']:.1f} | {r['new_ms']:.1f} | "
              f"{r['former_ms'] / r['new_ms']:.1f}× | {r['former_cpu_ms']:.1f} | "
              f"{r['new_cpu_ms']:.1f} | {r['former_cpu_ms'] / r['new_cpu_ms']:.1f}× | "
              f"{r['change']} |" for r in rows]
    return "\n".join(lines) + "\n"


def to_markdown(rows: list[dict], header: str) -> str:
    """The rows as a markdown table (loop / vectorised ratio where a loop was timed)."""
    lines = [header, "", "| suggestion | vectorised (ms) | loop (ms) | loop / vectorised | loop |",
             "|---|---:|---:|---:|---|"]
    for r in rows:
        if "loop_ms" in r:
            lines.append(f"| {r['suggestion']} | {r['vectorised_ms']:.1f} | {r['loop_ms']:.1f} | "
                         f"{r['loop_ms'] / r['vectorised_ms']:.1f}× | {r['loop_note']} |")
        else:
            lines.append(f"| {r['suggestion']} | {r['vectorised_ms']:.1f} | – | – | |")
    return "\n".join(lines) + "\n"


def main() -> None:  # noqa: D103
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--flood-loop-tiles", type=int, default=10,
                        help="tiles of the 10×10 grid the flood loop runs (time extrapolated)")
    parser.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda requested but CUDA is not available")
    dev_name = (torch.cuda.get_device_name(args.device) if args.device.startswith("cuda")
                else f"{platform.processor() or platform.machine()}, "
                     f"{torch.get_num_threads()} torch threads")
    rows = run(args.device, args.repeats, args.flood_loop_tiles)
    mask_frac = float(realistic_mask("cpu").float().mean())
    header = (f"Suggestion generators per {HEIGHT}×{WIDTH} mask ({mask_frac:.1%} positive, "
              f"7 ellipses) on {args.device} ({dev_name}); torch {torch.__version__}; median of "
              f"{args.repeats} runs. Click placement uses a CPU distance transform (scipy) per "
              f"group of connected components.")
    md = to_markdown(rows, header) + former_markdown(run_former(args.device, args.repeats))
    print(md)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(md)


if __name__ == "__main__":
    main()
