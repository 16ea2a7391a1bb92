"""fgbg readers: open a dataset from its manifest and read samples back for training."""

from .dataset import Dataset, DatasetError, open_dataset

__all__ = ["Dataset", "DatasetError", "open_dataset"]
