"""Lightning's CSVLogger, except that a run resumed in its folder keeps the metrics it logged.

Lightning's writer deletes ``metrics.csv`` when it finds the folder not empty, so a run stopped
and resumed (``ckpt_path=last``) would lose the rows of every epoch before the stop. Here the old
rows are kept up to the step the run continues from; rows logged after that step (the part of an
epoch that ran past the checkpoint and is trained again) are replaced by the new ones.
"""

import csv
import os

from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from alexnet.lightning_private import CSVLoggerHooks, CSVWriterHooks


class ResumingWriter(CSVWriterHooks):
    def on_existing_log_dir(self) -> None:
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


class CSVLogger(CSVLoggerHooks):
    def make_writer(self) -> ExperimentWriter:
        os.makedirs(self.root_dir, exist_ok=True)
        return ResumingWriter(log_dir=self.log_dir)
