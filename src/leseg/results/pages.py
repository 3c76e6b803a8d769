"""Results pages: a page config (``conf/results/<page>.yaml``) → jobs → a generated markdown page.

Three kinds of page:

- ``curve`` — the supervised curve of one experiment over label splits (same model, crop and
  number of steps at every split), mean ± sample std over seeds, the gap between its two ends
  (``full − few``, paired by seed) against a threshold (is the setting label-limited?), and a plot
  of mIoU against the number of labelled images.
- ``methods`` — methods against the supervised curve's two ends in one setting: for each method
  and seed the paired difference ``method − few`` and the **share of the gap closed**
  ``(method − few) / (full − few)``, each as mean ± std over seeds; the paper's own figure beside
  ours; per-class IoU bars.
- ``table`` — rows of one setting without label ends (S5's suggestion types, SSENet's pipeline
  steps): per row the configured ``columns`` (mean ± std over seeds) and the paired difference of
  ``metric`` against a baseline row (``baseline``, or a row's own ``vs``).

A row is a training run (``experiment`` + ``split``), a run of another page (``page:``, e.g. the
supervised curve's ends, measured once and reused), or a value read from a step's JSON file
(``value: {file, key}``; e.g. the mIoU an offline stage wrote). Page-level ``steps`` (a
pretraining run, an export, an offline stage) run before the rows that refer to them with
``{step:<name>}`` (see :mod:`leseg.results.jobs`).

Figures are read from each job's ``metrics.json`` (fractions; pages show percentages). A page is
written atomically; with missing runs it is refused unless ``partial`` is asked for, and then it
says which runs are missing.
"""

from __future__ import annotations

import datetime
import io
import json
import math
import platform
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from leseg.aggregate import aggregate, load_runs, source_commit, to_markdown
from leseg.results.jobs import REPO, Job, Step, find_step, step_refs, substitute
from leseg.utils.io import atomic_write, atomic_write_text

__all__ = ["Entry", "PageConfigError", "build_jobs", "build_steps", "load_page", "paired",
           "render_page"]

KINDS = ("curve", "methods", "table")
STEP_KINDS = ("train", "module", "stage")


class PageConfigError(ValueError):
    """A page config that lacks a key or has a wrong value (the message names the file and key)."""


@dataclass(frozen=True)
class Entry:
    """One row of a page: an experiment at one label split (and optional overrides), or a value
    read from a step's JSON file.

    Attributes:
        sweep: the sweep directory of another page whose run this row reuses (None: this page's).
        common: the page's common overrides apply (False for another page's run, which carries
            that page's own overrides in ``overrides``).
        value_file, value_key: the row's value is ``json[value_key]`` (else
            ``json["metrics"][value_key]``, as in a run's ``metrics.json``) of ``value_file`` (with
            ``{step:<name>}`` / ``{seed}`` substituted) instead of a run's ``metrics.json``.
        vs: the row whose value this row is paired against (``table`` pages).
    """

    name: str
    experiment: str
    split: str
    overrides: tuple[str, ...] = ()
    label: str = ""
    paper: str = ""
    sweep: str | None = None
    common: bool = True
    value_file: str = ""
    value_key: str = ""
    vs: str = ""

    def jobs(self, seeds: Sequence[int], common: Sequence[str] = ()) -> list[Job]:
        """The row's training runs (none for a ``value`` row)."""
        if self.value_file:
            return []
        extra = tuple(common) if self.common else ()
        return [Job(self.name, self.experiment, self.split, int(s), extra + self.overrides,
                    sweep=self.sweep) for s in seeds]


# ----------------------------------------------------------------------------------------- config
def _need(cfg: DictConfig, key: str, where: str) -> Any:
    value = OmegaConf.select(cfg, key)
    if value is None:
        raise PageConfigError(f"{where}: missing key '{key}'")
    return value


