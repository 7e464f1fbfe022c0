"""Train AlexNet: python train.py [overrides], e.g. model.lrn=false, model=alexnet_1gpu, -m seed=1,2,3."""

import os
from pathlib import Path

import hydra
from omegaconf import DictConfig

from alexnet.launch.run_id import run_id

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))


# Inherited by a multirun's jobs (submitit's included) and DDP ranks: they resolve the same folder.
os.environ.setdefault("ALEXNET_RUN_ID", run_id())


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from alexnet.launch.job import run_job

    return run_job(cfg)


if __name__ == "__main__":
    main()
