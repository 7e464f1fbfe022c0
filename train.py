"""Train AlexNet: python train.py [overrides], e.g. model.lrn=false, model=alexnet_1gpu, -m seed=1,2,3."""

import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from alexnet.host import tune_process
from alexnet.launch.overrides import check_overrides
from alexnet.launch.run_id import RUN_ID, RUN_NAME, rank_overrides, run_id, run_name
from alexnet.paths import register_resolvers


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    # First, before torch loads; here rather than at the top so that a submitit job's process,
    # which runs this function without this file's top, is tuned too.
    tune_process()
    from alexnet.launch.job import run_job

    return run_job(cfg)


if __name__ == "__main__":
    check_overrides(sys.argv[1:])  # what Hydra's override grammar cannot read, named with its fix
    register_resolvers()  # ${alexnet.project_root:}, before Hydra composes the config
    # The only writer of ALEXNET_RUN_ID and ALEXNET_RUN_NAME: inherited by a multirun's jobs
    # (submitit's included) and DDP ranks (which rerun this file, keeping it), so they resolve the
    # same folder. Under torchrun every rank runs this file, on any node, and again after a
    # restart: the folder's name is the job's, with no time in it, and ranks > 0 leave the
    # config record to rank 0.
    if run_name():
        os.environ.setdefault(RUN_NAME, run_name())
        sys.argv += rank_overrides(Path(__file__).stem)
    else:
        os.environ.setdefault(RUN_ID, run_id())
    main()
