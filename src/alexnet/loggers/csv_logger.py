"""Lightning's CSVLogger, except that a run resumed in its folder keeps the metrics it logged.

Lightning's writer deletes ``metrics.csv`` when it finds the folder not empty, so a run stopped
and resumed (``ckpt_path=last``) would lose the rows of every epoch before the stop. Here the old
rows are kept up to the step the run continues from; rows logged after that step (the part of an
epoch that ran past the checkpoint and is trained again) are replaced by the new ones.
"""

import csv
import os

from lightning.pytorch.loggers import CSVLogger as LightningCSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.utilities.rank_zero import rank_zero_only


class ResumingWriter(ExperimentWriter):
    def _check_log_dir_exists(self) -> None:
        self.previous: list[dict[str, str]] = []
        if os.path.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="") as file:
                self.previous = list(csv.DictReader(file))
            os.remove(self.metrics_file_path)  # written again, with the old rows first, at the first save

    def save(self) -> None:
        if self.previous and self.metrics:
            resumed_at = min(int(m["step"]) for m in self.metrics)
            kept = [row for row in self.previous if row.get("step", "") != "" and int(row["step"]) < resumed_at]
            self.previous = []
            if kept:
                self.metrics = kept + self.metrics
        super().save()


class CSVLogger(LightningCSVLogger):
    @property
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None and rank_zero_only.rank == 0:  # the other ranks get Lightning's dummy
            os.makedirs(self.root_dir, exist_ok=True)
            self._experiment = ResumingWriter(log_dir=self.log_dir)
        return super().experiment