def _entry(node: Any, where: str, default_split: str | None = None) -> Entry:
    if not isinstance(node, DictConfig):
        raise PageConfigError(f"{where}: expected a mapping with experiment/split, got {node!r}")
    label, paper, vs = (str(node.get(k) or "") for k in ("label", "paper", "vs"))
    if node.get("value") is not None:
        value = node.value
        name = node.get("name")
        if not name:
            raise PageConfigError(f"{where}: a 'value' row needs a 'name'")
        return Entry(name=str(name), experiment="", split=str(node.get("split") or "-"),
                     label=label, paper=paper, vs=vs,
                     value_file=str(_need(value, "file", f"{where}.value")),
                     value_key=str(_need(value, "key", f"{where}.value")))
    experiment = str(_need(node, "experiment", where))
    split = node.get("split", default_split)
    if split is None:
        raise PageConfigError(f"{where}: missing key 'split'")
    overrides = node.get("overrides") or []
    if not isinstance(overrides, ListConfig | list):
        raise PageConfigError(f"{where}.overrides: expected a list of key=value strings")
    overrides = tuple(str(o) for o in overrides)
    sweep, common = None, True
    if node.get("page"):  # another page's run: its sweep directory and its common overrides
        other = REPO / "conf" / "results" / f"{node.page}.yaml"
        if not other.is_file():
            raise PageConfigError(f"{where}.page: no page config {other}")
        other_cfg = OmegaConf.load(other)
        overrides = tuple(str(o) for o in (other_cfg.get("overrides") or [])) + overrides
        sweep, common = str(REPO / "outputs" / "results" / str(node.page)), False
    return Entry(name=str(node.get("name") or experiment), experiment=experiment, split=str(split),
                 overrides=overrides, label=label, paper=paper, sweep=sweep, common=common, vs=vs)


def build_steps(cfg: DictConfig, where: str = "page") -> list[Step]:
    """The page's ``steps`` for its seeds (a step with ``per_seed: false`` once, shared).

    Each step is a mapping with one of ``train`` (an experiment), ``module`` (``python -m``) or
    ``stage`` (``python -m leseg.stages``), optional ``overrides`` / ``args``, ``done`` (the file
    that marks it finished; required for module and stage steps) and ``per_seed`` (default true).

    Raises:
        PageConfigError: a step without exactly one kind, or a module / stage without ``done``.
    """
    out: list[Step] = []
    seeds = [int(s) for s in cfg.seeds]
    for name, node in (cfg.get("steps") or {}).items():
        at = f"{where}: steps.{name}"
        kinds = [k for k in STEP_KINDS if node.get(k)]
        if len(kinds) != 1:
            raise PageConfigError(f"{at}: give exactly one of {list(STEP_KINDS)}")
        kind = kinds[0]
        args = tuple(str(a) for a in (node.get("overrides") or node.get("args") or []))
        done = node.get("done") or ("metrics.json" if kind == "train" else None)
        if done is None:
            raise PageConfigError(f"{at}: a {kind} step needs 'done' (the file that marks it "
                                  f"finished, relative to its directory)")
        per_seed = bool(node.get("per_seed", True))
        for seed in (seeds if per_seed else [None]):
            out.append(Step(str(name), kind, str(node[kind]), args, seed, str(done)))
    return out


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
    all_steps = build_steps(cfg, str(path))
    steps = {st.name for st in all_steps}
    for unit in [*build_jobs(cfg), *all_steps]:
        for ref in unit.needs:
            if ref not in steps:
                raise PageConfigError(f"{path}: {unit.label} refers to {{step:{ref}}}, which is "
                                      f"not in steps ({sorted(steps)})")
    for e in [*entries, *(page_figures(cfg, str(path)) if cfg.kind != "curve" else [])]:
        for ref in step_refs([e.value_file]):
            if ref not in steps:
                raise PageConfigError(f"{path}: row {e.name!r} reads {{step:{ref}}}, which is "
                                      f"not in steps ({sorted(steps)})")
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
    if cfg.kind == "table":
        rows = [_entry(r, f"{where}: rows[{i}]", default_split="-")
                for i, r in enumerate(_need(cfg, "rows", where))]
        names = {r.name for r in rows}
        for r in rows:
            base = _baseline_of(r, cfg)
            if base and base not in names:
                raise PageConfigError(f"{where}: row {r.name!r} is paired against {base!r}, "
                                      f"which is not a row")
        return rows
    sup = _need(cfg, "supervised", where)
    rows = [_entry(_need(sup, "few", f"{where}: supervised"), f"{where}: supervised.few"),
            _entry(_need(sup, "full", f"{where}: supervised"), f"{where}: supervised.full")]
    methods = _need(cfg, "methods", where)
    rows += [_entry(m, f"{where}: methods[{i}]") for i, m in enumerate(methods)]
    return rows


