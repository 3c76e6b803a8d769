"""Train a leseg experiment: ``python train.py experiment=<name> [overrides]`` (see README)."""

import hydra
from omegaconf import DictConfig

from leseg.tasks.train import train
from leseg.utils.config import extras
from leseg.utils.resolvers import register_resolvers
from leseg.utils.task import get_metric_value

register_resolvers()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Compose, print and save the config, train, and return ``optimized_metric`` for sweepers."""
    extras(cfg)
    metrics, _ = train(cfg)
    return get_metric_value(metrics, cfg.get("optimized_metric"))


if __name__ == "__main__":
    main()
