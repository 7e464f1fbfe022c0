from alexnet.data.datamodule import ImageFolderDataModule, SyntheticDataModule

__all__ = ["ImageFolderDataModule", "SyntheticDataModule"]
