"""How the entry points tune their own process: ``tune_process()``, called first, before torch loads.

Two settings, both acting on the whole process (so importing the library makes neither):

- OpenMP's idle threads sleep instead of spinning (``OMP_WAIT_POLICY=PASSIVE``), so they do not
  take the cores from the loader's workers or from the other thread's next op. torch's OpenMP
  runtime reads it once, when torch loads: set later it does nothing here (only in children),
  hence the warning then. A value already in the environment wins.
- glibc keeps freed memory for the next allocation (``mallopt``: no ``mmap`` for large blocks,
  no trimming). PyTorch's CPU allocator has no cache of its own: each activation of a step is a
  fresh ``mmap`` that the kernel page-faults and zeroes, then unmaps at ``free``. Kept memory is
  what a GPU caching allocator does; the cost is that the process holds its peak memory.
  ``ALEXNET_KEEP_FREED_MEMORY=0`` turns it off; ``MALLOC_MMAP_MAX_`` or ``GLIBC_TUNABLES`` in the
  environment leaves glibc as the user set it.

Children inherit both: forked loader workers share the parent's malloc settings and environment;
spawned processes and DDP ranks inherit the environment, and those that run an entry point tune
themselves. The README's speed section has the measured difference (``python -m alexnet.bench``).
"""

import ctypes
import os
import platform
import sys
import warnings
from dataclasses import dataclass

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's <malloc.h>


@dataclass(frozen=True)
class Tuning:
    """What ``tune_process`` found or did."""

    omp_wait_policy: str | None  # the policy torch's OpenMP runtime reads; None: torch loaded before it was set
    freed_memory_kept: bool  # glibc told to keep freed memory (False: not glibc, or the user configured malloc)


TUNING: Tuning | None = None  # what this process's last tune_process() did (None: not tuned)


def tune_process() -> Tuning:
    """Set OMP_WAIT_POLICY (unless set) and keep freed memory (unless configured); a warning when
    torch was imported first, since its OpenMP runtime has then read its settings already."""
    policy = os.environ.get("OMP_WAIT_POLICY")
    if policy is None:
        if "torch" in sys.modules:
            warnings.warn(
                "alexnet.host.tune_process(): torch was imported first, so its OpenMP threads keep "
                "spinning (OMP_WAIT_POLICY unset); call it before importing torch",
                RuntimeWarning,
                stacklevel=2,
            )
        else:
            os.environ["OMP_WAIT_POLICY"] = policy = "PASSIVE"
    global TUNING
    TUNING = Tuning(omp_wait_policy=policy, freed_memory_kept=keep_freed_memory())
    return TUNING


def keep_freed_memory() -> bool:
    """Tell glibc to serve large blocks from its heap and never return them; False where the C
    library is not glibc or the user has configured malloc."""
    if os.environ.get("ALEXNET_KEEP_FREED_MEMORY", "1") == "0" or platform.libc_ver()[0] != "glibc":
        return False
    if "MALLOC_MMAP_MAX_" in os.environ or "GLIBC_TUNABLES" in os.environ:
        return False
    libc = ctypes.CDLL(None)
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, ctypes.c_int(2**31 - 1).value))
