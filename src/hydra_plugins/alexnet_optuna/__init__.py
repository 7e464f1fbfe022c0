"""The Optuna sweeper of conf/hparams_search/, continuable. Hydra loads sweepers only from the
``hydra_plugins`` package, so the class is here and its logic in ``alexnet.launch.search``.

Hydra's Optuna sweeper numbers its jobs from 0 in every invocation, so continuing a study in its
sweep folder would write the new trials over the first ones' folders; and it opens a SQLite
storage in the sweep folder before anything has made that folder. This one does both first.
Hydra imports every module here at each start: nothing heavy at the top.
"""

from hydra.types import HydraContext, TaskFunction
from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper
from omegaconf import DictConfig


class ContinuedOptunaSweeper(OptunaSweeper):
    """hydra-optuna-sweeper's OptunaSweeper (the same keys), whose job N is the study's trial N."""

    # Rerun in its sweep folder, it adds job folders after the earlier ones and writes into none of
    # them: alexnet.launch.sweeps.RunFolders lets it continue there (no ckpt_path=last, no overwrite).
    adds_job_folders = True

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from alexnet.launch.search import prepare_storage

        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        sweeper = self.sweeper
        sweeper.job_idx = prepare_storage(str(config.hydra.sweep.dir), sweeper.storage, sweeper.study_name)
