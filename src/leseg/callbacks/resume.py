"""Callbacks for exact resume and for testing it: RNG state in checkpoints, the data position, a
simulated crash.

:class:`RNGStateCheckpoint` stores Python's, NumPy's and torch's (CPU and CUDA) global RNG states in
every checkpoint and puts them back right before the first training batch after a resume: dropout
masks, random mixing boxes and anything else drawn from the global RNG during training then
continue exactly as in the uninterrupted run. (The data stream has its own seeding, see
:mod:`leseg.data.resumable`.) Restoring at the first batch, not when the checkpoint is read, skips
whatever Lightning draws while it sets the loops up again.

It also makes sure the training loaders are put back at the checkpoint's position
(:func:`restore_data_position`). Lightning only hands the saved loader states to the loaders if the
train loader is built *after* the checkpoint's loop state is read; a method whose
``configure_optimizers`` asks for ``trainer.estimated_stepping_batches`` (every leseg method: the
poly LR schedule) builds it earlier, during strategy set-up, and the saved position was then
silently dropped: the resumed run re-trained the first batches of the interrupted epoch instead of
the remaining ones (the mid-epoch resume bug of issue 8).

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


def restore_data_position(trainer: L.Trainer) -> bool:
    """Hand the loader states of the checkpoint being resumed to the train loaders, if Lightning
    has not (see the module docstring), and restart their iterators from that position.

    Lightning (2.x) loads the ``combined_loader`` states saved in ``fit_loop`` only inside
    ``FitLoop.setup_data`` when the loop is already restarting; when the train loader was set up
    before the checkpoint's loop state was read (``trainer.estimated_stepping_batches`` in
    ``configure_optimizers``), the states stay pending in ``fit_loop`` and the iterator created
    then starts at the epoch's first batch. Here the pending states are loaded (each
    :class:`~leseg.data.resumable.ResumableDataLoader` sets its sampler's epoch and skip) and the
    fit loop's data fetcher is re-iterated so the (lazy or worker-prefetched) index stream starts
    from the restored position. Uses the fit loop's private ``_combined_loader_states_to_load``,
    ``_combined_loader`` and ``_data_fetcher`` (checked on Lightning 2.6; absent attributes make
    this a no-op).

    Returns:
        True if pending states were applied, False if there was nothing to do.
    """
    fit_loop = trainer.fit_loop
    states = getattr(fit_loop, "_combined_loader_states_to_load", None)
    loader = getattr(fit_loop, "_combined_loader", None)
    if not states or loader is None:
        return False
    loader._load_state_dicts(states)
    fit_loop._combined_loader_states_to_load = []
    fetcher = getattr(fit_loop, "_data_fetcher", None)
    if fetcher is not None:
        iter(fetcher)  # a fresh iterator: indices drawn (or prefetched) from the restored position
    return True


class RNGStateCheckpoint(Callback):
    """Save the global RNG states in checkpoints; restore them before the first resumed batch.

    Under DDP only rank 0 writes the checkpoint, so on resume every rank gets rank 0's states
    (identical anyway when all ranks are seeded alike and draw the same numbers). At the start of
    a resumed fit it also puts the training loaders at the checkpoint's position
    (:func:`restore_data_position`).
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

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:  # noqa: D102
        restore_data_position(trainer)

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
