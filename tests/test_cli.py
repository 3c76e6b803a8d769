"""The command line as users drive it: a 2-value multirun sweep in a subprocess, then aggregation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from leseg.aggregate import main as aggregate_main

from conftest import REPO, _tiny_overrides


@pytest.mark.slow
def test_multirun_over_seeds_gives_each_job_its_own_dir_and_aggregates(tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "outputs"
    overrides = [o for o in _tiny_overrides("synthetic_city") if not o.startswith("~callbacks")]
    overrides = [o.replace("callbacks=default", "callbacks=none") for o in overrides]
    cmd = [sys.executable, "train.py", "-m", "seed=0,1", "trainer.max_epochs=1",
           f"paths.data_dir={data_dir}", f"paths.log_dir={out}", *overrides]
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]

    metrics_files = sorted(out.glob("train/multirun/*/*/synthetic_city-full/seed*/*/metrics.json"))
    assert [p.parts[-3] for p in metrics_files] == ["seed0", "seed1"]
    assert len({p.parent for p in metrics_files}) == 2
    sweep_dir = metrics_files[0].parents[4]

    md = aggregate_main([str(sweep_dir), "--metrics", "test/mIoU"])
    rows = json.loads((sweep_dir / "aggregate.json").read_text())
    assert len(rows) == 1 and rows[0]["seeds"] == [0, 1] and rows[0]["test/mIoU"]["n"] == 2
    values = [json.loads(p.read_text())["metrics"]["test/mIoU"] for p in metrics_files]
    assert rows[0]["test/mIoU"]["mean"] == pytest.approx(sum(values) / 2)
    assert "± " in md
