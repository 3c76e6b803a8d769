"""Results pages: a page config (``conf/results/<page>.yaml``) → jobs → a generated markdown page.

Two kinds of page:

- ``curve`` — the supervised curve of one experiment over label splits (same model, crop and
  number of steps at every split), mean ± sample std over seeds, the gap between its two ends
  (``full − few``, paired by seed) against a threshold (is the setting label-limited?), and a plot
  of mIoU against the number of labelled images.
- ``methods`` — methods against the supervised curve's two ends in one setting: for each method
  and seed the paired difference ``method − few`` and the **share of the gap closed**
  ``(method − few) / (full − few)``, each as mean ± std over seeds; the paper's own figure beside
  ours; per-class IoU bars.

Figures are read from each job's ``metrics.json`` (fractions; pages show percentages). A page is
written atomically; with missing runs it is refused unless ``partial`` is asked for, and then it
says which runs are missing.
"""

from __future__ import annotations

import datetime
import io
import math
import platform
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from leseg.aggregate import aggregate, load_runs, source_commit, to_markdown
from leseg.results.jobs import REPO, Job
from leseg.utils.io import atomic_write, atomic_write_text

__all__ = ["Entry", "PageConfigError", "build_jobs", "load_page", "paired", "render_page"]

KINDS = ("curve", "methods")


class PageConfigError(ValueError):
    """A page config that lacks a key or has a wrong value (the message names the file and key)."""


@dataclass(frozen=True)
class Entry:
    """One row of a page: an experiment at one label split (and optional overrides)."""

    name: str
    experiment: str
    split: str
    overrides: tuple[str, ...] = ()
    label: str = ""
    paper: str = ""

    def jobs(self, seeds: Sequence[int]) -> list[Job]:
        return [Job(self.name, self.experiment, self.split, int(s), self.overrides) for s in seeds]


# ----------------------------------------------------------------------------------------- config
def _need(cfg: DictConfig, key: str, where: str) -> Any:
    value = OmegaConf.select(cfg, key)
    if value is None:
        raise PageConfigError(f"{where}: missing key '{key}'")
    return value


def _entry(node: Any, where: str, default_split: str | None = None) -> Entry:
    if not isinstance(node, DictConfig):
        raise PageConfigError(f"{where}: expected a mapping with experiment/split, got {node!r}")
    experiment = str(_need(node, "experiment", where))
    split = node.get("split", default_split)
    if split is None:
        raise PageConfigError(f"{where}: missing key 'split'")
    overrides = node.get("overrides") or []
    if not isinstance(overrides, ListConfig | list):
        raise PageConfigError(f"{where}.overrides: expected a list of key=value strings")
    return Entry(name=str(node.get("name") or experiment), experiment=experiment, split=str(split),
                 overrides=tuple(str(o) for o in overrides), label=str(node.get("label") or ""),
                 paper=str(node.get("paper") or ""))


def load_page(name_or_path: str | Path) -> tuple[str, DictConfig]:
    """Read ``conf/results/<name>.yaml`` (or a path) and check its keys.

    Returns:
        (page name, config).

    Raises:
        FileNotFoundError: no such page (lists the pages there are).
        PageConfigError: a missing key or a wrong value (names the file and the key).
    """
    path = Path(name_or_path)
    if path.suffix != ".yaml":
        path = REPO / "conf" / "results" / f"{name_or_path}.yaml"
    if not path.is_file():
        pages = sorted(p.stem for p in (REPO / "conf" / "results").glob("*.yaml"))
        raise FileNotFoundError(f"results page config {path} not found; pages: {', '.join(pages)}")
    cfg = OmegaConf.load(path)
    kind = cfg.get("kind")
    if kind not in KINDS:
        raise PageConfigError(f"{path}: kind must be one of {KINDS}, got {kind!r}")
    for key in ("title", "out", "metric", "seeds"):
        _need(cfg, key, str(path))
    if not list(cfg.seeds):
        raise PageConfigError(f"{path}: seeds is empty")
    entries = page_entries(cfg, str(path))
    names = [(e.name, e.split) for e in entries]
    if len(set(names)) != len(names):
        raise PageConfigError(f"{path}: two entries share a name and split; give one a 'name'")
    return path.stem, cfg


