"""How a run is launched: unique run folders, Hydra callbacks for sweeps, SLURM, the console.

Kept free of Lightning and torch imports: train.py and Hydra import it before any work starts.
"""
