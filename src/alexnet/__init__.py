"""AlexNet (Krizhevsky, Sutskever, Hinton, NIPS 2012), reproduced with Lightning and Hydra.

Importing the package, or any module of it, changes nothing about the process: no environment
variable, no malloc setting, no logging configuration. The entry points (train.py, eval.py,
predict.py, ``python -m alexnet.bench``, ``python -m alexnet.data.prepare``,
``python -m alexnet.experiments.fig1``) tune their own process first, before torch loads:
``alexnet.host.tune_process()`` (OpenMP threads sleep when idle, glibc keeps freed memory).
"""
