"""Counting the images that training (or the statistics pass) skipped because they do not decode.

The first ten are logged by name, the count is reported when the period ends (an epoch's
training, the statistics pass), and the run stops as soon as one period passes
``data.max_bad_images``: a few broken files in ImageNet are normal, a broken disk is not.
"""

import logging

from alexnet.errors import ConfigError

log = logging.getLogger(__name__)


class TooManyUnreadableImages(ConfigError):
    """Bad input: reported in one line naming data.max_bad_images, never as a traceback."""


class UnreadableCounter:
    def __init__(self, limit: int):
        self.limit = limit
        self.period: str | None = None
        self.count = 0
        self.total = 0

    def add(self, period: str, skipped: list[str]) -> None:
        """``period``: "epoch 3", "the statistics pass"; a new one reports the last."""
        if period != self.period:
            self.report()
            self.period = period
        for message in skipped:
            if self.count < 10:
                log.warning("skipped an unreadable training image: %s", message)
            self.count += 1
            self.total += 1
        if self.count > self.limit:
            raise TooManyUnreadableImages(
                f"data.max_bad_images: {self.count} unreadable training images in {period}, more than the {self.limit} allowed "
                f"(the first ones are logged above). Repair or remove them (python -m alexnet.data.prepare lists every one in "
                f"its manifest, unreadable.tsv), or raise data.max_bad_images."
            )

    def report(self) -> None:
        if self.count:
            log.warning("%s: skipped %d unreadable training images (data.max_bad_images=%d)", self.period, self.count, self.limit)
        self.count = 0
