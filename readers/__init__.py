"""fgbg readers: open a dataset from its manifest and read samples back for training."""

from .dataset import Dataset, open_dataset
from .errors import DatasetError, MetadataError, ShardReadError

__all__ = ["Dataset", "DatasetError", "MetadataError", "ShardReadError", "open_dataset"]
