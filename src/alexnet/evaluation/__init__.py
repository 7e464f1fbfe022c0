"""After training: eval.py's ensembles and ten-crop evaluation, and the paper's tables (python -m alexnet.evaluation.tables)."""