def _baseline_of(row: Entry, cfg: DictConfig) -> str:
    """The name of the row a ``table`` row is paired against: its own ``vs``, else the page's
    ``baseline`` ("" for none)."""
    return row.vs or str(cfg.get("baseline") or "")


def page_figures(cfg: DictConfig, where: str = "page") -> list[Entry]:
    """A methods or table page's ``figures``: further values shown beside the comparison, outside
    the share of the gap or the paired table (e.g. BYOL's linear probe, SSENet's affinity audit)."""
    return [_entry(f, f"{where}: figures[{i}]") for i, f in enumerate(cfg.get("figures") or [])]


def build_jobs(cfg: DictConfig) -> list[Job]:
    """Every training job of the page, seed-major (all rows of seed 0 first), so that a partial
    sweep already pairs complete seeds; on a curve the two ends (few, full) of every seed come first
    and the splits between them after, so a partial sweep already measures the gap over all seeds.
    Rows that read a step's value have no job; the steps are :func:`build_steps`."""
    seeds = [int(s) for s in cfg.seeds]
    entries = page_entries(cfg)
    common = tuple(str(o) for o in (cfg.get("overrides") or []))

    def jobs(rows: list[Entry]) -> list[Job]:
        return [job for s in seeds for e in rows for job in e.jobs([s], common)]

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


def _verdict(diffs: Sequence[float], above: str, below: str) -> str:
    """The verdict on paired differences: ``above`` / ``below`` when the mean is further from 0
    than the seeds' spread (sample std), "within seed noise" when it is not, and for one seed
    the sign only, said to be one seed."""
    mean, std, n = mean_std(diffs)
    if n == 0:
        return "—"
    side = above if mean > 0 else below if mean < 0 else "ties"
    if n == 1:
        return f"{side} on 1 seed (no spread to judge)"
    return side if abs(mean) > std else f"within seed noise (|mean| <= std over {n} seeds)"


def _pm(values: Sequence[float], scale: float = 100.0, digits: int = 2, sign: bool = False) -> str:
    m, s, n = mean_std(values)
    if n == 0:
        return "—"
    fmt = f"{{:{'+' if sign else ''}.{digits}f}}"
    if n == 1:  # no spread to show from one seed
        return f"{fmt.format(scale * m)} (1 seed)"
    return f"{fmt.format(scale * m)} ± {scale * s:.{digits}f}"


def _per_run(*sweep_dirs: Path) -> dict[Path, dict[str, Any]]:
    out: dict[Path, dict[str, Any]] = {}
    for sweep_dir in dict.fromkeys(Path(d) for d in sweep_dirs):
        try:
            runs = load_runs(sweep_dir)
        except FileNotFoundError:
            continue
        out.update({Path(r["path"]).resolve(): r for r in runs})
    return out


def _step_dirs(cfg: DictConfig, sweep_dir: Path, seed: int):
    """``name -> directory`` of the page's steps for ``seed`` (its shared run when not per seed;
    :func:`load_page` has checked that every referred step exists)."""
    steps = {(st.name, st.seed): st for st in build_steps(cfg)}
    return lambda name: find_step(steps, name, seed).run_dir(sweep_dir)


