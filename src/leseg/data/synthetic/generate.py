"""Entry points: generate a synthetic dataset (atomically) or make sure one exists at a root."""

from __future__ import annotations

import contextlib
import inspect
import logging
import multiprocessing
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from .city import CITY_CITIES, CitySample, city_sample_ids, write_city_sample
from .city_scene import CITY_LABEL_IDS
from .storage import MARKER_NAME, build_atomically, read_marker
from .voc import voc_palette, voc_sample_ids, voc_sample_rng, write_voc_sample
from .voc_objects import VOC_OBJECT_CLASSES

__all__ = ["GENERATOR_VERSION", "ensure_synthetic", "generate_synthetic_city",
           "generate_synthetic_voc"]

log = logging.getLogger(__name__)

GENERATOR_VERSION = 3
"""Bumped whenever the generated content changes; a dataset made by another version is stale."""

_PROGRESS_MIN_ITEMS = 32
_PARALLEL_MIN_JOBS = 48
_MAX_WORKERS = 2
_VOC_PALETTE = voc_palette()
_CITY_DIRS = ("leftImg8bit", "leftImg8bit_sequence", "gtFine", "camera", "vehicle", "disparity")
_VOC_DIRS = ("JPEGImages", "SegmentationClass", "SegmentationClassAug", "ImageSets")
_T = TypeVar("_T")
_R = TypeVar("_R")


def _worker_count(jobs: int) -> int:
    """Processes to generate with: up to 2 (forked) for large datasets where fork exists, else 1.

    ``LESEG_SYNTHETIC_WORKERS`` overrides the number (1 = in this process). Results never depend
    on it: every sample is drawn from its own random generator.
    """
    requested = os.environ.get("LESEG_SYNTHETIC_WORKERS")
    if requested is not None:
        try:
            workers = int(requested)
        except ValueError:
            raise ValueError(f"LESEG_SYNTHETIC_WORKERS must be an integer, got "
                             f"{requested!r}") from None
    else:
        workers = min(_MAX_WORKERS, os.cpu_count() or 1) if jobs >= _PARALLEL_MIN_JOBS else 1
    if "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return max(1, min(workers, jobs))


def _run(fn: Callable[[_T], _R], jobs: list[_T], description: str) -> Iterator[_R]:
    """Apply ``fn`` to every job (in worker processes if :func:`_worker_count` says so), yielding
    the results in completion order, with a rich progress bar on stderr for long runs."""
    workers = _worker_count(len(jobs))
    with contextlib.ExitStack() as stack:
        if workers > 1:
            pool = stack.enter_context(multiprocessing.get_context("fork").Pool(workers))
            results: Iterable[_R] = pool.imap_unordered(fn, jobs, chunksize=2)
        else:
            results = map(fn, jobs)
        if len(jobs) < _PROGRESS_MIN_ITEMS:
            yield from results
            return
        from rich.console import Console
        from rich.progress import track

        yield from track(results, total=len(jobs), description=description,
                         console=Console(stderr=True), transient=True)


def _city_job(job: tuple[Path, CitySample, int, int]) -> tuple[str, Counter]:
    """Write one synthetic_city sample; return its split and labelId pixel counts."""
    tmp, sample, height, width = job
    return sample.split, Counter(write_city_sample(tmp, sample, height, width))


def _voc_job(job: tuple[Path, str, int, str, int, int, int]) -> tuple[str, Counter]:
    """Write one synthetic_voc image; return its split and label value pixel counts."""
    tmp, split, index, image_id, seed, height, width = job
    rng = voc_sample_rng(seed, split, index)
    return split, Counter(write_voc_sample(tmp, image_id, rng, height, width, _VOC_PALETTE))


def _check_params(params: dict[str, Any]) -> None:
    """Validate generator parameters; raise ValueError naming the bad key."""
    limits = {"num_train": (1, 10**6), "num_val": (1, 10**6), "height": (32, 4096),
              "width": (32, 4096), "seed": (0, 2**63 - 1)}
    for key, value in params.items():
        lo, hi = limits[key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"synthetic dataset parameter {key!r} must be an integer, got "
                             f"{value!r} ({type(value).__name__})")
        if not lo <= value <= hi:
            raise ValueError(f"synthetic dataset parameter {key!r} must lie in [{lo}, {hi}], "
                             f"got {value}")


