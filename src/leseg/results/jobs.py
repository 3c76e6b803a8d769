"""Jobs of a results page: training runs (one per entry, label split and seed) and the steps
they need (a pretraining run, an export, an offline stage), run in parallel lanes in dependency
order.

A training job is a single-job Hydra multirun (``train.py -m experiment=… data.split=… seed=…``)
whose run directory is fixed by the page, ``<sweep dir>/<entry>/<split>/seed<k>``, so that a job
that already wrote its ``metrics.json`` (written atomically at the very end of training + test) is
known to be finished and is skipped when the page is regenerated: an interrupted sweep resumes where
it stopped. A :class:`Step` runs into ``<sweep dir>/steps/<name>/seed<k>`` (or
``steps/<name>/shared`` when it does not depend on the seed) and is finished when its ``done``
file exists. Jobs and steps name the steps they need with ``{step:<name>}`` in their overrides or
arguments (the step's directory, same seed); :func:`run_jobs` starts a unit only when the steps it
needs have finished. Lanes run with ``OMP_NUM_THREADS = cores // lanes`` each (on a 2-core CPU two
one-thread lanes are ~2x faster than one two-thread run).
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = ["Job", "JobFailed", "Step", "find_step", "prepare_data", "run_jobs", "substitute"]

REPO = Path(__file__).resolve().parents[3]


class JobFailed(RuntimeError):
    """One or more training jobs exited with an error (the message names their logs)."""


_STEP_REF = re.compile(r"\{step:([A-Za-z0-9_.-]+)\}")


def step_refs(texts: Sequence[str]) -> tuple[str, ...]:
    """The step names that ``texts`` refer to with ``{step:<name>}``, in order, without repeats."""
    names: list[str] = []
    for text in texts:
        names += [n for n in _STEP_REF.findall(str(text)) if n not in names]
    return tuple(names)


def substitute(text: str, step_dir, seed: int, own_dir: Path | None = None) -> str:
    """Replace ``{step:<name>}`` with ``step_dir(name)``, ``{seed}`` with the seed and ``{dir}``
    with ``own_dir`` in one override or argument."""
    text = _STEP_REF.sub(lambda m: str(step_dir(m.group(1))), str(text))
    text = text.replace("{seed}", str(seed))
    if own_dir is not None:
        text = text.replace("{dir}", str(own_dir))
    return text


@dataclass(frozen=True)
class Step:
    """A unit of work a page's jobs need: a training run (``train``, e.g. BYOL pretraining), a
    module of leseg run as ``python -m <module> <args>`` (``module``, e.g. ``leseg.export``) or an
    offline stage ``python -m leseg.stages <stage> <overrides>`` (``stage``).

    Attributes:
        name: the step's name (``{step:<name>}`` refers to its directory).
        kind: ``"train"`` | ``"module"`` | ``"stage"``.
        target: the experiment, the module or the stage config.
        args: Hydra overrides (train, stage) or command-line arguments (module); ``{step:<name>}``,
            ``{seed}`` and ``{dir}`` (this step's directory) are substituted.
        seed: the seed of a per-seed step, or None for one shared run (trained with seed 0).
        done: the file, relative to the step's directory, whose existence means finished (train
            steps: ``metrics.json`` unless given; module and stage steps need it).
    """

    name: str
    kind: str
    target: str
    args: tuple[str, ...] = ()
    seed: int | None = None
    done: str = "metrics.json"

    @property
    def needs(self) -> tuple[str, ...]:
        """The step names this step refers to."""
        return step_refs(self.args)

    @property
    def label(self) -> str:
        return f"step {self.name}" + ("" if self.seed is None else f" seed {self.seed}")

    def run_dir(self, sweep_dir: Path) -> Path:
        """``<sweep_dir>/steps/<name>/seed<seed>`` (``…/shared`` for a seed-independent step)."""
        return Path(sweep_dir) / "steps" / self.name / (
            "shared" if self.seed is None else f"seed{self.seed}")

    def is_done(self, sweep_dir: Path) -> bool:
        return (self.run_dir(sweep_dir) / self.done).is_file()

    def args_for(self, step_dir, own_dir: Path | None = None) -> list[str]:
        """``args`` with ``{step:<name>}`` (``step_dir(name)``), ``{seed}`` (0 for a shared step)
        and ``{dir}`` (``own_dir``) substituted."""
        seed = 0 if self.seed is None else self.seed
        return [substitute(a, step_dir or (lambda n: n), seed, own_dir) for a in self.args]

    def hydra_overrides(self, step_dir=None, own_dir: Path | None = None) -> list[str]:
        """A train step's ``train.py`` overrides: experiment, seed (0 when shared), its args."""
        return [f"experiment={self.target}", f"seed={0 if self.seed is None else self.seed}",
                *self.args_for(step_dir, own_dir)]

    def command(self, sweep_dir: Path, python: str, extra: Sequence[str] = (), step_dir=None
                ) -> list[str]:
        """The command line; ``step_dir(name)`` gives the directory of a step this one needs.
        Command-line overrides (``extra``) reach train steps only (a stage or module has its own
        arguments)."""
        own = self.run_dir(sweep_dir)
        if self.kind == "train":
            return [python, str(REPO / "train.py"), "-m", *self.hydra_overrides(step_dir, own),
                    *extra, f"hydra.sweep.dir={own.parent}", f"hydra.sweep.subdir={own.name}"]
        args = self.args_for(step_dir, own)
        if self.kind == "stage":
            return [python, "-m", "leseg.stages", self.target, *args, f"hydra.run.dir={own}"]
        if self.kind == "module":
            return [python, "-m", self.target, *args]
        raise ValueError(f"step {self.name}: kind must be train, module or stage, got {self.kind!r}")


