"""Workloads for the benchmarks: real Fashion-MNIST, batches drawn as next_batch draws them."""

import numpy as np
import pytest

from tests.conftest import FASHION_DIR, _require

import fastsoftmax as fs


@pytest.fixture(scope="session")
def fashion():
    _require(FASHION_DIR, ("train-images-idx3-ubyte.gz",), "apt-get install dataset-fashion-mnist")
    data = fs.read_data_sets(dataset="fashion-mnist", seed=0, download=False)
    train = data.train
    return {
        "pixels": np.ascontiguousarray(train.pixels),
        "images": train.images,
        "labels": train.class_indices,
        "order_w1": train.batch_order(100, 1000),
        "order_w2": fs.read_data_sets(dataset="fashion-mnist", seed=0, download=False).train.batch_order(100, 5500),
        "test_pixels": np.ascontiguousarray(data.test.pixels),
        "test_images": data.test.images,
    }
