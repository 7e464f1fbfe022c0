"""Train AlexNet: python train.py [overrides], e.g. model.lrn=false, model=alexnet_1gpu, -m seed=1,2,3."""

import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from alexnet.training.run import ConfigError, RunStopped, train

    if cfg.get("fig1"):  # experiment=fig1_relu_vs_tanh: the CIFAR-10 ReLU/tanh comparison, not AlexNet
        from alexnet.experiments.fig1 import run_from_config

        run_from_config(cfg)
        return None
    try:
        summary = train(cfg)
    except ConfigError as err:
        print(f"config error: {err}", file=sys.stderr)
        sys.exit(2)
    except RunStopped as stop:  # SIGTERM/SIGINT (checkpoint saved) or a diverged loss
        rank_zero = getattr(stop, "global_zero", True)
        if rank_zero:
            print(stop, file=sys.stderr)
        if stop.then is not None:
            stop.then()  # submitit (hydra/launcher=slurm): requeue this job; it resumes from last.ckpt
        # DDP ranks > 0 exit 0: Lightning's launcher kills rank 0 when a child exits non-zero.
        sys.exit(stop.exit_code if rank_zero else 0)
    return summary.get("val/top1_err")  # the value a Hydra sweeper optimises


if __name__ == "__main__":
    main()
