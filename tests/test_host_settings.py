"""The process is the entry point's to tune, never the library's: importing any ``alexnet`` module
leaves the environment, malloc and logging as they were; ``alexnet.host.tune_process()``, which
every entry point calls before torch loads, lets OpenMP threads sleep and keeps freed memory in
glibc's heap, unless the user configured either. Checked in fresh interpreters, since all of it
acts on the whole process."""

import json
import os
import platform
import subprocess
import sys

import pytest
from conftest import ROOT

from alexnet.exit_codes import ExitCode

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")

OURS = ("MALLOC_MMAP_MAX_", "GLIBC_TUNABLES", "OMP_WAIT_POLICY", "ALEXNET_KEEP_FREED_MEMORY")

# mmapped: whether a 200 MB tensor came from mmap (glibc as it starts) rather than the kept heap.
MMAPPED = """
import ctypes
class Info(ctypes.Structure):
    names = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
    _fields_ = [(n, ctypes.c_size_t) for n in names.split()]
def mmapped():
    import torch
    mallinfo2 = ctypes.CDLL(None).mallinfo2
    mallinfo2.restype = Info
    x = torch.ones(50_000_000)
    return mallinfo2().hblkhd >= x.nbytes
"""

# Every module under src/alexnet imported one by one; after each, what changed.
IMPORT_ALL = (
    MMAPPED
    + """
import importlib, json, logging, os, pathlib, sys
src = pathlib.Path(sys.argv[1])
names = sorted(".".join(p.relative_to(src).with_suffix("").parts).removesuffix(".__init__") for p in src.glob("alexnet/**/*.py"))
def loggers():
    found = dict(logging.Logger.manager.loggerDict, root=logging.getLogger())
    return {n: (l.level, list(l.handlers), list(l.filters), l.propagate, l.disabled)
            for n, l in found.items() if isinstance(l, logging.Logger)}
changed = []
for name in names:
    env, before = dict(os.environ), loggers()
    importlib.import_module(name)
    after = loggers()
    if dict(os.environ) != env:
        changed.append(f"{name}: os.environ {set(os.environ.items()) ^ set(env.items())}")
    for logger, state in after.items():
        # Loggers that existed, and the library's own new ones, as they were; third-party
        # packages' new loggers (their import's business) may come with their handlers.
        if state != before.get(logger, (0, [], [], True, False)) and (logger in before or logger.startswith("alexnet")):
            changed.append(f"{name}: logger {logger!r} {before.get(logger)} -> {state}")
print(json.dumps({"modules": len(names), "changed": changed, "mmapped": mmapped()}))
"""
)


def python(code: str, *args: str, **env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in OURS}
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=300
    )


def test_importing_any_module_changes_nothing_about_the_process():
    proc = python(IMPORT_ALL, str(ROOT / "src"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout.splitlines()[-1])
    assert found["modules"] > 50
    assert found["changed"] == []
    assert found["mmapped"]  # malloc as glibc starts


# tune_process(), then torch: what it reports, the policy torch's OpenMP read, where a large tensor lives.
TUNE = (
    MMAPPED
    + """
import os, warnings
from alexnet.host import tune_process
with warnings.catch_warnings(record=True) as said:
    warnings.simplefilter("always")
    if os.environ.get("TORCH_FIRST"):
        import torch
    tuning = tune_process()
print(tuning.freed_memory_kept, mmapped(), tuning.omp_wait_policy, os.environ.get("OMP_WAIT_POLICY"), len(said))
"""
)


def tune(**env) -> list[str]:
    proc = python(TUNE, **env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.split()


def test_tuning_keeps_freed_memory_and_lets_openmp_threads_sleep():
    assert tune() == ["True", "False", "PASSIVE", "PASSIVE", "0"]


def test_a_users_malloc_and_openmp_settings_win():
    assert tune(GLIBC_TUNABLES="glibc.malloc.perturb=0", OMP_WAIT_POLICY="ACTIVE") == ["False", "True", "ACTIVE", "ACTIVE", "0"]


def test_the_switch_turns_kept_memory_off():
    assert tune(ALEXNET_KEEP_FREED_MEMORY="0")[:2] == ["False", "True"]


def test_tuning_after_torch_loaded_says_the_openmp_setting_came_too_late():
    # malloc can still be tuned; OpenMP has read its settings: nothing set, one warning.
    assert tune(TORCH_FIRST="1") == ["True", "False", "None", "None", "1"]


# Runs an entry point (a script or a module, as python runs it) and reports, at exit, what the
# process looked like when torch began to load.
WATCH = """
import atexit, json, os, runpy, sys
seen = {}
class TorchWatch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and not seen:
            host = sys.modules.get("alexnet.host")
            tuning = host and host.TUNING
            seen.update(omp=os.environ.get("OMP_WAIT_POLICY"), kept=bool(tuning and tuning.freed_memory_kept))
sys.meta_path.insert(0, TorchWatch())
atexit.register(lambda: print("torch loaded in:", json.dumps(seen), file=sys.stderr))
kind, target, *args = sys.argv[1:]
sys.argv = [target, *args]
if kind == "-m":
    runpy.run_module(target, run_name="__main__", alter_sys=True)
else:
    sys.path.insert(0, os.path.dirname(target))
    runpy.run_path(target, run_name="__main__")
"""

ENTRY_POINTS = {
    "train.py": ["train.py", "model.dropout=1.5", "hydra.run.dir={tmp}/run"],  # composes, tunes, fails validation
    "eval.py": ["eval.py", "--help"],
    "predict.py": ["predict.py", "--help"],
    "bench": ["-m", "alexnet.bench", "--help"],
    "prepare": ["-m", "alexnet.data.prepare", "--help"],
    "fig1": ["-m", "alexnet.experiments.fig1", "--help"],
}


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_every_entry_point_tunes_the_process_before_torch_loads(entry, tmp_path):
    args = [a.format(tmp=tmp_path) for a in ENTRY_POINTS[entry]]
    kind, target = ("-m", args[1]) if args[0] == "-m" else ("path", str(ROOT / args[0]))
    proc = python(WATCH, kind, target, *args[2 if args[0] == "-m" else 1 :])
    assert proc.returncode in (ExitCode.OK, ExitCode.CONFIG_ERROR), proc.stderr[-3000:]
    seen = json.loads(proc.stderr.rsplit("torch loaded in:", 1)[1])
    assert seen == {"omp": "PASSIVE", "kept": True}, proc.stderr[-3000:]
