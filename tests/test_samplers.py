"""StreamSampler: the semi-supervised streams' order, oversampling, DDP split, seeding and resume."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from torch.utils.data import DistributedSampler

from leseg.data.resumable import ResumableDataLoader, SeededDataset
from leseg.data.semisupervised import StreamSampler


class _Items(torch.utils.data.Dataset):
    """Sample i is i plus a draw from torch's global RNG (a stand-in for augmentation)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.tensor([float(i), float(torch.rand(()))])


def _draws(sampler: StreamSampler, epoch: int = 0) -> list[tuple[int, int]]:
    sampler.set_epoch(epoch)
    return list(sampler)


def test_single_process_stream_is_concatenated_permutations() -> None:
    sampler = StreamSampler(_Items(5), total=12, seed=7)
    assert len(sampler) == 12
    indices = [i for i, _ in _draws(sampler)]
    assert sorted(indices[:5]) == sorted(indices[5:10]) == list(range(5))  # two whole permutations
    assert len(set(indices[10:])) == 2  # then the start of a third
    counts = Counter(indices)
    assert set(counts.values()) <= {2, 3} and sum(counts.values()) == 12  # ⌊12/5⌋ or ⌈12/5⌉
    seeds = [s for _, s in _draws(sampler)]
    assert len(set(seeds)) == 12  # repeated images get different augmentation seeds
    # a function of (seed, epoch, stream): same again, different for another epoch/stream/seed
    assert _draws(sampler) == _draws(StreamSampler(_Items(5), total=12, seed=7))
    assert _draws(sampler, 1) != _draws(sampler, 0)
    other_stream = StreamSampler(_Items(5), total=12, seed=7, stream=1)
    assert [i for i, _ in _draws(other_stream)] != indices
    assert not set(seeds) & {s for _, s in _draws(other_stream)}


@pytest.mark.parametrize("n", [3, 16])  # oversampled (n < total) and subsampled (n > total)
def test_ranks_share_one_stream_with_equal_lengths(n: int) -> None:
    world, per_device_batch, iterations = 2, 2, 3
    total = iterations * per_device_batch * world
    single = _draws(StreamSampler(_Items(n), total=total, seed=1), epoch=4)
    ranks = [StreamSampler(_Items(n), total=total, num_replicas=world, rank=r, seed=1)
             for r in range(world)]
    assert all(isinstance(s, DistributedSampler) for s in ranks)  # Lightning keeps it under DDP
    parts = [_draws(s, epoch=4) for s in ranks]
    assert [len(p) for p in parts] == [len(s) for s in ranks] == [total // world] * world
    # rank r takes positions r, r + W, ...: the ranks' k-th batches form the global k-th batch
    for k in range(iterations):
        rows = [p[k * per_device_batch:(k + 1) * per_device_batch] for p in parts]
        merged = [rows[r][j] for j in range(per_device_batch) for r in range(world)]
        global_batch = single[k * per_device_batch * world:(k + 1) * per_device_batch * world]
        assert merged == global_batch
    # the ranks never repeat each other's draw; with n >= total not even each other's image
    assert not {s for _, s in parts[0]} & {s for _, s in parts[1]}
    if n >= total:
        assert not {i for i, _ in parts[0]} & {i for i, _ in parts[1]}


def test_bad_totals_are_refused() -> None:
    with pytest.raises(ValueError, match="divisible by the world size 2"):
        StreamSampler(_Items(4), total=5, num_replicas=2, rank=0)
    with pytest.raises(ValueError, match="empty"):
        StreamSampler(_Items(0), total=4)


def test_stream_loader_resumes_mid_epoch_with_the_same_batches() -> None:
    def loader(state: dict | None = None) -> ResumableDataLoader:
        data = _Items(5)
        out = ResumableDataLoader(SeededDataset(data), batch_size=2, drop_last=True,
                                  sampler=StreamSampler(data, total=8, seed=3))
        if state is not None:
            out.load_state_dict(state)
        return out

    whole = loader()
    whole.sampler.set_epoch(2)
    epoch2 = list(whole)
    assert len(epoch2) == 4
    resumed = loader({"epoch": 2, "batches": 3, "epoch_batches": 4, "num_replicas": 1})
    rest = list(resumed)
    assert len(rest) == 1 and torch.equal(rest[0], epoch2[3])  # images and augmentation
    assert len(list(resumed)) == 4  # the skip applies once
