"""Deterministic, resumable training data: the same batches in the same order after a restart.

A run killed mid-epoch and resumed from ``checkpoints/last.ckpt`` must see exactly the batches (and
augmentations) the uninterrupted run would have seen. Lightning restores model, optimiser, LR
schedule and loop counters, but not the data stream: its fault-tolerant sampler state is limited
to loaders implementing ``state_dict``/``load_state_dict``. leseg makes the stream a pure function
of ``(seed, epoch, position)``:

- **order** — :class:`EpochSampler` is a :class:`~torch.utils.data.DistributedSampler` (also with
  one process), whose permutation is ``randperm(N, seed + epoch)``; Lightning calls ``set_epoch``
  every epoch. Under DDP each rank takes every ``world_size``-th index of that permutation
  (padded by repetition to a multiple of ``world_size``, as ``DistributedSampler`` does), and
  Lightning keeps it (it only injects its own sampler into loaders without a distributed one).
- **augmentation** — the sampler yields ``(index, sample_seed)`` pairs with
  ``sample_seed = SeedSequence([seed, epoch, index])``; :class:`SeededDataset` seeds Python's
  ``random``, NumPy, torch and every albumentations ``Compose`` of the wrapped dataset from it
  before loading the sample. The augmentation of a sample therefore depends neither on the number
  of workers nor on what ran before, and the main process's global RNG is left untouched
  (``num_workers=0``: states are saved and restored around the sample).
- **position** — :class:`ResumableDataLoader` implements Lightning's stateful-loader protocol:
  its ``state_dict`` records the epoch and the number of batches already trained in it (from the
  trainer's progress counters, not from the prefetching iterator); ``load_state_dict`` sets the
  sampler to that epoch and skips those samples, once.

Resuming with another world size or batch size is not exact (the per-rank split changes).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, get_worker_info


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 32-bit seed for sample ``index`` in ``epoch`` of a run seeded with ``seed`` (all >= 0)."""
    return int(np.random.SeedSequence([int(seed) % 2**63, int(epoch), int(index)]).generate_state(1)[0])


class EpochSampler(DistributedSampler):
    """Shuffled indices from ``(seed, epoch)``, split over ranks, yielding ``(index, sample_seed)``.

    Args:
        dataset: a sized dataset of N samples.
        num_replicas, rank: the world size and this process's global rank (1 and 0 without DDP).
        shuffle: permute per epoch (``randperm(N)`` with generator seed ``seed + epoch``).
        seed: the run seed, identical on every rank.
        drop_last: drop the tail instead of padding to a multiple of ``num_replicas``.

    Attributes:
        skip: samples of this rank's list to skip in the next iteration only (set when resuming).
    """

    def __init__(self, dataset: Dataset, *, num_replicas: int = 1, rank: int = 0,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle,
                         seed=int(seed), drop_last=drop_last)
        self.skip = 0

    def __iter__(self) -> Iterator[tuple[int, int]]:  # a generator: runs after set_epoch
        indices = list(super().__iter__())
        skip, self.skip = self.skip, 0
        epoch = self.epoch
        for index in indices[skip:]:
            yield int(index), sample_seed(self.seed, epoch, int(index))


def _seed32(*entropy: int) -> int:
    """A 32-bit seed from non-negative integers (NumPy ``SeedSequence``: well mixed, stable)."""
    return int(np.random.SeedSequence([int(e) % 2**63 for e in entropy]).generate_state(1)[0])


class StreamSampler(EpochSampler):
    """One training stream of a semi-supervised epoch: ``total`` draws, split over DDP ranks.

    The global stream (the same on every rank) is ``total`` indices made of concatenated random
    permutations of the N samples, ``randperm(N)`` after ``randperm(N)`` cut at ``total``, from a
    ``torch.Generator`` seeded by ``(seed, epoch, stream)``: with ``total > N`` every sample appears
    ⌊total/N⌋ or ⌈total/N⌉ times (oversampling), with ``total ≤ N`` at most once. Rank ``r`` of
    ``W`` takes positions ``r, r + W, r + 2W, ...`` (``total / W`` draws), so with a per-device
    batch of ``global_batch / W`` the ranks' k-th batches together are exactly the k-th global
    batch of the single-process stream, and all ranks have the same number of batches.

    Yields ``(index, sample_seed)`` pairs like :class:`~leseg.data.resumable.EpochSampler` (read
    by :class:`~leseg.data.resumable.SeededDataset`); the augmentation seed is
    ``SeedSequence([seed, epoch, position, stream])``, so two draws of the same image in one
    epoch are augmented differently and the two streams never share augmentation parameters.
    ``set_epoch`` (called by Lightning each epoch) selects the epoch; ``skip`` (set when resuming)
    drops that many of this rank's draws, once.

    Args:
        dataset: a sized dataset of N ≥ 1 samples.
        total: draws per epoch over all ranks (``I · global batch``), ≥ 1, divisible by
            ``num_replicas``.
        num_replicas, rank: world size and this process's global rank (1 and 0 without DDP).
        seed: the data seed, identical on every rank.
        stream: an integer naming the stream (0 labeled, 1 unlabeled); different streams get
            independent permutations even for datasets of the same size.

    Raises:
        ValueError: an empty dataset, ``total < 1`` or ``total`` not divisible by
            ``num_replicas``.

    Used by the semi-supervised streams and by supervised loaders with a fixed
    ``samples_per_epoch``. Source: the U2PL / S4MC epoch definition (``u2pl/dataset/pascal_voc.py``);
    the rank split follows ``torch.utils.data.DistributedSampler`` (strided shares of one
    permutation).
    """

    def __init__(self, dataset: Dataset, *, total: int, num_replicas: int = 1, rank: int = 0,
                 seed: int = 0, stream: int = 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed,
                         drop_last=False)
        if len(dataset) < 1:
            raise ValueError("StreamSampler: the dataset is empty")
        if total < 1 or total % num_replicas:
            raise ValueError(f"StreamSampler: total={total} draws must be >= 1 and divisible by "
                             f"the world size {num_replicas}")
        self.total_size = int(total)
        self.num_samples = self.total_size // self.num_replicas
        self.stream = int(stream)

    def global_stream(self) -> list[int]:
        """The epoch's ``total`` indices over all ranks (concatenated permutations)."""
        generator = torch.Generator()
        generator.manual_seed(_seed32(self.seed, self.epoch, self.stream))
        n, out = len(self.dataset), []
        while len(out) < self.total_size:
            out += torch.randperm(n, generator=generator).tolist()
        return out[: self.total_size]

    def __iter__(self) -> Iterator[tuple[int, int]]:  # a generator: runs after set_epoch
        stream = self.global_stream()
        positions = range(self.rank, self.total_size, self.num_replicas)[self.skip:]
        self.skip = 0
        epoch = self.epoch
        for position in positions:
            yield stream[position], _seed32(self.seed, epoch, position, self.stream)

    def __len__(self) -> int:
        return self.num_samples


