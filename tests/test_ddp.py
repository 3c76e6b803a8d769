"""DDP on 2 CPU processes (gloo) through train.py: one run directory, identical weights on both
ranks, and a validation mIoU equal to a single-process evaluation of the same weights on the same
images (an odd number of val images: the remainder is not padded, every image counts once)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import read_write

from leseg.tasks.eval import evaluate
from leseg.tasks.launch import check_launch, pin_run_dir
from leseg.utils import resolvers

from conftest import REPO, _tiny_overrides, compose_cfg

S4MC = ["data=synthetic_voc_semi", "inference=synthetic_voc", "method=s4mc", "data.split=2",
        "method.sup_only_epochs=1", "trainer.max_epochs=2"]


def _ddp_train(data: str, extra: list[str], log_dir: Path, data_dir: Path) -> Path:
    drop = ("~callbacks", "trainer=cpu", "limit_val_batches", "limit_test_batches", "batch_size=4")
    overrides = [o for o in _tiny_overrides(data) if not o.startswith(drop)]
    overrides = [o.replace("callbacks=default", "callbacks=none") for o in overrides]
    cmd = [sys.executable, "train.py", *overrides, "trainer=ddp_cpu", "trainer.devices=2",
           "trainer.max_epochs=1", "data.batch_size=4", "++data.max_val_samples=3", "test=false",
           f"paths.data_dir={data_dir}", f"paths.log_dir={log_dir}",
           "+callbacks.model_checkpoint._target_=lightning.pytorch.callbacks.ModelCheckpoint",
           "+callbacks.model_checkpoint.dirpath=${paths.output_dir}/checkpoints",
           "+callbacks.model_checkpoint.save_last=true",
           "+callbacks.dump._target_=ddp_helpers.DumpRankState", *extra]
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONWARNINGS": "ignore",
           "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "tests")}
    for key in ("LOCAL_RANK", "RANK", "WORLD_SIZE", "LESEG_RUN_STAMP"):
        env.pop(key, None)
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    dumps = sorted(log_dir.rglob("rank*.pt"))
    assert [p.name for p in dumps] == ["rank0.pt", "rank1.pt"]
    assert dumps[0].parent == dumps[1].parent, "the ranks wrote into different run directories"
    assert len([p for p in log_dir.rglob("metrics.json")]) == 1
    return dumps[0].parent


def _check(run_dir: Path, tmp_path: Path) -> None:
    ranks = [torch.load(run_dir / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert ranks[0]["world_size"] == 2
    assert set(ranks[0]["batch_sizes"]) == {2}  # global batch 4 over 2 processes
    a, b = ranks[0]["state_dict"], ranks[1]["state_dict"]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"ranks differ in {key}"

    last = run_dir / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, weights_only=True)
    assert all(torch.equal(ckpt["state_dict"][k], a[k]) for k in a)
    ddp_miou = json.loads((run_dir / "metrics.json").read_text())["metrics"]["val/mIoU"]

    ecfg = compose_cfg("eval", [f"ckpt_path={last}", "extras.print_config=false",
                                "trainer.enable_progress_bar=false", "save_predictions=0"],
                       tmp_path / "eval")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the ranks (OMP_NUM_THREADS=1): the same float summation order
    try:
        metrics, objects = evaluate(ecfg)
    finally:
        torch.set_num_threads(threads)
    assert len(objects["datamodule"].test_dataloader().dataset) == 3
    assert metrics["test/mIoU"] == pytest.approx(ddp_miou, abs=1e-6)


@pytest.mark.slow
def test_ddp_two_cpu_processes_supervised(tmp_path: Path, data_dir: Path) -> None:
    run_dir = _ddp_train("synthetic_city", [], tmp_path / "logs", data_dir)
    _check(run_dir, tmp_path)


@pytest.mark.slow
def test_ddp_two_cpu_processes_s4mc(tmp_path: Path, data_dir: Path) -> None:
    record = "+callbacks.names._target_=ddp_stream_helpers.RecordStreamNames"
    run_dir = _ddp_train("synthetic_voc", [*S4MC, record], tmp_path / "logs", data_dir)
    _check(run_dir, tmp_path)
    # both streams are split over the ranks (leseg.data.semisupervised.StreamSampler): the same
    # number of steps on each rank, and per step the ranks load different unlabeled images
    steps = [json.loads((run_dir / f"names_rank{r}.json").read_text()) for r in (0, 1)]
    assert len(steps[0]) == len(steps[1]) == 2  # 6 unlabeled // global batch 4 = 1 step x 2 epochs
    for a, b in zip(*steps, strict=True):
        assert len(a["labeled"]) == len(b["labeled"]) == 2
        assert len(a["unlabeled"]) == len(b["unlabeled"]) == 2
        assert not set(a["unlabeled"]) & set(b["unlabeled"])
        # global labeled batch 4 over the 2 labeled images: two permutations, each image twice
        assert sorted(a["labeled"] + b["labeled"]) == sorted(2 * sorted(set(a["labeled"] + b["labeled"])))


def test_all_processes_of_a_run_agree_on_its_directory(make_train_cfg, monkeypatch) -> None:
    make_train_cfg()
    pin_run_dir("/runs/exp/seed0/stamp")  # what Lightning passes to the ranks it starts
    assert HydraConfig.get().run.dir == "/runs/exp/seed0/stamp"
    for env, expected in (({"LESEG_RUN_STAMP": "job42"}, "job42"),
                          ({"TORCHELASTIC_RUN_ID": "abc"}, "torchrun-abc")):
        monkeypatch.setattr(resolvers, "_RUN_STAMPS", {})
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        assert resolvers.run_stamp("%Y") == expected
        assert resolvers.run_stamp("%Y") == expected  # memoised: one value per process
        for key in env:
            monkeypatch.delenv(key)
    monkeypatch.setattr(resolvers, "_RUN_STAMPS", {})
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "none")  # torchrun without --rdzv-id: per node
    assert f"torchrun-{os.getppid()}-" in resolvers.run_stamp("%Y")


def test_multirun_with_ddp_is_refused_unless_slurm_starts_the_ranks(make_train_cfg,
                                                                    monkeypatch) -> None:
    cfg = make_train_cfg(overrides=("trainer=ddp_cpu",))
    monkeypatch.setattr("leseg.tasks.launch.is_multirun", lambda: True)
    with pytest.raises(ValueError, match="multirun"):
        check_launch(cfg)
    hydra_cfg = HydraConfig.get()
    with read_write(hydra_cfg):
        hydra_cfg.launcher._target_ = \
            "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    check_launch(cfg)  # one SLURM job per sweep point, its tasks started by SLURM
