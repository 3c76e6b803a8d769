"""``python -m leseg.stages <stage>``: every stage config calls a real function with real
parameters, and a checkpoint-reading stage (the S4MC pseudo-label audit) runs through it."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import hydra
import pytest
import torch

from leseg.stages.entry import CONF_DIR, run, stage_names
from leseg.tasks.train import train

from conftest import compose_cfg

NEEDED = {"ssenet_cams": ["ckpt_path=c.ckpt"], "ssenet_crf": ["stage.cams=w/cams"],
          "ssenet_random_walk": ["ckpt_path=a.ckpt", "stage.cams=w/cams"],
          "ssenet_evaluate": ["stage.masks=w/pseudo"], "pseudo_label_audit": ["ckpt_path=s.ckpt"],
          "select_annotations": ["stage.teacher=t.ckpt", "stage.budgets=[2]", "stage.out=o"],
          "s5_noc_curve": ["ckpt_path=s.ckpt"], "ssenet_audit": []}
"""The overrides each stage config needs (its ``???`` values)."""


def test_every_stage_config_names_a_function_and_only_its_parameters(tmp_path: Path) -> None:
    names = stage_names()
    assert set(NEEDED) | {"downsample"} == set(names)
    assert (CONF_DIR / "stage" / "_ssenet_common.yaml").is_file()  # a shared part, no stage
    for name in names:
        cfg = compose_cfg("stages", [f"stage={name}", *NEEDED.get(name, [])], tmp_path / name)
        function = hydra.utils.get_method(cfg.stage._target_)
        params = inspect.signature(function).parameters
        takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
        keys = set(cfg.stage) - {"_target_"}
        assert takes_any or keys <= set(params), (name, keys - set(params))
        required = {n for n, p in params.items()
                    if p.default is p.empty and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        assert required <= keys, (name, required - keys)


def test_run_refuses_a_stage_without_target(tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    with pytest.raises(ValueError, match=r"needs a _target_.*\['root'\]"):
        run(OmegaConf.create({"stage": {"root": "x"}}))


def test_pseudo_label_audit_through_the_stage_entry(make_train_cfg, tmp_path: Path) -> None:
    cfg = make_train_cfg("synthetic_voc", overrides=(
        "data=synthetic_voc_semi", "inference=synthetic_voc", "method=s4mc", "data.split=2",
        "method.sup_only_epochs=1", "trainer.max_epochs=2", "test=false"))
    train(cfg)
    ckpt = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    out = tmp_path / "audit"
    summary = run(compose_cfg("stages", ["stage=pseudo_label_audit", f"ckpt_path={ckpt}",
                                         "stage.max_images=3", "stage.device=cpu",
                                         "stage.progress=[0,1]", "extras.print_config=false"],
                              out))
    assert summary["images"] == 3 and summary["checkpoint"] == str(ckpt)
    assert summary["pixels"] > 0 and summary["progress"] == [0.0, 1.0]
    assert 0.0 <= summary["kept@0"] <= 100.0 and 0.0 <= summary["accuracy@1"] <= 100.0
    report = (out / "pseudo_label_audit.md").read_text()
    assert report.startswith(f"Pseudo-label audit of `{ckpt}` on 3 unlabeled images")
    saved = json.loads((out / "stage_summary.json").read_text())["result"]
    assert saved["images"] == 3 and saved["classes"].keys() == summary["classes"].keys()
    # the module's own command line gives the same numbers and quotes itself
    from leseg.stages.pseudo_label_audit import main

    argv = ["--ckpt", str(ckpt), "--max-images", "3", "--device", "cpu", "--progress", "0", "1",
            "--md", str(tmp_path / "cli.md")]
    assert main(argv)["kept@1"] == pytest.approx(summary["kept@1"])
    assert (f"`python -m leseg.stages.pseudo_label_audit {' '.join(argv)}`"
            in (tmp_path / "cli.md").read_text())
    # a checkpoint of another method is refused by name before anything is built
    other = tmp_path / "supervised.ckpt"
    stored = torch.load(ckpt, weights_only=True)
    stored["hyper_parameters"]["config"]["method"]["name"] = "supervised"
    torch.save(stored, other)
    with pytest.raises(ValueError, match=f"{other}.*method.name='supervised'"):
        run(compose_cfg("stages", ["stage=pseudo_label_audit", f"ckpt_path={other}"],
                        tmp_path / "other"))


def test_eval_refuses_a_stage_config_and_names_the_stage_entry(tmp_path: Path) -> None:
    from leseg.tasks.eval import evaluate

    cfg = compose_cfg("eval", ["+stage=ssenet_evaluate", "ckpt_path=x.ckpt", "stage.masks=m",
                               "extras.print_config=false"], tmp_path)
    with pytest.raises(ValueError, match="python -m leseg.stages <stage>"):
        evaluate(cfg)
