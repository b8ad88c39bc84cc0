"""Data layer: IDX parsing, dataset manifests, downloads and the tutorial-style loader."""

from .dataset import PIXEL_SCALE, DataSet, Datasets, EpochSampler, read_data_sets, to_float_images
from .manifest import DATASETS, DatasetSpec, FileSpec

__all__ = ["PIXEL_SCALE", "DataSet", "Datasets", "EpochSampler", "read_data_sets",
           "to_float_images", "DATASETS", "DatasetSpec", "FileSpec"]
