"""Benchmarks: ``python -m alexnet.bench.data`` (the loader, images/s per CPU core)."""