def page_entries(cfg: DictConfig, where: str = "page") -> list[Entry]:
    """The page's rows in order: curve splits, or supervised few/full then the methods."""
    if cfg.kind == "curve":
        curve = _need(cfg, "curve", where)
        splits = [str(s) for s in _need(curve, "splits", f"{where}: curve")]
        for key in ("few", "full"):
            if str(_need(curve, key, f"{where}: curve")) not in splits:
                raise PageConfigError(f"{where}: curve.{key}={curve[key]!r} is not in curve.splits")
        base = _entry(curve, f"{where}: curve", default_split=splits[0])
        return [Entry(base.name, base.experiment, s, base.overrides) for s in splits]
    sup = _need(cfg, "supervised", where)
    rows = [_entry(_need(sup, "few", f"{where}: supervised"), f"{where}: supervised.few"),
            _entry(_need(sup, "full", f"{where}: supervised"), f"{where}: supervised.full")]
    methods = _need(cfg, "methods", where)
    rows += [_entry(m, f"{where}: methods[{i}]") for i, m in enumerate(methods)]
    return rows


def build_jobs(cfg: DictConfig) -> list[Job]:
    """Every job of the page, seed-major (all rows of seed 0 first), so that a partial sweep
    already pairs complete seeds; on a curve the two ends (few, full) of every seed come first and
    the splits between them after, so a partial sweep already measures the gap over all seeds."""
    seeds = [int(s) for s in cfg.seeds]
    entries = page_entries(cfg)
    common = tuple(str(o) for o in (cfg.get("overrides") or []))

    def jobs(rows: list[Entry]) -> list[Job]:
        return [Job(e.name, e.experiment, e.split, s, common + e.overrides)
                for s in seeds for e in rows]

    if cfg.kind == "curve":
        ends = [str(cfg.curve.few), str(cfg.curve.full)]
        first = sorted((e for e in entries if e.split in ends), key=lambda e: ends.index(e.split))
        return jobs(first) + jobs([e for e in entries if e.split not in ends])
    return jobs(entries)


# ----------------------------------------------------------------------------------------- numbers
def paired(a: dict[int, float], b: dict[int, float]) -> dict[int, float]:
    """``a[s] − b[s]`` for the seeds both have."""
    return {s: a[s] - b[s] for s in sorted(set(a) & set(b))}


def mean_std(values: Sequence[float]) -> tuple[float, float, int]:
    """(mean, sample std (0 for one value), n); (nan, nan, 0) for none."""
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return math.nan, math.nan, 0
    return (statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0,
            len(values))


def _pm(values: Sequence[float], scale: float = 100.0, digits: int = 2, sign: bool = False) -> str:
    m, s, n = mean_std(values)
    if n == 0:
        return "—"
    fmt = f"{{:{'+' if sign else ''}.{digits}f}}"
    if n == 1:  # no spread to show from one seed
        return f"{fmt.format(scale * m)} (1 seed)"
    return f"{fmt.format(scale * m)} ± {scale * s:.{digits}f}"


def _per_run(sweep_dir: Path) -> dict[Path, dict[str, Any]]:
    try:
        runs = load_runs(sweep_dir)
    except FileNotFoundError:
        return {}
    return {Path(r["path"]).resolve(): r for r in runs}


def _values(entry: Entry, seeds: Sequence[int], runs: dict[Path, dict], sweep_dir: Path,
            metric: str) -> dict[int, float]:
    out = {}
    for job in entry.jobs(seeds):
        run = runs.get(job.run_dir(sweep_dir).resolve())
        value = None if run is None else run["metrics"].get(metric)
        if value is not None and not math.isnan(float(value)):
            out[job.seed] = float(value)
    return out


