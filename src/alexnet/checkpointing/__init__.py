"""Checkpoints and exact resume: io (atomic writes, reading), resolve (which checkpoint a run
starts from), checks (before resuming, before writing), callbacks (last.ckpt after every epoch,
the random streams and the pending lr step in it, the classes it was trained on).

Imports only alexnet.paths, alexnet.errors and alexnet.lightning_private: callbacks/ and training/
call into it, never the other way."""
