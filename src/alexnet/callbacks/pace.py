"""How fast a run goes and how long it has left: images per second and the ETA.

Arithmetic on numbers the host already has (batch sizes, step counts, ``time.monotonic()``), so
measuring the pace never waits for the device. The ETA assumes the steps still to come take as
long as this process's steps so far, validation included (a resumed run counts only its own).
"""

import math
import time


def images_per_second(images: int, seconds: float) -> float:
    return images / seconds if seconds > 0 else 0.0


def eta_seconds(step: int, total: float, elapsed: float, first_step: int = 0) -> float | None:
    """Seconds left once ``step`` of ``total`` steps are done, ``step - first_step`` of them in
    ``elapsed`` seconds; None while nothing is measured or the run has no end (max_epochs=-1)."""
    done = step - first_step
    if done <= 0 or elapsed <= 0 or not math.isfinite(total):
        return None
    return max(total - step, 0) * elapsed / done


def duration(seconds: float | None) -> str:
    """``0:12:34``, ``1d 02:03:04``; ``?`` when unknown."""
    if seconds is None:
        return "?"
    days, rest = divmod(round(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    clock = f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}" if days else f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
    return f"{days}d {clock}" if days else clock


class Pace:
    """Training images counted batch by batch; their rate over a window, and the run's ETA."""

    def __init__(self) -> None:
        self.start(step=0, total=math.inf)

    def start(self, step: int, total: float) -> None:
        """Fitting starts (after the sanity check) at ``step`` (non-zero on a resume) of ``total``."""
        self.first_step, self.total = step, total
        self.started = self.window_start = time.monotonic()
        self.images = 0

    def add(self, images: int) -> None:
        self.images += images

    def rate(self) -> float:
        """Images per second since the last call (or the start), then a new window begins."""
        now = time.monotonic()
        rate = images_per_second(self.images, now - self.window_start)
        self.images, self.window_start = 0, now
        return rate

    def eta(self, step: int) -> float | None:
        return eta_seconds(step, self.total, time.monotonic() - self.started, self.first_step)