@dataclass(frozen=True)
class Job:
    """One training run of a page.

    Attributes:
        entry: the page entry's name (a directory name: experiment or variant label).
        experiment: the ``conf/experiment/`` name.
        split: the ``data.split`` value (labelled count, ``1_16``-style name or ``full``), or
            ``"-"`` for a dataset without label splits (no ``data.split`` override).
        seed: the run seed (``seed=``).
        overrides: further Hydra overrides of this entry (``key=value`` strings; ``{step:<name>}``
            and ``{seed}`` are substituted).
        sweep: the run lives under this sweep directory instead of the page's (an entry that
            reuses another page's runs, e.g. the supervised curve's ends).
    """

    entry: str
    experiment: str
    split: str
    seed: int
    overrides: tuple[str, ...] = field(default_factory=tuple)
    sweep: str | None = None

    @property
    def needs(self) -> tuple[str, ...]:
        """The step names this job refers to."""
        return step_refs(self.overrides)

    @property
    def label(self) -> str:
        return f"{self.entry} split {self.split} seed {self.seed}"

    def run_dir(self, sweep_dir: Path) -> Path:
        """``<sweep_dir>/<entry>/<split>/seed<seed>`` (the job's own sweep when it has one)."""
        base = Path(self.sweep) if self.sweep else Path(sweep_dir)
        return base / self.entry / str(self.split) / f"seed{self.seed}"

    def hydra_overrides(self, step_dir=None) -> list[str]:
        """The overrides that select this job's experiment, split and seed, then the entry's own."""
        own = [substitute(o, step_dir, self.seed) if step_dir else o for o in self.overrides]
        split = [] if self.split == "-" else [f"data.split={self.split}"]  # "-": the data config's
        return [f"experiment={self.experiment}", *split, f"seed={self.seed}", *own]

    def is_done(self, sweep_dir: Path) -> bool:
        """True when the run directory holds ``metrics.json`` (the job finished)."""
        return (self.run_dir(sweep_dir) / "metrics.json").is_file()

    def command(self, sweep_dir: Path, python: str, extra: Sequence[str] = (), step_dir=None
                ) -> list[str]:
        """The ``train.py -m`` command line of this job (one job, a fixed run directory)."""
        run_dir = self.run_dir(sweep_dir)
        return [python, str(REPO / "train.py"), "-m", *self.hydra_overrides(step_dir), *extra,
                f"hydra.sweep.dir={run_dir.parent}", f"hydra.sweep.subdir={run_dir.name}"]