def _random_composes(obj: Any, depth: int = 0, seen: set | None = None) -> list:
    """Every albumentations ``Compose`` reachable from a dataset through attributes (depth <= 4)."""
    import albumentations as A

    seen = set() if seen is None else seen
    if id(obj) in seen or depth > 4:
        return []
    seen.add(id(obj))
    if isinstance(obj, A.BaseCompose):
        return [obj]
    found: list = []
    if isinstance(obj, list | tuple):
        for item in obj:
            found += _random_composes(item, depth + 1, seen)
    elif hasattr(obj, "__dict__") and (isinstance(obj, Dataset) or callable(obj)):
        for value in vars(obj).values():  # datasets, Subsets, transform wrappers
            if isinstance(value, A.BaseCompose | Dataset | list | tuple) or (
                    callable(value) and hasattr(value, "__dict__") and not isinstance(value, type)):
                found += _random_composes(value, depth + 1, seen)
    return found


def _rng_states() -> tuple:
    return random.getstate(), np.random.get_state(), torch.get_rng_state()


def _set_rng_states(states: tuple) -> None:
    random.setstate(states[0])
    np.random.set_state(states[1])
    torch.set_rng_state(states[2])


def seed_all(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global RNG and torch's CPU generator with ``seed``
    (not the CUDA generators, which data loading never uses)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.default_generator.manual_seed(seed)


class SeededDataset(Dataset):
    """Wrap a dataset so that ``ds[(index, seed)]`` loads ``index`` with every RNG seeded by ``seed``.

    ``ds[index]`` (an int) passes through unseeded. In the main process (``num_workers=0``) the
    global RNG states are restored afterwards, so data loading never shifts the training RNG.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self._composes: list | None = None

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: int | tuple[int, int]) -> Any:
        if not isinstance(key, tuple):
            return self.dataset[key]
        index, seed = key
        if self._composes is None:
            self._composes = _random_composes(self.dataset)
        states = _rng_states() if get_worker_info() is None else None
        try:
            seed_all(seed)
            for compose in self._composes:
                compose.set_random_seed(seed)
            return self.dataset[index]
        finally:
            if states is not None:
                _set_rng_states(states)


class ResumableDataLoader(DataLoader):
    """A DataLoader over an :class:`EpochSampler` that Lightning checkpoints and restores.

    Args:
        *args, **kwargs: :class:`~torch.utils.data.DataLoader` arguments; ``sampler`` must be an
            :class:`EpochSampler` and ``dataset`` a :class:`SeededDataset`.
        progress: ``() -> (epoch, batches_done, batches_per_epoch)`` read from the trainer at
            checkpoint time (None: nothing to save).

    ``state_dict()`` → ``{"epoch", "batches", "epoch_batches", "num_replicas"}``;
    ``load_state_dict`` positions the sampler there (the next epoch when the saved epoch was
    complete). A world-size change is reported by a warning and resumes at the epoch start.
    """

    def __init__(self, *args: Any, progress: Callable[[], tuple[int, int, int]] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.progress = progress

    def state_dict(self) -> dict[str, int]:
        """The position of the training stream (see the class docstring)."""
        if self.progress is None:
            return {}
        epoch, batches, epoch_batches = self.progress()
        return {"epoch": int(epoch), "batches": int(batches), "epoch_batches": int(epoch_batches),
                "num_replicas": int(getattr(self.sampler, "num_replicas", 1))}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Set the sampler's epoch and skip the samples already trained in it."""
        if not state or not isinstance(self.sampler, EpochSampler):
            return
        epoch, batches = int(state["epoch"]), int(state["batches"])
        if batches >= int(state.get("epoch_batches", batches + 1)):
            epoch, batches = epoch + 1, 0
        if int(state.get("num_replicas", 1)) != self.sampler.num_replicas:
            import warnings

            warnings.warn(f"resuming with world size {self.sampler.num_replicas} from a checkpoint "
                          f"written with {state.get('num_replicas')}: epoch {epoch} restarts from "
                          "its first batch (not an exact resume)", stacklevel=2)
            batches = 0
        self.sampler.set_epoch(epoch)
        self.sampler.skip = batches * int(self.batch_size or 1)


__all__ = ["EpochSampler", "ResumableDataLoader", "SeededDataset", "StreamSampler", "sample_seed",
           "seed_all"]
