"""Aggregate a sweep: ``python -m leseg.aggregate <multirun dir> [--metrics test/mIoU ...]``.

Collects every ``metrics.json`` written by train.py (or eval.py) below the directory, groups runs that
differ only by seed — same experiment, dataset and label split — and reports each metric as
mean ± sample standard deviation over seeds, with the number of seeds. Writes ``aggregate.md``,
``aggregate.csv`` and ``aggregate.json`` into the directory (atomically) and prints the markdown table.
Metrics are fractions in [0, 1] in the files and percentages in the tables.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from leseg.utils.io import atomic_write_json, atomic_write_text

DEFAULT_METRICS = ("test/mIoU", "test/mIoU_ms_flip", "val/mIoU_best")


def _split_key(split: str) -> tuple[int, float | str]:
    try:
        return (0, float(split))
    except (TypeError, ValueError):
        return (1, str(split))


def load_runs(root: str | Path) -> list[dict[str, Any]]:
    """Read every ``metrics.json`` under ``root``.

    Raises:
        FileNotFoundError: ``root`` does not exist or holds no metrics.json (message says which).
        ValueError: a metrics.json that is not valid JSON (names the file).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"aggregate: no directory at {root}")
    runs = []
    for path in sorted(root.rglob("metrics.json")):
        try:
            run = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"aggregate: {path} is not valid JSON ({e})") from e
        metrics = dict(run.get("metrics") or {})
        for protocol, result in (run.get("results") or {}).items():  # eval.py layout
            suffix = "" if protocol == "single_scale" else f"_{protocol}"
            metrics[f"test/mIoU{suffix}"] = result.get("mIoU")
        run["metrics"] = metrics
        run["path"] = str(path.parent)
        runs.append(run)
    if not runs:
        raise FileNotFoundError(f"aggregate: no metrics.json found under {root}")
    return runs


def per_seed(runs: list[dict[str, Any]], metric: str) -> dict[tuple[Any, Any], float | None]:
    """``(experiment, seed)`` → the run's value of ``metric`` (None where the run lacks it)."""
    return {(r.get("experiment"), r.get("seed")): r["metrics"].get(metric) for r in runs}


def source_commit() -> str:
    """The short commit hash of the working directory's git checkout, ``unknown`` outside one
    (results pages name the code that produced them)."""
    import subprocess

    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def aggregate(runs: list[dict[str, Any]], metrics: tuple[str, ...] = DEFAULT_METRICS
              ) -> list[dict[str, Any]]:
    """Group runs by (experiment, data, split) and compute mean, std and count over seeds.

    Returns:
        One row per group, sorted by experiment, data and numeric split: keys ``experiment``, ``data``,
        ``split``, ``seeds`` (sorted list) and, per metric, ``<metric>`` → ``{"mean", "std", "n"}``
        (std is the sample standard deviation, 0 for a single seed; absent metrics are skipped).
    """
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        groups[(run.get("experiment"), run.get("data"), str(run.get("split")))].append(run)
    rows = []
    for (experiment, data, split), members in groups.items():
        row: dict[str, Any] = {"experiment": experiment, "data": data, "split": split,
                               "seeds": sorted(m.get("seed") for m in members)}
        for name in metrics:
            values = [float(m["metrics"][name]) for m in members
                      if m["metrics"].get(name) is not None]
            values = [v for v in values if not math.isnan(v)]
            if values:
                row[name] = {"mean": statistics.fmean(values),
                             "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                             "n": len(values)}
        rows.append(row)
    rows.sort(key=lambda r: (str(r["experiment"]), str(r["data"]), _split_key(r["split"])))
    return rows


def to_markdown(rows: list[dict[str, Any]], metrics: tuple[str, ...]) -> str:
    """Markdown table: one row per (experiment, data, split), metrics as mean ± std (%) over seeds."""
    present = [m for m in metrics if any(m in r for r in rows)]
    lines = ["| experiment | data | split | seeds | " + " | ".join(present) + " |",
             "|---|---|---:|---:|" + "---:|" * len(present)]
    for r in rows:
        cells = []
        for m in present:
            s = r.get(m)
            cells.append("—" if s is None else f"{100 * s['mean']:.2f} ± {100 * s['std']:.2f}")
        lines.append(f"| {r['experiment']} | {r['data']} | {r['split']} | {len(r['seeds'])} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def to_csv(rows: list[dict[str, Any]], metrics: tuple[str, ...]) -> str:
    """CSV with ``<metric>_mean``, ``<metric>_std``, ``<metric>_n`` columns (fractions)."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["experiment", "data", "split", "seeds"]
               + [f"{m}_{s}" for m in metrics for s in ("mean", "std", "n")])
    for r in rows:
        vals = []
        for m in metrics:
            s = r.get(m)
            vals += ["", "", ""] if s is None else [f"{s['mean']:.6f}", f"{s['std']:.6f}", s["n"]]
        w.writerow([r["experiment"], r["data"], r["split"], " ".join(map(str, r["seeds"]))] + vals)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> str:
    """Command-line entry point; returns the markdown table."""
    parser = argparse.ArgumentParser(prog="python -m leseg.aggregate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep_dir", type=Path, help="a multirun directory (or any run tree)")
    parser.add_argument("--metrics", nargs="+", default=list(DEFAULT_METRICS))
    args = parser.parse_args(argv)
    metrics = tuple(args.metrics)
    rows = aggregate(load_runs(args.sweep_dir), metrics)
    md = to_markdown(rows, metrics)
    atomic_write_text(args.sweep_dir / "aggregate.md", md)
    atomic_write_text(args.sweep_dir / "aggregate.csv", to_csv(rows, metrics))
    atomic_write_json(args.sweep_dir / "aggregate.json", rows)
    print(md, end="")
    return md


if __name__ == "__main__":
    main()
