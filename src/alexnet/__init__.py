"""AlexNet (Krizhevsky, Sutskever, Hinton, NIPS 2012), reproduced with Lightning and Hydra.

Importing the package tunes two things about the host process, because every entry point
(train.py, eval, predict, the benchmarks, the loader's worker processes) imports it first:

- OpenMP's idle threads sleep instead of spinning (``OMP_WAIT_POLICY=PASSIVE``), so they do not
  take the cores from the loader's workers or from the other thread's next op. It must be set
  before torch loads its OpenMP runtime; a value already in the environment wins.
- glibc keeps freed memory for the next allocation (``mallopt``: no ``mmap`` for large blocks,
  no trimming). PyTorch's CPU allocator has no cache of its own: each activation of a step is a
  fresh ``mmap`` that the kernel page-faults and zeroes, then unmaps at ``free``. Kept memory is
  what a GPU caching allocator does; the cost is that the process holds its peak memory.
  ``ALEXNET_KEEP_FREED_MEMORY=0`` turns it off; ``MALLOC_MMAP_MAX_`` or ``GLIBC_TUNABLES`` in the
  environment leaves glibc as the user set it.
docs/benchmarks.md has the measured difference (``python -m alexnet.bench``).
"""

import ctypes
import os
import platform

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's <malloc.h>


def keep_freed_memory() -> bool:
    """Tell glibc to serve large blocks from its heap and never return them; False where the C
    library is not glibc or the user has configured malloc."""
    if os.environ.get("ALEXNET_KEEP_FREED_MEMORY", "1") == "0" or platform.libc_ver()[0] != "glibc":
        return False
    if "MALLOC_MMAP_MAX_" in os.environ or "GLIBC_TUNABLES" in os.environ:
        return False
    libc = ctypes.CDLL(None)
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, ctypes.c_int(2**31 - 1).value))


FREED_MEMORY_KEPT = keep_freed_memory()
