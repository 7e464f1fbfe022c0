"""One console: every message once, in the format of the handlers already there (Hydra's), and
no third-party advertisements.

Hydra configures the root logger (console and ``<job>.log``) before a job starts. Lightning then
adds handlers of its own: ``lightning`` (the unified package) always prints ``INFO: message``,
and ``lightning.pytorch`` / ``lightning.fabric`` print the bare message when they are imported
before the root logger has a handler. Each of them doubles every message.
"""

import logging

LIGHTNING = ("lightning", "lightning.pytorch", "lightning.fabric")
# Lightning's rank_zero_info goes through one of these (whichever rank_zero module was imported last).
RANK_ZERO = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")
# Lightning 2.6 prints these on every Trainer: logger_connector.py (litlogger, unless a LitLogger is
# used) and callback_connector.py (litmodels, when Lightning adds its own ModelCheckpoint). The last
# one only says that conf/callbacks has its own model summary (alexnet.callbacks.model_summary), as meant.
DROPPED = ("💡 Tip: For seamless cloud", "Trainer already configured with model summary callbacks")


class NoAdvertisements(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(DROPPED)


def one_console() -> None:
    """Idempotent: each run of a multirun calls it again."""
    if logging.getLogger().handlers:  # without a root handler Lightning's own are the only ones that print
        for name in LIGHTNING:
            logger = logging.getLogger(name)
            logger.handlers.clear()
            logger.propagate = True
    for name in RANK_ZERO:
        logger = logging.getLogger(name)
        if not any(isinstance(f, NoAdvertisements) for f in logger.filters):
            logger.addFilter(NoAdvertisements())
    # Python warnings (Lightning's hints, deprecations) through the same handlers, so they reach
    # the run's log file too, once.
    logging.captureWarnings(True)
