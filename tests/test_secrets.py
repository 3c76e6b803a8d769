"""Secrets (wandb API key, tokens, passwords) never reach leseg's saved configs, logs or checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from leseg.tasks.train import train
from leseg.utils.config import REDACTED, print_config_tree, redact, to_plain

WANDB_KEY = "0123456789abcdef0123456789abcdef01234567"
SECRETS = ("hf_abcdefgh12345", "hunter22hunter", WANDB_KEY)
OVERRIDES = ("+notes=run with key ${oc.env:WANDB_API_KEY} inside",
             "+credentials.hub_token=hf_abcdefgh12345", "+credentials.db_password=hunter22hunter",
             "+credentials.num_tokens=196")


def test_redact_keys_and_environment_values(monkeypatch) -> None:
    monkeypatch.setenv("WANDB_API_KEY", WANDB_KEY)
    plain = {"logger": {"wandb": {"api_key": "abc", "project": "leseg"}}, "num_tokens": 196,
             "paths": ["/data", f"x{WANDB_KEY}y"], "Secret_Thing": "s3cr3t", "empty_token": ""}
    out = redact(plain)
    assert out["logger"]["wandb"] == {"api_key": REDACTED, "project": "leseg"}
    assert out["num_tokens"] == 196 and out["empty_token"] == ""  # only non-empty strings
    assert out["paths"] == ["/data", f"x{REDACTED}y"] and out["Secret_Thing"] == REDACTED
    assert plain["logger"]["wandb"]["api_key"] == "abc"  # a copy: the input is unchanged


def test_config_tree_and_plain_config_are_redacted(make_train_cfg, monkeypatch,
                                                   tmp_path: Path) -> None:
    monkeypatch.setenv("WANDB_API_KEY", WANDB_KEY)
    cfg = make_train_cfg(overrides=OVERRIDES)
    plain = json.dumps(to_plain(cfg))
    assert not any(s in plain for s in SECRETS)
    assert to_plain(cfg)["credentials"] == {"hub_token": REDACTED, "db_password": REDACTED,
                                            "num_tokens": 196}
    assert to_plain(cfg, redact_secrets=False)["credentials"]["hub_token"] == SECRETS[0]
    tree = tmp_path / "config_tree.log"
    print_config_tree(cfg, save_to=tree)
    text = tree.read_text()
    assert REDACTED in text and not any(s in text for s in SECRETS)


@pytest.mark.slow
def test_checkpoint_and_logged_hparams_hold_no_secret(make_train_cfg, monkeypatch) -> None:
    monkeypatch.setenv("WANDB_API_KEY", WANDB_KEY)
    cfg = make_train_cfg(overrides=OVERRIDES + ("logger=csv", "trainer.max_epochs=1",
                                                "trainer.limit_train_batches=1", "test=false"))
    train(cfg)
    out = Path(cfg.paths.output_dir)
    files = list(out.rglob("*.ckpt")) + list(out.rglob("hparams.yaml")) + [out / "metrics.json"]
    assert any(p.suffix == ".ckpt" for p in files) and any(p.name == "hparams.yaml" for p in files)
    for path in files:
        data = path.read_bytes()
        assert not any(s.encode() in data for s in SECRETS), path
