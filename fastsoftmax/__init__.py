"""fastsoftmax: softmax regression on MNIST-format data, with Numba CPU and CUDA kernels.

Importing this package needs neither a GPU nor the CUDA packages.
"""

from ._version import __version__
from .data import read_data_sets, read_test_set
from .errors import (
    BackendUnavailableError,
    CacheWarning,
    ChecksumWarning,
    ConvergenceWarning,
    DataFileError,
    DataNotFoundError,
    DataReadError,
    DivergenceError,
    DownloadError,
    FastSoftmaxError,
    FileWriteError,
    InputError,
    InputTypeError,
    ModelFileError,
    ModelNotFoundError,
    NotFittedError,
    PathIsDirectoryError,
)
from .model import SoftmaxRegression, fit_many

__all__ = ["__version__", "read_data_sets", "read_test_set", "SoftmaxRegression", "fit_many", "FastSoftmaxError",
           "InputError", "InputTypeError", "DataFileError", "DataReadError", "DataNotFoundError", "DownloadError",
           "ModelFileError", "ModelNotFoundError", "DivergenceError", "NotFittedError", "BackendUnavailableError",
           "FileWriteError", "PathIsDirectoryError", "ConvergenceWarning", "ChecksumWarning", "CacheWarning"]