def _fractions(counts: Counter, names: dict[int, str]) -> dict[str, float]:
    total = sum(counts.values()) or 1
    return {names.get(k, str(k)): round(counts[k] / total, 5) for k in sorted(counts)}


def _looks_generated(root: Path, top_dirs: Iterable[str], prefix_check: Callable[[Path], bool]
                     ) -> bool:
    """True if ``root`` holds nothing but this generator's folders and file names (a leftover)."""
    if not root.is_dir():
        return False
    allowed = set(top_dirs) | {MARKER_NAME}
    entries = list(root.iterdir())
    return all(e.name in allowed for e in entries) and all(prefix_check(e) for e in entries)


def _city_leftover(entry: Path) -> bool:
    if not entry.is_dir():
        return True
    cities = {c for split in CITY_CITIES.values() for c in split}
    return all(city.name in cities for split in entry.iterdir() if split.is_dir()
               for city in split.iterdir())


def _voc_leftover(entry: Path) -> bool:
    if not entry.is_dir() or entry.name == "ImageSets":
        return True
    return all(f.name.startswith("syn_") for f in entry.iterdir())


def generate_synthetic_city(root: str | Path, *, num_train: int = 200, num_val: int = 50,
                            height: int = 128, width: int = 256, seed: int = 0) -> Path:
    """Generate ``synthetic_city`` (Cityscapes layout + sequences, camera, vehicle, disparity).

    The dataset is built in a temporary sibling folder and renamed onto ``root`` when complete
    (marker ``leseg_synthetic.json`` written last); an existing generated dataset at ``root`` is
    replaced. Deterministic: the same parameters give byte-identical files.

    Args:
        root: dataset folder, e.g. ``data/synthetic_city``.
        num_train, num_val: number of sequences (= annotated frames) in train / val.
        height, width: image size in pixels (>= 32).
        seed: dataset seed; sample i of a split is drawn from (seed, split, i) alone.

    Returns:
        ``root`` as a Path.

    Raises:
        ValueError: a parameter is not an integer in its range, or ``root`` exists without a
            marker and holds files this generator does not write (never deleted).
    """
    params = {"num_train": num_train, "num_val": num_val, "height": height, "width": width,
              "seed": seed}
    _check_params(params)
    root = Path(root)
    counts: dict[str, Counter] = {"train": Counter(), "val": Counter()}

    def build(tmp: Path) -> dict[str, Any]:
        samples = (city_sample_ids("train", num_train, seed)
                   + city_sample_ids("val", num_val, seed))
        log.info("Generating synthetic_city (%d train + %d val sequences, %dx%d) into %s",
                 num_train, num_val, height, width, root)
        jobs = [(tmp, sample, height, width) for sample in samples]
        for split, result in _run(_city_job, jobs, "synthetic_city"):
            counts[split].update(result)
        names = {v: k for k, v in CITY_LABEL_IDS.items()}
        return {"label_pixel_fraction": {s: _fractions(c, names) for s, c in counts.items()}}

    return build_atomically(root, _identity("city", params), build,
                            lambda r: _looks_generated(r, _CITY_DIRS, _city_leftover))


