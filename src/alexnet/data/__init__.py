"""The data pipeline. The two DataModules are loaded when first asked for (PEP 562): they import
torch, and ``python -m alexnet.data.prepare`` imports this package before it can tune the
process (alexnet.host), which must happen before torch loads."""

__all__ = ["ImageFolderDataModule", "SyntheticDataModule"]


def __getattr__(name: str):
    if name in __all__:
        from alexnet.data import datamodule

        return getattr(datamodule, name)
    raise AttributeError(f"module 'alexnet.data' has no attribute {name!r}")
