"""``data.on_bad_sample=skip``: log and replace unreadable samples instead of stopping the run.

By default (``on_bad_sample=raise``) a corrupt image, a label with values outside the class table,
an image/label size mismatch, a file that vanished, or a split id without files stops the run with
an error naming the file (see :mod:`leseg.data.io` and the dataset classes). With ``skip``:

- a sample that fails to load is logged (file and reason) and replaced by the next loadable sample
  (``index + 1``, ``index + 2``, ... modulo the dataset length), so the number of batches, and
  thus DDP's lock-step, is unchanged (:class:`SkipBadSamples`);
- split ids without image or label files are dropped when the dataset is built (the dataset
  classes' ``on_missing="skip"``);
- every skip is appended as one JSON line to a log file shared by all loader workers and ranks
  (``<run dir>/skipped_samples.jsonl`` in training); :func:`summarize_skips` turns it into the
  ``skipped_samples`` entry of ``metrics.json``.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset, Subset

BAD_SAMPLE_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError)
"""What a bad sample raises: ImageDecodeError / FileNotFoundError (OSError), bad values (ValueError)."""

ON_BAD_SAMPLE = ("raise", "skip")

log = logging.getLogger(__name__)


def check_on_bad_sample(value: str, where: str = "data.on_bad_sample") -> str:
    """Validate the option. Raises ValueError naming the key for anything but raise|skip."""
    if value not in ON_BAD_SAMPLE:
        raise ValueError(f"{where}={value!r}: expected one of {list(ON_BAD_SAMPLE)}")
    return value


def record_skip(log_path: str | os.PathLike, name: str, reason: str, stage: str) -> None:
    """Append one skip (sample name, reason naming the file, stage) to ``log_path`` and warn.

    One ``O_APPEND`` write per record, so concurrent workers and ranks do not interleave lines.
    """
    log.warning(f"on_bad_sample=skip: skipping {name} ({stage}): {reason}")
    line = json.dumps({"name": name, "reason": reason, "stage": stage}) + "\n"
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode("utf-8"))
    finally:
        os.close(fd)


def _sample_name(dataset: Dataset, index: int) -> str:
    while isinstance(dataset, Subset):
        index, dataset = dataset.indices[index], dataset.dataset
    names = getattr(dataset, "names", None)
    return str(names[index]) if names is not None else f"index {index}"


class SkipBadSamples(Dataset):
    """Wrap a map-style dataset: a sample that raises one of :data:`BAD_SAMPLE_ERRORS` is logged to
    ``log_path`` and replaced by the next one that loads.

    Args:
        dataset: the dataset (any ``__getitem__(int)``).
        log_path: JSON-lines skip log (see :func:`record_skip`).
        stage: ``train``/``val``/``test``, written into the log.
        max_tries: consecutive failures tolerated before giving up.

    Raises:
        RuntimeError: ``max_tries`` consecutive samples failed (the last error chained).
    """

    def __init__(self, dataset: Dataset, log_path: str | os.PathLike, stage: str = "train",
                 max_tries: int = 16) -> None:
        self.dataset = dataset
        self.log_path = str(log_path)
        self.stage = stage
        self.max_tries = max_tries

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        n = len(self.dataset)
        error: BaseException | None = None
        for k in range(min(n, self.max_tries)):
            i = (index + k) % n
            try:
                return self.dataset[i]
            except BAD_SAMPLE_ERRORS as err:
                error = err
                record_skip(self.log_path, _sample_name(self.dataset, i), f"{type(err).__name__}: {err}",
                            self.stage)
        raise RuntimeError(f"on_bad_sample=skip: {min(n, self.max_tries)} consecutive samples from "
                           f"index {index} of the {self.stage} set failed to load; last error: "
                           f"{error}") from error


def summarize_skips(log_path: str | os.PathLike | None) -> dict[str, Any]:
    """``{"count": distinct samples skipped, "events": skips in all, "samples": [{name, reason,
    stage}, ...]}`` from a skip log (zeros when there is none)."""
    if log_path is None or not Path(log_path).is_file():
        return {"count": 0, "events": 0, "samples": []}
    records = [json.loads(line) for line in Path(log_path).read_text().splitlines() if line.strip()]
    distinct: dict[tuple[str, str], dict] = {}
    for rec in records:
        distinct.setdefault((rec["stage"], rec["name"]), rec)
    return {"count": len(distinct), "events": len(records), "samples": list(distinct.values())}


__all__ = ["BAD_SAMPLE_ERRORS", "SkipBadSamples", "check_on_bad_sample", "record_skip",
           "summarize_skips"]
