"""The loggers (conf/logger/): Lightning's CSV logger that keeps a resumed run's rows, and W&B offline-first."""

from alexnet.loggers.csv_logger import CSVLogger

__all__ = ["CSVLogger"]