# ----------------------------------------------------------------------------------------- plots
def _save_png(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    with atomic_write(path, "wb") as f:
        f.write(buf.getvalue())


def _curve_plot(xs: list[float], values: list[dict[int, float]], labels: list[str], title: str,
                ylabel: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    pts = [(x, *mean_std(list(v.values()))[:2], lab) for x, v, lab in zip(xs, values, labels)
           if v]
    ax.errorbar([p[0] for p in pts], [100 * p[1] for p in pts], yerr=[100 * p[2] for p in pts],
                marker="o", capsize=3)
    for x, m, _, lab in pts:
        ax.annotate(lab, (x, 100 * m), textcoords="offset points", xytext=(4, 6), fontsize=8)
    ax.set_xscale("log")
    ax.minorticks_off()
    ax.set_xticks([p[0] for p in pts], [f"{p[0]:g}" for p in pts])
    lo = min(100 * (p[1] - p[2]) for p in pts)
    hi = max(100 * (p[1] + p[2]) for p in pts)
    pad = max(0.0, 10.0 - (hi - lo)) / 2 + 1.0  # show at least a 10-point span: no zoomed noise
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlabel("labelled images (log scale)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    _save_png(fig, path)
    plt.close(fig)


def _class_bars(rows: list[tuple[str, dict[str, float]]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    classes = list(rows[0][1])
    width = 0.8 / len(rows)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(classes) * max(1, len(rows) / 2)), 3.6))
    for i, (label, ious) in enumerate(rows):
        ax.bar(np.arange(len(classes)) + i * width, [100 * ious.get(c, math.nan) for c in classes],
               width, label=label)
    ax.set_xticks(np.arange(len(classes)) + 0.4 - width / 2, classes, rotation=45, ha="right",
                  fontsize=8)
    ax.set_ylabel("IoU (%)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    _save_png(fig, path)
    plt.close(fig)


def _per_class(entry: Entry, seeds: Sequence[int], runs: dict[Path, dict], sweep_dir: Path,
               prefix: str) -> dict[str, float]:
    sums: dict[str, list[float]] = {}
    for job in entry.jobs(seeds):
        run = runs.get(job.run_dir(sweep_dir).resolve())
        for key, value in (run or {}).get("metrics", {}).items():
            if key.startswith(prefix) and value is not None:
                sums.setdefault(key[len(prefix):], []).append(float(value))
    return {k: statistics.fmean(v) for k, v in sums.items()}


# ----------------------------------------------------------------------------------------- pages
def _shown(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def _header(cfg: DictConfig, command: str, sweep_dir: Path, missing: list[str]) -> list[str]:
    lines = [f"# {cfg.title} (generated page)", "",
             f"Written by `{command}` on {datetime.date.today().isoformat()}, commit "
             f"{source_commit()}, {platform.machine()} ({platform.processor() or 'cpu'}). Runs: "
             f"`{_shown(sweep_dir)}`. Do not edit by hand: rerun the command (finished runs are "
             "reused).",
             ""]
    if missing:
        lines += [f"**Partial page: {len(missing)} run(s) missing** ({', '.join(missing)}); the "
                  "figures below use the runs that exist.", ""]
    if cfg.get("setting"):
        lines += ["## Setting", "", str(cfg.setting).strip(), ""]
    return lines


def _seed_table(rows: list[tuple[str, str, dict[int, float]]], seeds: Sequence[int],
                first: str) -> list[str]:
    lines = [f"| {first} | split | mean ± std (%) | " + " | ".join(f"seed {s}" for s in seeds)
             + " |", "|---|---:|---:|" + "---:|" * len(seeds)]
    for label, split, vals in rows:
        cells = [f"{100 * vals[s]:.2f}" if s in vals else "—" for s in seeds]
        lines.append(f"| {label} | {split} | {_pm(list(vals.values()))} | " + " | ".join(cells)
                     + " |")
    return lines


def render_page(page: str, cfg: DictConfig, sweep_dir: Path, command: str,
                partial: bool = False) -> Path:
    """Write the page (and its plots) from the runs under ``sweep_dir``; return the page path.

    Raises:
        FileNotFoundError: runs are missing and ``partial`` is False (names them).
    """
    sweep_dir = Path(sweep_dir)
    seeds = [int(s) for s in cfg.seeds]
    metric = str(cfg.metric)
    runs = _per_run(sweep_dir)
    entries = page_entries(cfg)
    values = {(e.name, e.split): _values(e, seeds, runs, sweep_dir, metric) for e in entries}
    missing = [f"{e.name} {e.split} seed {s}" for e in entries for s in seeds
               if s not in values[(e.name, e.split)]]
    if missing and not partial:
        raise FileNotFoundError(f"results page {page}: {len(missing)} run(s) without {metric} "
                                f"under {sweep_dir}: {', '.join(missing[:6])}"
                                + (" …" if len(missing) > 6 else "")
                                + " (run the jobs, or pass --partial)")
    out = REPO / str(cfg.out)
    lines = _header(cfg, command, sweep_dir, missing)
    stage = metric.split("/")[0]
    if cfg.kind == "curve":
        lines += _curve_body(cfg, entries, values, seeds, metric, out)
    else:
        lines += _methods_body(cfg, entries, values, seeds, metric, out, runs, sweep_dir, stage)
    if runs:
        rows = aggregate(list(runs.values()), (metric,))
        lines += ["", f"## All runs (`leseg.aggregate`, {metric}, mean ± sample std, %)", "",
                  to_markdown(rows, (metric,)).rstrip()]
    atomic_write_text(out, "\n".join(lines) + "\n")
    return out


def _curve_body(cfg, entries, values, seeds, metric, out: Path) -> list[str]:
    curve = cfg.curve
    labelled = {str(k): float(v) for k, v in (curve.get("labelled") or {}).items()}
    few, full = values[(entries[0].name, str(curve.few))], values[(entries[0].name, str(curve.full))]
    gap = paired(full, few)
    threshold = float(curve.get("min_gap", 10.0))
    gap_mean = mean_std(list(gap.values()))[0]
    lines = [f"## {metric} against labelled images (`{entries[0].experiment}`)", ""]
    def count(split: str) -> str:
        return f"{labelled[split]:g}" if split in labelled else split

    lines += _seed_table([(count(e.split), e.split, values[(e.name, e.split)]) for e in entries],
                         seeds, "labelled images")
    verdict = ("label-limited" if gap_mean * 100 >= threshold else "NOT label-limited")
    lines += ["", f"**Gap full − few ({curve.full} − {curve.few}), paired by seed: "
              f"{_pm(list(gap.values()), sign=True)} points → {verdict}** (threshold "
              f"{threshold:g} points).", ""]
    if labelled and all(e.split in labelled for e in entries):
        png = out.with_suffix(".png")
        _curve_plot([labelled[e.split] for e in entries], [values[(e.name, e.split)] for e in entries],
                    [e.split for e in entries], str(cfg.title), f"{metric} (%)", png)
        lines += [f"![{metric} against labelled images]({png.name})", ""]
    return lines


def _methods_body(cfg, entries, values, seeds, metric, out: Path, runs, sweep_dir,
                  stage) -> list[str]:
    few_e, full_e, methods = entries[0], entries[1], entries[2:]
    few, full = values[(few_e.name, few_e.split)], values[(full_e.name, full_e.split)]
    gap = paired(full, few)
    lines = [f"## {metric}: the supervised ends and the methods", ""]
    lines += _seed_table([(f"supervised, few labels (`{few_e.name}`)", few_e.split, few),
                          (f"supervised, all labels (`{full_e.name}`)", full_e.split, full)]
                         + [(m.label or f"`{m.name}`", m.split, values[(m.name, m.split)])
                            for m in methods], seeds, "row")
    lines += ["", f"Gap the methods can close (all − few, paired by seed): "
              f"**{_pm(list(gap.values()), sign=True)} points**.", "",
              "## Share of the gap closed, paired by seed", "",
              "| method | method − few (points) | share of the gap closed (%) | verdict | paper |",
              "|---|---:|---:|---|---|"]
    for m in methods:
        nets = {run.get("eval_net") for job in m.jobs(seeds)
                if (run := runs.get(job.run_dir(sweep_dir).resolve())) is not None}
        nets.discard(None)
        evaluated = f" (evaluates the {'/'.join(sorted(nets))})" if nets else ""
        diff = paired(values[(m.name, m.split)], few)
        share = {s: diff[s] / gap[s] for s in diff if s in gap and gap[s] != 0}
        d_mean = mean_std(list(diff.values()))[0]
        verdict = ("—" if math.isnan(d_mean) else "beats the few-label baseline" if d_mean > 0
                   else "LOSES to the few-label baseline" if d_mean < 0 else "ties")
        lines.append(f"| {m.label or m.name}{evaluated} | {_pm(list(diff.values()), sign=True)} | "
                     f"{_pm(list(share.values()), digits=1, sign=True)} | {verdict} | "
                     f"{m.paper or '—'} |")
    bars = [(f"few ({few_e.split})", _per_class(few_e, seeds, runs, sweep_dir, f"{stage}/IoU/")),
            (f"all ({full_e.split})", _per_class(full_e, seeds, runs, sweep_dir, f"{stage}/IoU/"))]
    bars += [(m.label or m.name, _per_class(m, seeds, runs, sweep_dir, f"{stage}/IoU/"))
             for m in methods]
    bars = [b for b in bars if b[1]]
    if bars:
        png = out.with_name(out.stem + "_per_class.png")
        _class_bars(bars, png, f"{stage} IoU per class, mean over seeds")
        lines += ["", f"![per-class IoU]({png.name})"]
    return lines
