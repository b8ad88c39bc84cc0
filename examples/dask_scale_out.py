"""SoftmaxRegression on dask arrays: training block by block with dask-ml's Incremental,
lazy inference block by block, and the same run on a local cluster of worker processes.

The data sits on disk as a stack of .npy files, one per block of rows, as data larger
than memory would: each block is read (memory-mapped) only when a task needs it, by
whichever worker runs that task.

Run: python examples/dask_scale_out.py [--dataset fashion-mnist|mnist] [--workers 2]
Needs dask: pip install "fastsoftmax[dask]" (dask[array], distributed and dask-ml).
"""

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

try:
    import dask.array as da
    from dask_ml.wrappers import Incremental
    from distributed import Client, LocalCluster
except ModuleNotFoundError as exc:
    if (exc.name or "").split(".")[0] not in ("dask", "dask_ml", "distributed"):
        raise  # dask is there but broken: its own traceback says why
    sys.exit('this example needs dask: pip install "fastsoftmax[dask]" (dask[array], distributed and dask-ml)')

import fastsoftmax

ROWS_PER_BLOCK = 5000


def stored_as_blocks(folder, array):
    """``array`` written as one .npy file per block of rows, read back as a dask array."""
    da.to_npy_stack(folder, da.from_array(array, chunks=(ROWS_PER_BLOCK,) + array.shape[1:]))
    return da.from_npy_stack(folder, mmap_mode="r")


def train(X, y):
    """Two passes of Incremental over the blocks: each block is one ``partial_fit`` call, in an
    order shuffled by ``random_state`` (the same order on every run, with or without a cluster)."""
    model = Incremental(fastsoftmax.SoftmaxRegression(average=True), random_state=0)
    for _ in range(2):
        model.partial_fit(X, y, classes=np.arange(10))
    return model.estimator_


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--dataset", default="fashion-mnist", choices=["fashion-mnist", "mnist"])
    parser.add_argument("--workers", type=int, default=2, help="worker processes of the local cluster")
    flags = parser.parse_args()
    try:
        data = fastsoftmax.read_data_sets(flags.data_dir, dataset=flags.dataset)
    except fastsoftmax.DataNotFoundError as exc:
        sys.exit(f"{exc}\n\nthis example: give --data_dir DIR with the files, or another --dataset")

    with tempfile.TemporaryDirectory() as folder:
        X = stored_as_blocks(Path(folder) / "X", data.train.pixels)
        y = stored_as_blocks(Path(folder) / "y", data.train.class_indices)
        X_test = stored_as_blocks(Path(folder) / "X_test", data.test.pixels)
        y_test = stored_as_blocks(Path(folder) / "y_test", data.test.class_indices)
        print(f"training set: {X.numblocks[0]} blocks of up to {ROWS_PER_BLOCK} rows, {X.dtype} {X.shape}")

        # Dask's default scheduler (threads in this process).
        model = train(X, y)
        print(f"Incremental, two passes: {model.n_iter_} steps, test accuracy {model.score(X_test, y_test):.4f}")

        # predict and predict_proba on a dask array return dask arrays at once; each block goes
        # through the backend's kernels when computed, so only the blocks asked for are read.
        labels = model.predict(X_test)
        confidence = model.predict_proba(X_test).max(axis=1)
        print(f"lazy predict: {labels!r}")
        print(f"first ten labels {labels[:10].compute().tolist()}, mean top probability "
              f"{float(confidence.mean().compute()):.3f}")

        # The same on a cluster: the tasks run in worker processes, each reading its blocks
        # from the files. Training is still sequential (each partial_fit continues the last),
        # so it gives the same weights; inference and scoring spread over the workers.
        with LocalCluster(n_workers=flags.workers, threads_per_worker=1, dashboard_address=None) as cluster, \
                Client(cluster):
            on_cluster = train(X, y)
            accuracy = on_cluster.score(X_test, y_test)
            same = np.array_equal(on_cluster.coef_, model.coef_) and np.array_equal(on_cluster.intercept_,
                                                                                     model.intercept_)
            workers = f"{flags.workers} worker process{'' if flags.workers == 1 else 'es'}"
            print(f"on a LocalCluster of {workers}: test accuracy {accuracy:.4f}, "
                  f"weights {'identical to' if same else 'DIFFERENT from'} the run without it")


if __name__ == "__main__":  # worker processes import this file: only the main process runs it
    main()
