"""Training jobs of a results page: one ``train.py`` run per (entry, label split, seed).

A job is a single-job Hydra multirun (``train.py -m experiment=… data.split=… seed=…``) whose run
directory is fixed by the page, ``<sweep dir>/<entry>/<split>/seed<k>``, so that a job that already
wrote its ``metrics.json`` (written atomically at the very end of training + test) is known to be
finished and is skipped when the page is regenerated: an interrupted sweep resumes where it stopped.
Jobs run in ``lanes`` parallel worker processes with ``OMP_NUM_THREADS = cores // lanes`` each
(on a 2-core CPU two one-thread lanes are ~2x faster than one two-thread run).
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = ["Job", "JobFailed", "prepare_data", "run_jobs"]

REPO = Path(__file__).resolve().parents[3]


class JobFailed(RuntimeError):
    """One or more training jobs exited with an error (the message names their logs)."""


@dataclass(frozen=True)
class Job:
    """One training run of a page.

    Attributes:
        entry: the page entry's name (a directory name: experiment or variant label).
        experiment: the ``conf/experiment/`` name.
        split: the ``data.split`` value (labelled count, ``1_16``-style name or ``full``).
        seed: the run seed (``seed=``).
        overrides: further Hydra overrides of this entry (``key=value`` strings).
    """

    entry: str
    experiment: str
    split: str
    seed: int
    overrides: tuple[str, ...] = field(default_factory=tuple)

    def run_dir(self, sweep_dir: Path) -> Path:
        """``<sweep_dir>/<entry>/<split>/seed<seed>``."""
        return Path(sweep_dir) / self.entry / str(self.split) / f"seed{self.seed}"

    def hydra_overrides(self) -> list[str]:
        """The overrides that select this job's experiment, split and seed, then the entry's own."""
        return [f"experiment={self.experiment}", f"data.split={self.split}", f"seed={self.seed}",
                *self.overrides]

    def is_done(self, sweep_dir: Path) -> bool:
        """True when the run directory holds ``metrics.json`` (the job finished)."""
        return (self.run_dir(sweep_dir) / "metrics.json").is_file()

    def command(self, sweep_dir: Path, python: str, extra: Sequence[str] = ()) -> list[str]:
        """The ``train.py -m`` command line of this job (one job, a fixed run directory)."""
        run_dir = self.run_dir(sweep_dir)
        return [python, str(REPO / "train.py"), "-m", *self.hydra_overrides(), *extra,
                f"hydra.sweep.dir={run_dir.parent}", f"hydra.sweep.subdir={run_dir.name}"]


def prepare_data(jobs: Sequence[Job], extra: Sequence[str] = (), make_splits: str | None = None
                 ) -> None:
    """Run each distinct dataset's ``prepare_data`` once, in this process, before the lanes start
    (synthetic datasets and their split files are generated when missing; two lanes racing to
    write them would collide).

    Args:
        make_splits: for a real dataset, the :func:`leseg.data.splits.make_splits` dataset name
            (``camvid``, ``cityscapes``, ``voc``) whose missing split files of a numeric
            ``data.split`` are drawn here, nested, with the config's ``data.split_seed`` into its
            ``data.splits_dir`` (the page config's ``make_splits`` key); None = never (a missing
            split file is then the DataModule's error).
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
            cfg = compose("train", overrides=[*job.hydra_overrides(), *extra])
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


def run_jobs(jobs: Sequence[Job], sweep_dir: Path, lanes: int = 1, python: str | None = None,
             extra: Sequence[str] = (), dry_run: bool = False,
             make_splits: str | None = None) -> list[Job]:
    """Run every unfinished job, ``lanes`` at a time; return the jobs that were run.

    Args:
        jobs: the page's jobs, in the order to start them.
        sweep_dir: the page's sweep directory.
        lanes: parallel training processes (>= 1).
        python: interpreter (default: this one).
        extra: Hydra overrides appended to every job (from the command line).
        dry_run: print the commands of the unfinished jobs, run nothing.
        make_splits: see :func:`prepare_data`.

    Raises:
        ValueError: ``lanes`` < 1.
        JobFailed: a job exited non-zero; the others still ran to the end. Its log is
            ``<sweep_dir>/logs/<entry>_<split>_seed<k>.log``.
    """
    if lanes < 1:
        raise ValueError(f"lanes must be >= 1, got {lanes}")
    python = python or sys.executable
    todo = [j for j in jobs if not j.is_done(sweep_dir)]
    for job in jobs:
        if job not in todo:
            log.info("done already: %s", job.run_dir(sweep_dir))
    if dry_run:
        for job in todo:
            print(shlex.join(job.command(sweep_dir, python, extra)))
        return []
    if not todo:
        return []
    prepare_data(todo, extra, make_splits)
    threads = max(1, (os.cpu_count() or 1) // lanes)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    logs = Path(sweep_dir) / "logs"
    logs.mkdir(parents=True, exist_ok=True)

    def run(job: Job) -> tuple[Job, int, Path]:
        path = logs / f"{job.entry}_{job.split}_seed{job.seed}.log"
        print(f"[results] start {job.entry} split {job.split} seed {job.seed} -> {path}", flush=True)
        with path.open("w") as out:
            code = subprocess.run(job.command(sweep_dir, python, extra), stdout=out,
                                  stderr=subprocess.STDOUT, env=env, cwd=REPO).returncode
        print(f"[results] {'done' if code == 0 else f'FAILED ({code})'} {job.entry} split "
              f"{job.split} seed {job.seed}", flush=True)
        return job, code, path

    with ThreadPoolExecutor(max_workers=lanes) as pool:
        results = list(pool.map(run, todo))
    failed = [(j, p) for j, code, p in results if code != 0 or not j.is_done(sweep_dir)]
    if failed:
        raise JobFailed("training job(s) failed: " + "; ".join(
            f"{j.entry} split {j.split} seed {j.seed} (log {p})" for j, p in failed))
    return todo
