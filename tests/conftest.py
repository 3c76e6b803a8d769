"""Shared fixtures: tiny configs composed like the entry points do, isolated output/data dirs.

Configs are composed with Hydra's compose API (as lightning-hydra-template's tests do) and shrunk to
CPU-sized runs; every test gets its own output directory; wandb is disabled.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from leseg.utils.resolvers import register_resolvers

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
SAMPLE_DATA = os.environ.get("LESEG_SAMPLE_DATA")

# Tiny synthetic datasets shared by the whole session (generation is deterministic).
TINY_CITY = {"kind": "city", "num_train": 8, "num_val": 4, "height": 64, "width": 128, "seed": 0}
TINY_VOC = {"kind": "voc", "num_train": 8, "num_val": 4, "height": 64, "width": 80, "seed": 0}

torch.set_num_threads(min(2, torch.get_num_threads()))
register_resolvers()


def sample_data(*parts: str) -> Path:
    """Path under $LESEG_SAMPLE_DATA, skipping the test when the variable is unset."""
    if not SAMPLE_DATA:
        pytest.skip("LESEG_SAMPLE_DATA is not set (point it at ../shared/data)")
    path = Path(SAMPLE_DATA, *parts)
    if not path.exists():
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture(autouse=True)
def _no_wandb(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("WANDB_SILENT", "true")


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session-wide data directory holding the tiny synthetic datasets."""
    from leseg.data.synthetic import ensure_synthetic

    root = tmp_path_factory.mktemp("data")
    ensure_synthetic("city", root / "synthetic_city", **{k: v for k, v in TINY_CITY.items() if k != "kind"})
    ensure_synthetic("voc", root / "synthetic_voc" / "VOC2012",
                     **{k: v for k, v in TINY_VOC.items() if k != "kind"})
    return root


def _tiny_overrides(data: str) -> list[str]:
    tiny = TINY_CITY if data == "synthetic_city" else TINY_VOC
    crop = [tiny["height"], tiny["width"]] if data == "synthetic_city" else [64, 64]
    return [
        f"data={data}",
        "model=deeplabv3plus_r18",
        "trainer=cpu",
        "logger=none",
        "callbacks=default",
        "~callbacks.progress_bar",
        "~callbacks.model_summary",
        "trainer.max_epochs=2",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=2",
        "trainer.limit_test_batches=2",
        "trainer.num_sanity_val_steps=0",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "data.batch_size=4",
        "data.val_batch_size=2" if data == "synthetic_city" else "data.val_batch_size=1",
        "data.num_workers=0",
        "data.persistent_workers=false",
        f"data.train_transforms.crop_size=[{crop[0]},{crop[1]}]",
        "model.head.channels=32",
        "extras.print_config=false",
    ] + [f"data.synthetic.{k}={v}" for k, v in tiny.items() if k != "kind"]


def compose_cfg(config_name: str, overrides: list[str], output_dir: Path) -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` with overrides and register it as the current Hydra config."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(output_dir)
        cfg.hydra.job.num = 0
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        del cfg["hydra"]
    output_dir.mkdir(parents=True, exist_ok=True)
    return cfg


@pytest.fixture
def make_train_cfg(tmp_path: Path, data_dir: Path) -> Callable[..., DictConfig]:
    """Factory: a tiny train config for ``synthetic_city`` or ``synthetic_voc`` plus extra overrides."""

    def make(data: str = "synthetic_city", overrides: tuple[str, ...] = (),
             out: str = "run") -> DictConfig:
        base = _tiny_overrides(data) + [f"paths.data_dir={data_dir}"]
        return compose_cfg("train", base + list(overrides), tmp_path / out)

    yield make
    GlobalHydra.instance().clear()