def _lookup(data: dict[str, Any], key: str) -> Any:
    """``data[key]``, else ``data["metrics"][key]``, else the dotted path (``net.auc`` →
    ``data["net"]["auc"]``); None when absent."""
    if key in data:
        return data[key]
    if key in (data.get("metrics") or {}):
        return data["metrics"][key]
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _values(entry: Entry, seeds: Sequence[int], runs: dict[Path, dict], sweep_dir: Path,
            metric: str, cfg: DictConfig | None = None) -> dict[int, float]:
    out = {}
    if entry.value_file:  # a value a step wrote: json[value_key] of the file, per seed
        for seed in seeds:
            path = Path(substitute(entry.value_file, _step_dirs(cfg, sweep_dir, seed), seed))
            if path.is_file():
                data = json.loads(path.read_text())
                value = _lookup(data, entry.value_key)
                if value is not None and not math.isnan(float(value)):
                    out[seed] = float(value)
        return out
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
    entries = page_entries(cfg)
    runs = _per_run(sweep_dir, *(e.sweep for e in entries if e.sweep))
    values = {(e.name, e.split): _values(e, seeds, runs, sweep_dir, metric, cfg) for e in entries}
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
    elif cfg.kind == "table":
        lines += _table_body(cfg, entries, values, seeds, metric, runs, sweep_dir)
    else:
        lines += _methods_body(cfg, entries, values, seeds, metric, out, runs, sweep_dir, stage)
    figures = page_figures(cfg) if cfg.kind != "curve" else []
    if figures:
        lines += ["", f"## {cfg.get('figures_title') or 'Further figures'}", "",
                  "| figure | mean ± std | per seed |", "|---|---:|---|"]
        for f in figures:
            vals = _values(f, seeds, runs, sweep_dir, metric, cfg)
            scale = 100.0 if all(abs(v) <= 1.0 for v in vals.values()) else 1.0
            per_seed = ", ".join(f"{scale * v:.2f}" for _, v in sorted(vals.items()))
            lines.append(f"| {f.label or f.name} | {_pm(list(vals.values()), scale=scale)} | "
                         f"{per_seed or '—'} |")
    own = {job.run_dir(sweep_dir).resolve() for e in entries for job in e.jobs(seeds)}
    rows_runs = [r for path, r in runs.items() if path in own]  # not the steps' training runs
    if rows_runs:
        rows = aggregate(rows_runs, (metric,))
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
        verdict = _verdict(list(diff.values()), "beats the few-label baseline",
                           "LOSES to the few-label baseline")
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


def _table_body(cfg, entries, values, seeds, metric, runs, sweep_dir) -> list[str]:
    """Rows × columns (mean ± std over seeds), then each row's paired difference in ``metric``
    against its baseline row."""
    columns = list(cfg.get("columns") or [{"metric": metric, "label": f"{metric} (%)"}])
    head = "| row | split | " + " | ".join(str(c.get("label") or c.metric) for c in columns) + " |"
    lines = [f"## {cfg.get('table_title') or metric}", "", head,
             "|---|---:|" + "---:|" * len(columns)]
    for e in entries:
        cells = []
        for c in columns:
            scale = float(c.get("scale", 100.0))
            vals = values[(e.name, e.split)] if str(c.metric) == metric else _values(
                e, seeds, runs, sweep_dir, str(c.metric), cfg)
            cells.append(_pm(list(vals.values()), scale=scale, digits=int(c.get("digits", 2))))
        lines.append(f"| {e.label or e.name} | {e.split} | " + " | ".join(cells) + " |")
    by_name = {e.name: e for e in entries}
    paired_rows = [e for e in entries if _baseline_of(e, cfg) not in ("", e.name)]
    if paired_rows:
        lines += ["", f"## {metric}: each row against its baseline, paired by seed", "",
                  "| row | baseline | row − baseline (points) | verdict | paper |",
                  "|---|---|---:|---|---|"]
        for e in paired_rows:
            base = by_name[_baseline_of(e, cfg)]
            diff = paired(values[(e.name, e.split)], values[(base.name, base.split)])
            verdict = _verdict(list(diff.values()), "above its baseline", "BELOW its baseline")
            lines.append(f"| {e.label or e.name} | {base.label or base.name} | "
                         f"{_pm(list(diff.values()), sign=True)} | {verdict} | {e.paper or '—'} |")
    lines += ["", "Per seed:", ""]
    lines += _seed_table([(e.label or e.name, e.split, values[(e.name, e.split)])
                          for e in entries], seeds, "row")
    return lines
