"""``import alexnet`` keeps freed memory in glibc's heap and lets OpenMP threads sleep, unless the
user configured either; checked in fresh interpreters, since both act on the whole process."""

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")

# After ``import alexnet``, a 200 MB tensor: from the heap (no mmapped bytes) or from mmap.
PROBE = """
import ctypes, os, alexnet, torch
class Info(ctypes.Structure):
    names = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
    _fields_ = [(n, ctypes.c_size_t) for n in names.split()]
mallinfo2 = ctypes.CDLL(None).mallinfo2
mallinfo2.restype = Info
x = torch.ones(50_000_000)
print(alexnet.FREED_MEMORY_KEPT, mallinfo2().hblkhd >= x.nbytes, os.environ.get("OMP_WAIT_POLICY"))
"""


def probe(**env) -> list[str]:
    ours = ("MALLOC_MMAP_MAX_", "GLIBC_TUNABLES", "OMP_WAIT_POLICY", "ALEXNET_KEEP_FREED_MEMORY")
    clean = {k: v for k, v in os.environ.items() if k not in ours}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_large_tensors_come_from_the_kept_heap_and_openmp_threads_sleep():
    assert probe() == ["True", "False", "PASSIVE"]


def test_a_users_malloc_and_openmp_settings_win():
    assert probe(GLIBC_TUNABLES="glibc.malloc.perturb=0", OMP_WAIT_POLICY="ACTIVE") == ["False", "True", "ACTIVE"]


def test_the_switch_turns_kept_memory_off():
    assert probe(ALEXNET_KEEP_FREED_MEMORY="0")[:2] == ["False", "True"]
