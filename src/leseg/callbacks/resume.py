"""Callbacks for exact resume and for testing it: RNG state in checkpoints, a simulated crash.

:class:`RNGStateCheckpoint` stores Python's, NumPy's and torch's (CPU and CUDA) global RNG states in
every checkpoint and puts them back right before the first training batch after a resume: dropout
masks, random mixing boxes and anything else drawn from the global RNG during training then
continue exactly as in the uninterrupted run. (The data stream has its own seeding, see
:mod:`leseg.data.resumable`.) Restoring at the first batch, not when the checkpoint is read, skips
whatever Lightning draws while it sets the loops up again.

:class:`CrashAfterSteps` ends the process abruptly (``os._exit``, no clean-up, nothing saved) after
a given optimiser step: the fault-injection used by the resume tests, usable from the command line
(``+callbacks.crash._target_=leseg.callbacks.resume.CrashAfterSteps +callbacks.crash.step=7``).
"""

from __future__ import annotations

import os
import random
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback


def _capture() -> dict[str, Any]:
    """Global RNG states as plain containers and tensors (loadable with ``weights_only=True``)."""
    version, state, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    out = {"python": [version, list(state), gauss],
           "numpy": [name, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos),
                     int(has_gauss), float(cached)],
           "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def _restore(states: dict[str, Any]) -> None:
    version, state, gauss = states["python"]
    random.setstate((int(version), tuple(int(v) for v in state), gauss))
    name, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((name, np.asarray(keys).astype(np.uint32), int(pos), int(has_gauss),
                         float(cached)))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        cuda = states["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


class RNGStateCheckpoint(Callback):
    """Save the global RNG states in checkpoints; restore them before the first resumed batch.

    Under DDP only rank 0 writes the checkpoint, so on resume every rank gets rank 0's states
    (identical anyway when all ranks are seeded alike and draw the same numbers).
    """

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    @property
    def state_key(self) -> str:  # noqa: D102
        return "RNGStateCheckpoint"

    def state_dict(self) -> dict[str, Any]:  # noqa: D102
        return _capture()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # noqa: D102
        self._pending = dict(state_dict) if state_dict else None

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:  # noqa: D102
        if self._pending is not None:
            _restore(self._pending)
            self._pending = None


class CrashAfterSteps(Callback):
    """Kill the process (``os._exit(exit_code)``) once ``trainer.global_step`` reaches ``step``.

    Args:
        step: optimiser step after which to die (checked at the end of every training batch).
        exit_code: the process exit status (137 mimics SIGKILL).
    """

    def __init__(self, step: int, exit_code: int = 137) -> None:
        self.step = int(step)
        self.exit_code = int(exit_code)

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:  # noqa: D102
        if trainer.global_step >= self.step:
            os._exit(self.exit_code)
