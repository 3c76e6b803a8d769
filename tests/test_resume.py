"""Exact resume: a run killed mid-epoch and resumed with ckpt_path=last ends with the same weights.

Also: the resumable data stream on its own (order and augmentation a function of seed/epoch/index),
``ckpt_path=last`` resolution, and the wandb run id carried across a resume.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from leseg.data.resumable import EpochSampler, ResumableDataLoader, SeededDataset
from leseg.tasks.resume import find_last_checkpoint, resolve_ckpt_path
from leseg.tasks.wandb_resume import set_wandb_resume

from conftest import REPO, _tiny_overrides


class _RandomAug(torch.utils.data.Dataset):
    """Each item draws from numpy's and torch's global RNG (a stand-in for augmentation)."""

    def __len__(self) -> int:
        return 10

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.tensor([i, float(np.random.rand()), float(torch.rand(()))])


def _loader(epoch_batches_done: tuple[int, int] | None = None) -> ResumableDataLoader:
    ds = _RandomAug()
    sampler = EpochSampler(ds, seed=3)
    loader = ResumableDataLoader(SeededDataset(ds), batch_size=2, sampler=sampler, drop_last=True,
                                 generator=torch.Generator().manual_seed(0))  # as the DataModule
    if epoch_batches_done is not None:
        epoch, done = epoch_batches_done
        loader.load_state_dict({"epoch": epoch, "batches": done, "epoch_batches": 5,
                                "num_replicas": 1})
    return loader


def test_data_stream_is_a_function_of_seed_epoch_index_and_resumes_mid_epoch() -> None:
    full = _loader()
    full.sampler.set_epoch(1)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    epoch1 = list(full)
    assert torch.equal(torch.get_rng_state(), before)  # loading never moves the training RNG
    again = _loader()
    again.sampler.set_epoch(1)
    assert all(torch.equal(a, b) for a, b in zip(epoch1, list(again), strict=True))
    again.sampler.set_epoch(2)
    assert not torch.equal(torch.cat(epoch1), torch.cat(list(again)))  # new order/augmentation

    resumed = _loader((1, 3))  # 3 of 5 batches of epoch 1 were trained before the kill
    assert all(torch.equal(a, b) for a, b in zip(epoch1[3:], list(resumed), strict=True))
    assert len(list(resumed)) == 5  # the skip applies once; the next iteration is a whole epoch
    at_end = _loader((1, 5))  # saved after the last batch → resume at the next epoch's start
    assert at_end.sampler.epoch == 2 and at_end.sampler.skip == 0


def test_pending_loader_states_are_applied_at_train_start() -> None:
    """The loader was built (and iterated) before the checkpoint's loop state was read, as when
    ``configure_optimizers`` asks for ``estimated_stepping_batches``: the position is applied late
    and the fetcher's iterator restarts from it, also with worker processes."""
    from types import SimpleNamespace

    from lightning.pytorch.loops.fetchers import _PrefetchDataFetcher
    from lightning.pytorch.utilities import CombinedLoader

    from leseg.callbacks.resume import restore_data_position

    reference = _loader()
    reference.sampler.set_epoch(1)
    epoch1 = list(reference)
    for workers in (0, 1):
        loader = _loader()
        if workers:
            loader = ResumableDataLoader(loader.dataset, batch_size=2, sampler=loader.sampler,
                                         drop_last=True, num_workers=1)
        combined = CombinedLoader(loader, "min_size")  # stops with the loader (no cycling)
        fetcher = _PrefetchDataFetcher()
        fetcher.setup(combined)
        iter(fetcher)  # as FitLoop.setup_data, before the checkpoint was read: epoch 0, no skip
        state = {"epoch": 1, "batches": 3, "epoch_batches": 5, "num_replicas": 1}
        fit_loop = SimpleNamespace(_combined_loader_states_to_load=[state],
                                   _combined_loader=combined, _data_fetcher=fetcher)
        trainer = SimpleNamespace(fit_loop=fit_loop)
        assert restore_data_position(trainer)
        assert fit_loop._combined_loader_states_to_load == []
        rest = []  # next() as the epoch loop does: iter() again would start a new iterator
        while not fetcher.done:
            with contextlib.suppress(StopIteration):
                rest.append(next(fetcher)[0])
        assert len(rest) == 2 and all(torch.equal(a, b) for a, b in zip(epoch1[3:], rest, strict=True))
        assert not restore_data_position(trainer)  # nothing pending any more


def test_ranks_split_each_epoch_without_overlap() -> None:
    ds = _RandomAug()
    parts = []
    for rank in range(2):
        s = EpochSampler(ds, num_replicas=2, rank=rank, seed=3)
        s.set_epoch(4)
        parts.append([i for i, _ in s])
    assert sorted(parts[0] + parts[1]) == list(range(10))