def generate_synthetic_voc(root: str | Path, *, num_train: int = 200, num_val: int = 50,
                           height: int = 128, width: int = 160, seed: int = 0) -> Path:
    """Generate ``synthetic_voc`` in the VOC2012 layout into ``root`` (the ``VOC2012`` folder).

    Writes ``JPEGImages/``, ``SegmentationClass/`` (palette PNGs), ``SegmentationClassAug/``
    (grayscale PNGs) and ``ImageSets/Segmentation/{train,val,trainval,train_aug}.txt``; built
    atomically like :func:`generate_synthetic_city`, deterministic in its parameters.

    Args:
        root: the ``VOC2012`` folder, e.g. ``data/synthetic_voc/VOC2012``.
        num_train, num_val: number of images per split.
        height, width: image size in pixels (>= 32).
        seed: dataset seed; image i of a split is drawn from (seed, split, i) alone.

    Returns:
        ``root`` as a Path.

    Raises:
        ValueError: as :func:`generate_synthetic_city`.
    """
    params = {"num_train": num_train, "num_val": num_val, "height": height, "width": width,
              "seed": seed}
    _check_params(params)
    root = Path(root)
    counts: dict[str, Counter] = {"train": Counter(), "val": Counter()}

    def build(tmp: Path) -> dict[str, Any]:
        ids = {"train": voc_sample_ids("train", num_train, num_train),
               "val": voc_sample_ids("val", num_train, num_val)}
        jobs = [(tmp, split, i, image_id, seed, height, width) for split in ("train", "val")
                for i, image_id in enumerate(ids[split])]
        log.info("Generating synthetic_voc (%d train + %d val images, %dx%d) into %s",
                 num_train, num_val, height, width, root)
        for split, result in _run(_voc_job, jobs, "synthetic_voc"):
            counts[split].update(result)
        lists = tmp / "ImageSets" / "Segmentation"
        lists.mkdir(parents=True, exist_ok=True)
        for name, content in (("train", ids["train"]), ("val", ids["val"]),
                              ("trainval", sorted(ids["train"] + ids["val"])),
                              ("train_aug", ids["train"])):
            (lists / f"{name}.txt").write_text("".join(f"{i}\n" for i in content))
        names = {0: "background", 255: "border", **VOC_OBJECT_CLASSES}
        return {"label_pixel_fraction": {s: _fractions(c, names) for s, c in counts.items()}}

    return build_atomically(root, _identity("voc", params), build,
                            lambda r: _looks_generated(r, _VOC_DIRS, _voc_leftover))


_GENERATORS: dict[str, Callable[..., Path]] = {"city": generate_synthetic_city,
                                               "voc": generate_synthetic_voc}


def _identity(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """The marker keys that must match for an existing dataset to be reused."""
    return {"kind": kind, "generator_version": GENERATOR_VERSION, **params}


def _full_params(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    signature = inspect.signature(_GENERATORS[kind])
    defaults = {name: p.default for name, p in signature.parameters.items()
                if p.kind is inspect.Parameter.KEYWORD_ONLY}
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise ValueError(f"unknown synthetic_{kind} parameter(s) {unknown}; expected a subset of "
                         f"{sorted(defaults)}")
    return {**defaults, **params}


def ensure_synthetic(kind: str, root: str | Path, **params: Any) -> Path:
    """Make sure ``root`` holds the synthetic dataset ``kind`` generated with ``params``.

    * ``root`` holds a complete dataset (marker ``leseg_synthetic.json``) made with the same kind,
      generator version and parameters (defaults filled in): return at once;
    * it holds one made with different ones: raise (nothing is deleted);
    * otherwise (missing, or a leftover without a marker): generate it.

    Args:
        kind: "city" (:func:`generate_synthetic_city`) or "voc" (:func:`generate_synthetic_voc`).
        root: dataset folder (for "voc" the ``VOC2012`` folder).
        **params: keyword arguments of the generator (num_train, num_val, height, width, seed).

    Returns:
        ``root`` as a Path.

    Raises:
        ValueError: unknown kind or parameter, a bad parameter value, or ``root`` holds a dataset
            generated with different parameters (the message names root and the differing keys).
    """
    if kind not in _GENERATORS:
        raise ValueError(f"synthetic dataset kind must be one of {sorted(_GENERATORS)}, "
                         f"got {kind!r}")
    full = _full_params(kind, dict(params))
    _check_params(full)
    root = Path(root)
    existing = read_marker(root)
    if existing is not None:
        wanted = _identity(kind, full)
        differing = {k: (existing.get(k), v) for k, v in wanted.items() if existing.get(k) != v}
        if not differing:
            return root
        details = ", ".join(f"{k}: existing {old!r} vs requested {new!r}"
                            for k, (old, new) in sorted(differing.items()))
        raise ValueError(f"{root} holds a synthetic dataset generated with different parameters "
                         f"({details}); delete {root} to regenerate it, or set data.root to "
                         f"another folder")
    return _GENERATORS[kind](root, **full)
