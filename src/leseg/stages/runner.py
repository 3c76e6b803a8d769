"""A small runner for per-item artefact stages (CAMs, CRF maps, pseudo-masks, …).

Contract: one item (a sample name) = one output file. The runner

* skips items whose output file already exists, so an interrupted stage resumes where it stopped;
* writes every output atomically (a temporary file in the destination folder, then
  :func:`os.replace`), so an interruption never leaves a partial file under the final name;
* optionally runs items in ``workers`` parallel processes (``fork`` start method, so the work
  object is inherited rather than pickled; CPU-bound stages such as the dense CRF);
* shows a ``rich`` progress bar (``progress=True``) or nothing.

Usage::

    result = run_items(names, out_path=lambda n: out / f"{n}.npz", work=compute, save=save_npz)

where ``compute(name)`` returns the item's content and ``save(path, content)`` writes it
(:func:`save_npz`, :func:`save_png` below are atomic).
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from leseg.data.io import write_png_atomic
from leseg.utils.io import atomic_write

__all__ = ["StageResult", "run_items", "save_npz", "save_png"]


def save_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` as an uncompressed ``.npz`` atomically (``np.load(allow_pickle=False)``
    reads it back)."""
    with atomic_write(path) as f:
        np.savez(f, **arrays)


def save_png(path: str | os.PathLike, content: np.ndarray | tuple[np.ndarray, np.ndarray]) -> None:
    """Write an (H, W) label map (optionally ``(array, palette)``) as a PNG atomically."""
    if isinstance(content, tuple):
        write_png_atomic(path, content[0], palette=content[1])
    else:
        write_png_atomic(path, content)


@dataclass
class StageResult:
    """Names processed now (``done``) and found finished already (``skipped``)."""

    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


_JOB: Callable[[str], None] | None = None


def _run_inherited(name: str) -> str:
    assert _JOB is not None
    _JOB(name)
    return name


def run_items(names: Iterable[str], out_path: Callable[[str], Path],
              work: Callable[[str], Any], save: Callable[[Path, Any], None],
              workers: int = 0, progress: bool = False, desc: str = "stage") -> StageResult:
    """Produce ``out_path(name)`` for every name whose file does not exist yet.

    Args:
        names: item names (unique).
        out_path: name → output file.
        work: name → content (runs in the worker processes when ``workers > 0``).
        save: (path, content) → None; must write atomically (:func:`save_npz`, :func:`save_png`).
        workers: 0 = in this process; n > 0 = a pool of n forked processes.
        progress: show a progress bar.
        desc: label of the progress bar.

    Returns:
        :class:`StageResult`.

    Raises:
        Whatever ``work``/``save`` raise (the failing item's file is not created); with workers,
        the first failure stops the pool.
    """
    names = list(names)
    todo = [n for n in names if not Path(out_path(n)).is_file()]
    result = StageResult(skipped=[n for n in names if n not in set(todo)])

    def job(name: str) -> None:
        save(Path(out_path(name)), work(name))

    for name in _iterate(job, todo, workers, progress, desc):
        result.done.append(name)
    return result


def _iterate(job: Callable[[str], None], todo: Sequence[str], workers: int, progress: bool,
             desc: str) -> Iterable[str]:
    bar = None
    if progress and todo:
        from rich.progress import Progress

        bar = Progress()
        bar.start()
        task = bar.add_task(desc, total=len(todo))
    try:
        if workers > 0 and len(todo) > 1 and "fork" in mp.get_all_start_methods():
            global _JOB
            _JOB = job
            try:
                with mp.get_context("fork").Pool(int(workers)) as pool:
                    for name in pool.imap_unordered(_run_inherited, todo):
                        if bar is not None:
                            bar.advance(task)
                        yield name
            finally:
                _JOB = None
        else:
            for name in todo:
                job(name)
                if bar is not None:
                    bar.advance(task)
                yield name
    finally:
        if bar is not None:
            bar.stop()
