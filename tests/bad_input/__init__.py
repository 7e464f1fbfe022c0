"""Bad input and faults, grouped by what goes wrong: each ends in one clear line naming the key,
folder or checkpoint, never a traceback, and loses no data or progress."""
