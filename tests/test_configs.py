"""Every experiment (and the default config) composes, and the pieces instantiate."""

from __future__ import annotations

import re

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from conftest import CONF, REPO

EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
EXPERIMENT_README = CONF / "experiment" / "README.md"


def _prefix_table() -> dict[str, tuple[str, str]]:
    """conf/experiment/README.md's table: prefix -> (conf/method/ stem, src/leseg/methods/ stem)."""
    rows = re.findall(r"^\| `(\w+)` \| `(\w+)\.yaml` \| `(\w+)\.py` \|",
                      EXPERIMENT_README.read_text(), re.M)
    assert rows, f"{EXPERIMENT_README}: no prefix | method config | module rows found"
    return {prefix: (method, module) for prefix, method, module in rows}


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


def test_experiment_prefixes_lead_to_their_method_files() -> None:
    table = _prefix_table()
    used = set()
    for experiment in EXPERIMENTS:
        prefix = experiment.split("_", 1)[0].split("-", 1)[0]
        assert prefix in table, f"{experiment}: prefix {prefix!r} has no row in {EXPERIMENT_README}"
        method_file, module = table[prefix]
        cfg = _compose("train", [f"experiment={experiment}"])
        assert cfg.hydra.runtime.choices.method == method_file, experiment
        assert cfg.method._target_.startswith(f"leseg.methods.{module}."), experiment
        used.add(prefix)
    for prefix, (method_file, module) in table.items():
        assert (CONF / "method" / f"{method_file}.yaml").is_file(), prefix
        assert (REPO / "src" / "leseg" / "methods" / f"{module}.py").is_file(), prefix
    assert used == set(table), f"rows without an experiment: {sorted(set(table) - used)}"


DATASETS = sorted(p.stem for p in (CONF / "data").glob("*.yaml"))
# conf/inference/<protocol> named by each data config (variants inherit their base's)
PROTOCOLS = {"cityscapes": "cityscapes", "cityscapes_semi": "cityscapes",
             "cityscapes_unlabeled": "cityscapes", "cityscapes_binary": "cityscapes_binary",
             "cityscapes_sequence": "cityscapes_sequence",
             "synthetic_city_sequence": "cityscapes_sequence", "voc": "whole", "voc_semi": "whole",
             "voc_image_labels": "whole", "voc_unlabeled": "whole",
             "synthetic_city": "synthetic_city", "synthetic_city_semi": "synthetic_city",
             "synthetic_city_unlabeled": "synthetic_city",
             "synthetic_city_binary": "synthetic_city_binary", "synthetic_voc": "synthetic_voc",
             "synthetic_voc_semi": "synthetic_voc", "synthetic_voc_image_labels": "synthetic_voc",
             "synthetic_voc_unlabeled": "synthetic_voc", "camvid": "camvid",
             "camvid_semi": "camvid", "camvid_unlabeled": "camvid", "camvid_image_labels": "camvid",
             "camvid_binary": "camvid_binary"}


@pytest.mark.parametrize("data", DATASETS)
def test_each_dataset_brings_its_evaluation_protocol(data: str) -> None:
    cfg = _compose("train", [f"data={data}"])
    choice = cfg.hydra.runtime.choices.inference
    assert choice is not None, (f"conf/data/{data}.yaml names no evaluation protocol: add "
                                "`- override /inference@_global_.inference: <conf/inference name>`")
    if data in PROTOCOLS:
        assert choice == PROTOCOLS[data]
        slide = PROTOCOLS[data] == "cityscapes"
        assert cfg.inference.mode == ("slide" if slide else "whole")


def test_inference_override_beats_the_datasets_protocol() -> None:
    assert _compose("train", ["data=cityscapes_semi", "inference=whole"]).inference.mode == "whole"
    cfg = _compose("train", ["experiment=supervised_fcn8s-r50_cityscapes-768x768"])  # sets whole
    assert cfg.data.name == "cityscapes" and cfg.inference.mode == "whole"
    cfg = _compose("train", ["experiment=supervised_fcn8s-r50_cityscapes-768x768",
                             "inference=cityscapes"])
    assert cfg.inference.mode == "slide"
    # eval: the checkpoint's protocol (None here) unless data= or inference= is given
    assert _compose("eval", ["ckpt_path=x.ckpt"]).get("inference") is None
    assert _compose("eval", ["ckpt_path=x.ckpt", "data=cityscapes"]).inference.mode == "slide"
    assert _compose("eval", ["ckpt_path=x.ckpt", "data=cityscapes",
                             "inference=whole"]).inference.mode == "whole"


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
