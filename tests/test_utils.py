"""Atomic writes, the safe cross-entropy, and sweep aggregation on hand-made runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from leseg.aggregate import aggregate, load_runs, to_markdown
from leseg.components.losses import cross_entropy
from leseg.utils.io import atomic_write, atomic_write_json


def test_atomic_write_leaves_old_content_when_interrupted(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    atomic_write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_write(target, "w") as f:
            f.write('{"a": 2')  # half a file ...
            raise RuntimeError("disk full")  # ... and the write fails
    assert json.loads(target.read_text()) == {"a": 1}
    assert list(tmp_path.iterdir()) == [target]  # no temporary file left behind


def test_cross_entropy_ignores_255_and_is_zero_when_everything_is_ignored() -> None:
    logits = torch.tensor([[[[2.0, 0.0]], [[0.0, 0.0]]]], requires_grad=True)  # (1, 2, 1, 2)
    labels = torch.tensor([[[0, 255]]])
    expected = -torch.log_softmax(torch.tensor([2.0, 0.0]), 0)[0]  # only pixel 0 counts
    assert cross_entropy(logits, labels).item() == pytest.approx(expected.item())
    loss = cross_entropy(logits, torch.full((1, 1, 2), 255))
    assert loss.item() == 0.0 and loss.requires_grad


def _run(root: Path, name: str, split: str, seed: int, miou: float) -> None:
    atomic_write_json(root / name / "metrics.json", {
        "experiment": "exp", "data": "voc", "split": split, "seed": seed,
        "metrics": {"test/mIoU": miou}})


def test_aggregate_mean_and_std_over_seeds_per_split(tmp_path: Path) -> None:
    _run(tmp_path, "a", "92", 0, 0.50)
    _run(tmp_path, "b", "92", 1, 0.60)
    _run(tmp_path, "c", "1464", 0, 0.70)
    rows = aggregate(load_runs(tmp_path), ("test/mIoU",))
    assert [r["split"] for r in rows] == ["92", "1464"]  # numeric order
    assert rows[0]["test/mIoU"]["mean"] == pytest.approx(0.55)
    assert rows[0]["test/mIoU"]["std"] == pytest.approx(0.0707106781)  # sample std of {0.5, 0.6}
    assert rows[1]["test/mIoU"] == {"mean": 0.70, "std": 0.0, "n": 1}
    assert "| exp | voc | 92 | 2 | 55.00 ± 7.07 |" in to_markdown(rows, ("test/mIoU",))


def test_aggregate_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no metrics.json"):
        load_runs(tmp_path)
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "metrics.json").write_text("{broken")
    with pytest.raises(ValueError, match=r"x/metrics.json is not valid JSON"):
        load_runs(tmp_path)


def test_majority_class_miou_from_confusion_matrix() -> None:
    import numpy as np

    from leseg.tasks.eval import majority_class_miou

    # GT pixels: class 0 = 6, class 1 = 3, class 2 = 1, class 3 absent -> IoU_0 = 6/10, mean over 3
    cm = np.array([[4, 2, 0, 0], [1, 2, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]])
    assert majority_class_miou(cm) == pytest.approx(0.6 / 3)


def test_per_seed_and_source_commit(tmp_path, monkeypatch) -> None:
    from leseg.aggregate import per_seed, source_commit

    runs = [{"experiment": "a", "seed": 0, "metrics": {"test/mIoU": 0.5}},
            {"experiment": "a", "seed": 1, "metrics": {}}]
    assert per_seed(runs, "test/mIoU") == {("a", 0): 0.5, ("a", 1): None}
    commit = source_commit()
    assert commit != "unknown" and all(c in "0123456789abcdef" for c in commit)
    monkeypatch.chdir(tmp_path)  # not a git checkout
    assert source_commit() == "unknown"


def test_choice_lower_cases_and_names_the_key() -> None:
    from leseg.utils.config import choice

    assert choice("CutMix", ("none", "cutmix"), "method.mix") == "cutmix"
    with pytest.raises(ValueError, match=r"method\.mix='mixup' is not one of \('none', 'cutmix'\)"):
        choice("mixup", ("none", "cutmix"), "method.mix")
