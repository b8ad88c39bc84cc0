"""Workloads for the benchmarks: real Fashion-MNIST, batches drawn as next_batch draws them."""

import pytest

import fastsoftmax as fs
from fastsoftmax.benchmark.workloads import Data
from tests.realdata import FASHION_DIR, require


@pytest.fixture(scope="session")
def data():
    """The registry's workload data (fastsoftmax.benchmark.workloads.Data) from Fashion-MNIST."""
    require(FASHION_DIR, ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                           "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
             "apt-get install dataset-fashion-mnist")
    return Data(fs.read_data_sets(dataset="fashion-mnist", seed=0, download=False))