def test_ckpt_path_last_resolution(tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    seed_dir = tmp_path / "exp" / "data-full" / "seed0"
    old, new, current = seed_dir / "t1", seed_dir / "t2", seed_dir / "t3"
    for i, run in enumerate((old, new)):
        (run / "checkpoints").mkdir(parents=True)
        (run / "checkpoints" / "last.ckpt").write_bytes(b"x")
        os.utime(run / "checkpoints" / "last.ckpt", (1000 + i, 1000 + i))
    current.mkdir()
    cfg = OmegaConf.create({"ckpt_path": "last", "paths": {"output_dir": str(current)}})
    assert resolve_ckpt_path(cfg) == str(new / "checkpoints" / "last.ckpt")  # newest sibling
    assert find_last_checkpoint(current, siblings=False) is None  # multirun: other sweep points
    (current / "checkpoints").mkdir()
    (current / "checkpoints" / "last.ckpt").write_bytes(b"x")
    assert find_last_checkpoint(current) == current / "checkpoints" / "last.ckpt"  # own first
    lonely = OmegaConf.create({"ckpt_path": "last", "paths": {"output_dir": str(tmp_path / "a" / "b")}})
    with pytest.warns(UserWarning, match="from scratch"):
        assert resolve_ckpt_path(lonely) is None
    missing = OmegaConf.create({"ckpt_path": str(tmp_path / "nope.ckpt"), "paths": {"output_dir": "."}})
    with pytest.raises(FileNotFoundError, match="nope.ckpt"):
        resolve_ckpt_path(missing)


def test_wandb_run_id_is_kept_across_resume(make_train_cfg) -> None:
    cfg = make_train_cfg(overrides=("logger=wandb",))
    run_id = set_wandb_resume(cfg, None)
    assert cfg.logger.wandb.id == run_id and cfg.logger.wandb.resume == "allow"
    assert (Path(cfg.paths.output_dir) / "wandb_run_id.txt").read_text().strip() == run_id
    # a checkpoint stores the config with the id: the resumed run takes it from there
    ckpt = Path(cfg.paths.output_dir) / "fake.ckpt"
    torch.save({"hyper_parameters": {"config": {"logger": {"wandb": {"id": run_id}}}}}, ckpt)
    resumed = make_train_cfg(overrides=("logger=wandb",), out="resumed")
    assert set_wandb_resume(resumed, ckpt) == run_id
    assert set_wandb_resume(make_train_cfg(overrides=("logger=csv",), out="csv"), ckpt) is None


def _run_train(args: list[str], log_dir: Path, data_dir: Path) -> subprocess.CompletedProcess:
    overrides = [o for o in _tiny_overrides("synthetic_city") if not o.startswith("~callbacks")]
    overrides = [o.replace("callbacks=default", "callbacks=none") for o in overrides]
    overrides = [o for o in overrides if "limit_train_batches" not in o and "batch_size=4" not in o]
    cmd = [sys.executable, "train.py", *overrides, f"paths.data_dir={data_dir}",
           f"paths.log_dir={log_dir}", "data.batch_size=2", "trainer.max_epochs=2", "test=false",
           "+callbacks.model_checkpoint._target_=lightning.pytorch.callbacks.ModelCheckpoint",
           "+callbacks.model_checkpoint.dirpath=${paths.output_dir}/checkpoints",
           "+callbacks.model_checkpoint.save_last=true", "resume.every_n_train_steps=3", *args]
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def _weights(ckpt: Path) -> dict[str, torch.Tensor]:
    return torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]


@pytest.mark.slow
def test_killed_mid_epoch_run_resumes_to_the_same_weights(tmp_path: Path, data_dir: Path) -> None:
    # 8 training images, batch 2 → 4 steps per epoch, 8 in all; last.ckpt every 3 steps and at
    # each epoch end. The crash at step 7 is mid-epoch 2; the newest last.ckpt is from step 6.
    # Regression: the poly LR schedule's estimated_stepping_batches builds the train loader before
    # Lightning reads the loop state, so the saved data position was dropped and the resumed run
    # re-trained the epoch's first two batches (leseg.callbacks.resume.restore_data_position).
    whole = _run_train([], tmp_path / "whole", data_dir)
    assert whole.returncode == 0, whole.stderr[-3000:]
    crashed = _run_train(["+callbacks.crash._target_=leseg.callbacks.resume.CrashAfterSteps",
                          "+callbacks.crash.step=7"], tmp_path / "split", data_dir)
    assert crashed.returncode == 137, crashed.stderr[-3000:]
    [last] = list((tmp_path / "split").rglob("checkpoints/last.ckpt"))
    saved = torch.load(last, map_location="cpu", weights_only=True)
    assert saved["global_step"] == 6 and saved["loops"]["fit_loop"]["state_dict"]["combined_loader"]

    resumed = _run_train(["ckpt_path=last"], tmp_path / "split", data_dir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    runs = sorted((tmp_path / "split").rglob("checkpoints/last.ckpt"))
    assert len(runs) == 2  # the resumed run wrote into its own run directory
    final = max(runs, key=lambda p: p.stat().st_mtime)
    [reference] = list((tmp_path / "whole").rglob("checkpoints/last.ckpt"))
    ref, got = _weights(reference), _weights(final)
    assert torch.load(final, weights_only=True)["global_step"] == 8
    assert ref.keys() == got.keys()
    for key in ref:
        assert torch.allclose(ref[key].float(), got[key].float(), atol=1e-6), key
    # and the run really moved: the resumed weights differ from the step-6 checkpoint
    assert any(not torch.equal(saved["state_dict"][k], got[k]) for k in got
               if got[k].is_floating_point())
