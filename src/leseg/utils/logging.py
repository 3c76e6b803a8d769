"""A logger that prints once per job, on global rank 0 only (multi-GPU runs would repeat it)."""

from __future__ import annotations

import logging

from lightning.pytorch.utilities import rank_zero_only


class _RankZeroFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:  # noqa: D102
        return rank_zero_only.rank == 0


def get_logger(name: str = __name__) -> logging.Logger:
    """Return a standard :mod:`logging` logger whose records are emitted on rank 0 only."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, _RankZeroFilter) for f in logger.filters):
        logger.addFilter(_RankZeroFilter())
    return logger
