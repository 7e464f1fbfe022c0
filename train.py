"""Train AlexNet: python train.py [overrides], e.g. model.lrn=false, model=alexnet_1gpu, -m seed=1,2,3."""

import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from alexnet.train import ConfigError, train

    try:
        summary = train(cfg)
    except ConfigError as err:
        print(f"config error: {err}", file=sys.stderr)
        sys.exit(2)
    return summary.get("val/top1_err")  # the value a Hydra sweeper optimises


if __name__ == "__main__":
    main()
