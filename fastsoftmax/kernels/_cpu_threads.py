"""The CPU backend's threads: one process-wide pool that runs ``nogil`` kernels beside the caller.

Why not Numba's ``prange``: a parallel kernel costs Numba about two seconds more
to compile than the same loop compiled serially (the parfor passes and a gufunc
wrapper), every first run in a fresh environment pays it, and the serial kernel
shares its compiled pieces with the training loop. The work is split the same
way ``prange`` would: fixed items (chunks of rows, panels of features), each
writing its own output, so the results do not depend on the thread count or on
which thread did which item.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

_pool = None


def thread_count(most: int) -> int:
    """Threads a call uses: Numba's thread count (``NUMBA_NUM_THREADS``, ``numba.set_num_threads``), at most
    ``most``."""
    return max(1, min(numba.get_num_threads(), most))


def pool() -> ThreadPoolExecutor:
    """The helper threads (Numba's configured thread count less the caller's own)."""
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=max(1, numba.config.NUMBA_NUM_THREADS - 1),
                                   thread_name_prefix="fastsoftmax")
    return _pool


def split(kernel, n_items: int, make_buffers, *args) -> None:
    """Run ``kernel(*args, buffers, work, n_items)`` on the threads, which claim items ``[0, n_items)``.

    The kernel takes items one at a time from the shared counter ``work[0]``, so a
    thread that starts late takes fewer. Each thread gets scratch of its own from
    ``make_buffers()``. The calling thread compiles the kernel before any helper
    starts (so a compile error is raised here, once).
    """
    threads = thread_count(n_items)
    buffers = [make_buffers() for _ in range(threads)]
    work = np.zeros(8, np.int64)  # the counter, alone on its cache line
    if threads == 1:
        kernel(*args, buffers[0], work, n_items)
        return
    kernel(*args, buffers[0], np.zeros(8, np.int64), 0)  # compile (or load) here; no items, no work
    helpers = [pool().submit(kernel, *args, buffers[t], work, n_items) for t in range(1, threads)]
    try:
        kernel(*args, buffers[0], work, n_items)
    finally:
        for helper in helpers:
            helper.result()
