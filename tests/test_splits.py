"""Split files: both reference formats, load_split, seeded nested generation and the command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_datasets import make_city_tree

from leseg.data.camvid import list_camvid_frames
from leseg.data.splits import SplitLists, load_split, main, make_splits, read_split_file

from conftest import sample_data

REPO = Path(__file__).resolve().parents[1]


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _voc_lists(root: Path, n_train: int = 10, n_aug_extra: int = 15) -> tuple[list[str], list[str]]:
    train = [f"2007_{i:06d}" for i in range(n_train)]
    aug = sorted(train + [f"2008_{i:06d}" for i in range(n_aug_extra)])
    seg = root / "ImageSets" / "Segmentation"
    _write(seg / "train.txt", "\n".join(train) + "\n")
    _write(seg / "train_aug.txt", "\n".join(aug))  # no final newline, as in the reference lists
    return train, aug


def test_read_split_file_formats(tmp_path: Path) -> None:
    bare = _write(tmp_path / "bare.txt", "2007_000033\n\n2007_000042\n")
    assert read_split_file(bare) == ["2007_000033", "2007_000042"]
    unimatch = _write(tmp_path / "unimatch.txt",
                      "JPEGImages/2007_000033.jpg SegmentationClass/2007_000033.png\n"
                      "JPEGImages/2007_000042.jpg SegmentationClassAug/2007_000042.png")
    assert read_split_file(unimatch) == ["2007_000033", "2007_000042"]
    city = _write(tmp_path / "city.txt",
                  "leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png\n"
                  "leftImg8bit/train/bochum/bochum_000000_000313_leftImg8bit.png "
                  "gtFine/train/bochum/bochum_000000_000313_gtFine_labelTrainIds.png\n"
                  "  zurich_000001_000019  \n")
    assert read_split_file(city) == ["aachen_000000_000019", "bochum_000000_000313",
                                     "zurich_000001_000019"]
    assert read_split_file(_write(tmp_path / "empty.txt", "\n")) == []


def test_read_split_file_errors(tmp_path: Path) -> None:
    missing = tmp_path / "voc" / "92" / "labeled.txt"
    with pytest.raises(FileNotFoundError) as err:
        read_split_file(missing)
    assert str(missing) in str(err.value) and "python -m leseg.data.splits" in str(err.value)
    mismatch = _write(tmp_path / "m.txt", "a.jpg a.png\nJPEGImages/b.jpg SegmentationClass/c.png\n")
    with pytest.raises(ValueError, match=r"m.txt:2: image and label"):
        read_split_file(mismatch)
    three = _write(tmp_path / "t.txt", "a b c\n")
    with pytest.raises(ValueError, match=r"t.txt:1: .*3 columns"):
        read_split_file(three)
    dup = _write(tmp_path / "d.txt", "x\ny\nx\n")
    with pytest.raises(ValueError, match=r"d.txt:3: 'x' already listed on line 1"):
        read_split_file(dup)


def test_load_split(tmp_path: Path) -> None:
    _write(tmp_path / "4" / "labeled.txt", "a\nb\n")
    with pytest.raises(FileNotFoundError, match="unlabeled.txt"):
        load_split(tmp_path, 4)
    _write(tmp_path / "4" / "unlabeled.txt", "c\nd\ne\n")
    assert load_split(tmp_path, 4) == SplitLists(["a", "b"], ["c", "d", "e"])
    _write(tmp_path / "4" / "unlabeled.txt", "c\nb\n")
    with pytest.raises(ValueError, match=r"both .*\['b'\]"):
        load_split(tmp_path, "4")


def test_make_splits_voc_nested_seeded_and_written(tmp_path: Path) -> None:
    root = tmp_path / "VOC2012"
    train, aug = _voc_lists(root)
    out = tmp_path / "splits"
    result = make_splits("voc", root, counts=[5, 2, 10], seed=0, out=out)
    assert sorted(result) == [2, 5, 10]
    for n, lists in result.items():
        assert len(lists.labeled) == n and set(lists.labeled) <= set(train)
        # unlabeled = the rest of train_aug
        assert sorted(lists.unlabeled) == sorted(set(aug) - set(lists.labeled))
        assert load_split(out, n) == lists  # files hold exactly the returned lists
    assert set(result[2].labeled) < set(result[5].labeled) < set(result[10].labeled)
    assert make_splits("voc", root, counts=[5], seed=0) == {5: result[5]}  # reproducible
    other = [make_splits("voc", root, counts=[5], seed=s)[5].labeled for s in (1, 2, 3)]
    assert any(o != result[5].labeled for o in other)  # the seed matters
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_make_splits_without_train_aug_and_too_many(tmp_path: Path) -> None:
    root = tmp_path / "VOC2012"
    train, _ = _voc_lists(root)
    (root / "ImageSets/Segmentation/train_aug.txt").unlink()
    lists = make_splits("voc", root, counts=[3])[3]
    assert sorted(lists.labeled + lists.unlabeled) == sorted(train)
    with pytest.raises(ValueError, match=r"\[11\].*train.txt has 10 images"):
        make_splits("voc", root, counts=[4, 11])
    with pytest.raises(FileNotFoundError, match="ImageSets/Segmentation"):
        make_splits("voc", tmp_path / "nowhere", counts=[1])


def test_make_splits_cityscapes(tmp_path: Path) -> None:
    frames = [f"aachen_00000{i}_000019" for i in range(6)]
    make_city_tree(tmp_path, frames=frames)
    result = make_splits("cityscapes", tmp_path, counts=[2, 4], seed=3)
    assert set(result[2].labeled) < set(result[4].labeled) <= set(frames)
    assert sorted(result[4].labeled + result[4].unlabeled) == frames


def test_command_line(tmp_path: Path, capsys) -> None:
    root = tmp_path / "VOC2012"
    _voc_lists(root)
    out = tmp_path / "splits" / "voc"
    assert main(["--dataset", "voc", "--root", str(root), "--counts", "3", "6",
                 "--out", str(out)]) == 0
    assert len(read_split_file(out / "6" / "labeled.txt")) == 6
    assert main(["--dataset", "voc", "--root", str(root), "--out", str(out)]) == 2  # 92 > 10
    assert "92" in capsys.readouterr().err
    # the module runs as a script (python -m leseg.data.splits)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run([sys.executable, "-m", "leseg.data.splits", "--dataset", "voc",
                           "--root", str(root), "--counts", "2", "--seed", "1", "--out", str(out)],
                          capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    assert load_split(out, 2) == make_splits("voc", root, counts=[2], seed=1)[2]


@pytest.mark.sample_data
def test_make_splits_camvid_real_train_frames_both_formats(tmp_path: Path) -> None:
    root = sample_data("camvid")
    frames = sorted(list_camvid_frames(root, "train"))
    assert len(frames) == 367
    ids, pairs = tmp_path / "ids", tmp_path / "pairs"
    result = make_splits("camvid", root, seed=0, out=ids)  # default counts: 1/16 .. 1/2
    assert sorted(result) == [23, 46, 92, 184]  # ceil(367 / k), k = 16, 8, 4, 2
    for count, lists in result.items():
        assert len(lists.labeled) == count and len(lists.unlabeled) == 367 - count
        assert sorted(lists.labeled + lists.unlabeled) == frames
        assert load_split(ids, count) == lists
    assert set(result[23].labeled) < set(result[46].labeled) < set(result[92].labeled) \
        < set(result[184].labeled)
    # deterministic per seed, different across seeds
    assert make_splits("camvid", root, seed=0) == result
    other = make_splits("camvid", root, seed=1)
    assert other[23].labeled != result[23].labeled and len(other[23].labeled) == 23
    # the UniMatch format: image + label paths relative to the root, read back to the same names
    assert make_splits("camvid", root, seed=0, out=pairs, fmt="pairs") == result
    line = (pairs / "23" / "labeled.txt").read_text().splitlines()[0]
    name = result[23].labeled[0]
    assert line == f"train/{name}.png trainannot/{name}.png"
    assert (ids / "23" / "labeled.txt").read_text().splitlines()[0] == name
    assert load_split(pairs, 184) == result[184]
    with pytest.raises(ValueError, match="format must be one of"):
        make_splits("camvid", root, counts=[23], fmt="csv")
    with pytest.raises(ValueError, match=r"\[368\].*has 367 images"):
        make_splits("camvid", root, counts=[368])
    assert main(["--dataset", "camvid", "--root", str(root), "--counts", "23", "--format", "pairs",
                 "--out", str(tmp_path / "cli")]) == 0
    assert (tmp_path / "cli" / "23" / "labeled.txt").read_text() == \
        (pairs / "23" / "labeled.txt").read_text()
