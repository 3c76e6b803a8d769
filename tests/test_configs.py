"""Every experiment (and the default config) composes, and the pieces instantiate."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from conftest import CONF

EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


def _compose(name: str, overrides: list[str]):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(name, overrides=overrides, return_hydra_config=True)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes_and_is_named_after_itself(experiment: str) -> None:
    cfg = _compose("train", [f"experiment={experiment}"])
    assert cfg.experiment_name == experiment
    # mmsegmentation-style name: {method}[-{variant}]_{model}_{dataset}-{crop}, where a variant
    # names a non-default option of the method (s4mc-cbdpa: class-balanced DPA partition)
    method, model, rest = experiment.split("_", 2)
    assert method == cfg.method.name or method.startswith(f"{cfg.method.name}-")
    assert model == cfg.model.name
    assert rest.startswith(cfg.data.name.replace("_", "-"))
    plain = OmegaConf.to_container(cfg.data, resolve=True)  # every interpolation resolves
    assert plain["num_classes"] == cfg.model.num_classes == cfg.method.num_classes
    assert cfg.method.inference.mode in ("whole", "slide")


@pytest.mark.parametrize("data", ["cityscapes", "voc", "synthetic_city", "synthetic_voc", "camvid"])
def test_each_dataset_brings_its_evaluation_protocol(data: str) -> None:
    cfg = _compose("train", [f"data={data}"])
    assert cfg.hydra.runtime.choices.inference == data
    expected = "slide" if data == "cityscapes" else "whole"
    assert cfg.inference.mode == expected


@pytest.mark.parametrize("data", ["camvid", "camvid_semi", "camvid_binary", "camvid_unlabeled",
                                  "camvid_image_labels"])
def test_camvid_variants_compose_with_the_camvid_protocol(data: str) -> None:
    cfg = _compose("train", [f"data={data}", "data.root=/somewhere/CamVid"])
    plain = OmegaConf.to_container(cfg.data, resolve=True)
    assert plain["root"] == "/somewhere/CamVid"
    assert plain["num_classes"] == (2 if data == "camvid_binary" else 11)
    assert cfg.inference.mode == "whole"
    if data not in ("camvid_unlabeled",):
        assert (plain["val_set"], plain["test_set"]) == ("val", "test")  # select on val, report on test


def test_run_dir_names_experiment_split_seed_and_microseconds() -> None:
    cfg = _compose("train", ["data=voc", "data.split=366", "seed=3"])
    run_dir = cfg.hydra.run.dir
    parts = run_dir.split("/")
    assert parts[-5:-1] == ["train", cfg.experiment_name, "voc-366", "seed3"][-4:]
    assert len(parts[-1].split("_")[-1]) == 6  # %f microseconds: jobs started together never collide


@pytest.mark.parametrize("group", ["trainer/cpu", "trainer/gpu", "trainer/ddp", "logger/wandb",
                                   "logger/csv", "logger/tensorboard", "logger/none",
                                   "debug/fast", "debug/limit", "debug/overfit"])
def test_group_options_compose(group: str) -> None:
    key, value = group.split("/")
    cfg = _compose("train", [f"{key}={value}"])
    assert cfg.hydra.runtime.choices[key] == value


def test_eval_config_requires_a_checkpoint() -> None:
    cfg = _compose("eval", ["ckpt_path=x.ckpt"])
    assert cfg.ckpt_path == "x.ckpt" and cfg.get("data") is None
