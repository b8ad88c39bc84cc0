"""Data layer: IDX parsing, dataset manifests, downloads, batch orders and the tutorial-style loader."""

from ..kernels.pixels import PIXEL_SCALE
from .batches import BatchOrder
from .dataset import DataSet, Datasets, read_data_sets, read_test_set, to_float_images
from .manifest import DATASETS, DatasetSpec, FileSpec

__all__ = ["PIXEL_SCALE", "BatchOrder", "DataSet", "Datasets", "read_data_sets", "read_test_set", "to_float_images",
           "DATASETS", "DatasetSpec", "FileSpec"]
