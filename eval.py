"""Evaluate a checkpoint: ``python eval.py ckpt_path=<file> [data=<name> ...]`` (see README)."""

import hydra
from omegaconf import DictConfig

from leseg.tasks.eval import evaluate
from leseg.utils.config import extras
from leseg.utils.resolvers import register_resolvers

register_resolvers()


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
def main(cfg: DictConfig) -> None:
    """Compose, print and save the config, and evaluate ``cfg.ckpt_path``."""
    extras(cfg)
    evaluate(cfg)


if __name__ == "__main__":
    main()
