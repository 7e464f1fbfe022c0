"""Benchmarks: ``python -m alexnet.bench`` (the whole table), ``alexnet.bench.model`` (the model
step, and ``--profile`` per layer), ``alexnet.bench.data`` (the loader, images/s per CPU core)."""