def prepare_data(jobs: Sequence[Job | Step], extra: Sequence[str] = (),
                 make_splits: str | None = None, step_dirs=None) -> None:
    """Run each distinct dataset's ``prepare_data`` once, in this process, before the lanes start
    (synthetic datasets and their split files are generated when missing; two lanes racing to
    write them would collide).

    Args:
        jobs: training jobs and steps (only ``train`` steps have a dataset).
        make_splits: for a real dataset, the :func:`leseg.data.splits.make_splits` dataset name
            (``camvid``, ``cityscapes``, ``voc``) whose missing split files of a numeric
            ``data.split`` are drawn here, nested, with the config's ``data.split_seed`` into its
            ``data.splits_dir`` (the page config's ``make_splits`` key); None = never (a missing
            split file is then the DataModule's error).
        step_dirs: ``step_dirs(unit)(name)`` is the directory of step ``name`` for that unit
            (substituted for ``{step:<name>}``; the directories need not exist yet).
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.utils import instantiate

    from leseg.data.splits import make_splits as draw_splits
    from leseg.data.splits import split_file
    from leseg.utils.resolvers import register_resolvers

    register_resolvers()
    seen: set[tuple] = set()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        for job in jobs:
            step_dir = step_dirs(job) if step_dirs else (lambda n: n)
            if isinstance(job, Step) and job.kind != "train":
                continue
            cfg = compose("train", overrides=[*job.hydra_overrides(step_dir), *extra])
            key = (cfg.data.get("_target_"), str(cfg.data.get("root")), str(cfg.data.get("split")))
            if key in seen:
                continue
            seen.add(key)
            split = str(cfg.data.get("split"))
            if make_splits and split.isdigit() and not all(
                    split_file(cfg.data.splits_dir, split, w).is_file()
                    for w in ("labeled", "unlabeled")):
                draw_splits(make_splits, cfg.data.root, [int(split)],
                            seed=int(cfg.data.get("split_seed", 0)), out=cfg.data.splits_dir)
            instantiate(cfg.data).prepare_data()


def find_step(steps: dict[tuple[str, int | None], Step], name: str, seed: int | None
              ) -> Step | None:
    """The step ``name`` for ``seed`` in ``{(name, seed): step}``: its per-seed run, else its
    shared one (``seed`` None); None when the page has no such step."""
    return steps.get((name, seed)) or steps.get((name, None))


def run_jobs(jobs: Sequence[Job], sweep_dir: Path, lanes: int = 1, python: str | None = None,
             extra: Sequence[str] = (), dry_run: bool = False,
             make_splits: str | None = None, steps: Sequence[Step] = (),
             threads: int | None = None) -> list[Job | Step]:
    """Run every unfinished step and job, ``lanes`` at a time, each once the steps it needs (same
    seed, else the shared one) have finished; return the units that were run.

    Units start in the given order (steps first) as soon as a lane is free and their steps are
    done; a unit whose step failed is not started.

    Args:
        jobs: the page's jobs, in the order to start them.
        sweep_dir: the page's sweep directory.
        lanes: parallel processes (>= 1).
        python: interpreter (default: this one).
        extra: Hydra overrides appended to every job and train step (from the command line).
        dry_run: print the commands of the unfinished units, run nothing.
        make_splits: see :func:`prepare_data`.
        steps: the steps the jobs need.
        threads: OMP / MKL threads per lane (default ``cores // lanes``; e.g. 1 when two runners
            share the cores).

    Raises:
        ValueError: ``lanes`` < 1; a job or step refers to a step that is not defined.
        JobFailed: a unit exited non-zero (or left no ``done`` file), or could not start because
            a step it needs failed; the others still ran to the end. A unit's log is
            ``<sweep_dir>/logs/<entry>_<split>_seed<k>.log`` (steps: ``step_<name>_<seed>.log``).
    """
    if lanes < 1:
        raise ValueError(f"lanes must be >= 1, got {lanes}")
    python = python or sys.executable
    by_key = {(st.name, st.seed): st for st in steps}

    def step_for(name: str, seed: int | None) -> Step:
        step = find_step(by_key, name, seed)
        if step is None:
            raise ValueError(f"{{step:{name}}} (seed {seed}) refers to a step the page does not "
                             f"define; steps: {sorted({n for n, _ in by_key})}")
        return step

    def deps(unit: Job | Step) -> list[Step]:
        return [step_for(n, unit.seed) for n in unit.needs]

    def dir_of(unit: Job | Step):
        return lambda name: step_for(name, unit.seed).run_dir(sweep_dir)

    units: list[Job | Step] = [*steps, *jobs]
    for unit in units:
        deps(unit)  # every reference resolves, before anything runs
    todo = [u for u in units if not u.is_done(sweep_dir)]
    for unit in units:
        if unit not in todo:
            log.info("done already: %s", unit.run_dir(sweep_dir))
    if dry_run:
        for unit in todo:
            print(shlex.join(unit.command(sweep_dir, python, extra, step_dir=dir_of(unit))))
        return []
    if not todo:
        return []
    prepare_data(todo, extra, make_splits, step_dirs=dir_of)
    threads = threads or max(1, (os.cpu_count() or 1) // lanes)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    logs = Path(sweep_dir) / "logs"
    logs.mkdir(parents=True, exist_ok=True)

    def log_path(unit: Job | Step) -> Path:
        if isinstance(unit, Step):
            return logs / f"step_{unit.name}_{'shared' if unit.seed is None else unit.seed}.log"
        return logs / f"{unit.entry}_{unit.split}_seed{unit.seed}.log"

    def run(unit: Job | Step) -> int:
        path = log_path(unit)
        print(f"[results] start {unit.label} -> {path}", flush=True)
        if isinstance(unit, Step):
            unit.run_dir(sweep_dir).mkdir(parents=True, exist_ok=True)
        with path.open("w") as out:
            code = subprocess.run(unit.command(sweep_dir, python, extra, step_dir=dir_of(unit)),
                                  stdout=out, stderr=subprocess.STDOUT, env=env,
                                  cwd=REPO).returncode
        ok = code == 0 and unit.is_done(sweep_dir)
        print(f"[results] {'done' if ok else f'FAILED ({code})'} {unit.label}", flush=True)
        return code

    failed: list[str] = []
    pending = list(todo)
    running: dict[Future, Job | Step] = {}
    broken: set[Step] = set()
    with ThreadPoolExecutor(max_workers=lanes) as pool:
        while pending or running:
            for unit in list(pending):
                if len(running) >= lanes:
                    break
                needed = deps(unit)
                if any(d in broken for d in needed):
                    pending.remove(unit)
                    failed.append(f"{unit.label} (not started: a step it needs failed)")
                    if isinstance(unit, Step):
                        broken.add(unit)
                elif all(d.is_done(sweep_dir) for d in needed):
                    pending.remove(unit)
                    running[pool.submit(run, unit)] = unit
            if not running:
                if pending:  # waiting on steps that are neither done nor pending: cannot happen
                    failed += [f"{u.label} (its steps never finished)" for u in pending]
                break
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in finished:
                unit = running.pop(future)
                if future.result() != 0 or not unit.is_done(sweep_dir):
                    failed.append(f"{unit.label} (log {log_path(unit)})")
                    if isinstance(unit, Step):
                        broken.add(unit)
    if failed:
        raise JobFailed("training job(s) failed: " + "; ".join(failed))
    return todo
