"""Registers, spills and local memory of every CUDA kernel, compiled for a GPU's architecture
without one.

Each kernel is compiled to PTX by numba-cuda (NVVM) with the launch bounds its
``cuda.jit`` declares, for every combination of dtypes the wrappers launch, and
assembled for the target by nvJitLink (``verbose``: ptxas's own report). A kernel
passes when it spills nothing, fits its launch (registers x threads per block,
times the resident blocks its launch bounds promise, within the 64K registers of
an SM) and, for the fast row kernels and the training kernels, keeps its
accumulators in registers (no stack frame).

``python -m fastsoftmax.kernels._cuda_resources`` prints the table (sm_90 unless
``--cc 10.0``); ``tests/test_cuda_resources.py`` fails on any kernel that does not
pass. Needs numba-cuda with NVVM and nvJitLink (``pip install 'fastsoftmax[cuda]'``)
and NUMBA_ENABLE_CUDASIM unset or 0; no GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
from dataclasses import asdict, dataclass

#: Registers of an SM (every architecture from sm_50 on), and the most one thread may have.
SM_REGISTERS = 65536
MAX_THREAD_REGISTERS = 255


@dataclass
class Usage:
    kernel: str
    variant: str
    threads: int            # per block, from the launch bounds
    blocks_per_sm: int      # resident blocks the launch bounds promise
    registers: int
    register_limit: int
    stack_frame: int        # bytes of local memory per thread (local arrays and spills)
    spill_stores: int
    spill_loads: int
    local_arrays_allowed: bool

    @property
    def problems(self) -> list:
        found = []
        if self.spill_stores or self.spill_loads:
            found.append(f"spills ({self.spill_stores} bytes stored, {self.spill_loads} loaded)")
        if self.registers > self.register_limit:
            found.append(f"{self.registers} registers, more than the {self.register_limit} its launch allows")
        if self.stack_frame and not self.local_arrays_allowed:
            found.append(f"{self.stack_frame} bytes of stack frame: its accumulators left the registers")
        return found


def register_limit(threads, blocks_per_sm=1):
    """Most registers a thread may use for ``blocks_per_sm`` blocks of ``threads`` to be resident."""
    per_thread = SM_REGISTERS // (threads * blocks_per_sm)
    return min(MAX_THREAD_REGISTERS, per_thread - per_thread % 8)  # allocated in units of 8 a thread


@contextlib.contextmanager
def _architecture(cc):
    """Compiling a call to a device function asks the current device for its architecture;
    answer for ``cc`` so that no GPU (or driver) is needed."""
    import numba.cuda.dispatcher as dispatcher

    class _Device:
        compute_capability = cc

    saved = dispatcher.get_current_device
    dispatcher.get_current_device = _Device
    try:
        yield
    finally:
        dispatcher.get_current_device = saved


def _signatures(quick=False):
    """(name, variant, dispatcher, argument types, local arrays allowed) for every kernel launched.

    ``quick`` keeps the variants that bound the others from above: 16 classes (the
    most the fast kernels take; registers grow with them), rows read as uint64 and
    as complex pairs (the most pixels a word), and uint8 rows for the rest.
    """
    from numba import types as T

    from . import _cuda_kernels as k
    from . import _cuda_training as t

    i64, f64 = T.Array(T.int64, 1, "C"), T.Array(T.float64, 1, "C")
    for ft in (T.float32, T.float64):
        dtype = str(ft)
        M, v, M3 = (T.Array(ft, n, "C") for n in (2, 1, 3))
        # fast row kernels: C = 16 bounds their registers from above; C = 10 is MNIST. Rows are
        # read as words (see packing): 784 uint8 pixels as uint64, 28 as uint32, odd widths one by one
        pair = T.complex64 if ft == T.float32 else T.complex128
        for C in ((16,) if quick else (10, 16)):
            for xt, pack in ((T.uint64, 8), (T.uint32, 4), (T.uint8, 1), (pair, 2), (ft, 1)):
                if quick and xt in (T.uint32, T.uint8, ft) or C == 10 and xt in (T.uint32, T.uint8):
                    continue
                for staged in sorted({ft == T.float32, False}):
                    kernels = k.row_kernels(C, dtype, str(xt), pack, staged)
                    X = T.Array(xt, 2, "C")
                    variant = f"C={C} W {dtype} X {xt}{' staged W' if staged else ''}"
                    for name, kernel, args in zip(
                            ("fast forward", "fast predict", "fast loss", "fast grad"), kernels,
                            ((X, ft, v, v, M, i64), (X, ft, v, v, i64, i64), (X, ft, v, v, i64, f64, i64),
                             (X, ft, v, v, i64, ft, M, f64, i64))):
                        yield name, variant, kernel, args, False
        for xt in ((T.uint8,) if quick else (T.uint8, ft)):
            X = T.Array(xt, 2, "C")
            variant = f"W {dtype} X {xt}"
            yield "generic forward", variant, k._generic_forward_kernel, (X, ft, M, v, M, i64), True
            yield "generic predict", variant, k._generic_predict_kernel, (X, ft, M, v, i64, i64), True
            yield "generic loss", variant, k._generic_loss_kernel, (X, ft, M, v, i64, f64, i64), True
            yield "generic grad", variant, k._generic_grad_kernel, (X, ft, M, v, i64, ft, M, f64, i64), True
            yield "partial grad", variant, k._partial_grad_kernel, (X, ft, M, M3, M), True
            # training: the signature the wrappers launch with; its 4 x 4 blocks stay in registers
            xdtype = str(xt)
            yield "train cooperative", variant, t._train_cooperative_kernel, t.train_signature(xdtype, dtype), False
            steps = t.train_signature(xdtype, dtype, per_step=True)
            yield "train slices", variant, t._train_slices_kernel, steps, False
            yield "train rows", variant, t._train_rows_kernel, steps, False
        yield "sum chunks", dtype, k._sum_chunks_kernel, (M, v), True
        yield "axpy", dtype, k._axpy_kernel, (v, v, ft), True
    yield "block sums", "float64", k._block_sums_kernel, (f64, f64), True


_ENTRY = re.compile(r"Compiling entry function '([^']+)'")
_FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_USED = re.compile(r"Used (\d+) registers")


def _assemble(ptx: str, cc):
    """ptxas's report of the PTX's entry function: (registers, stack frame, spill stores, spill loads)."""
    from cuda.core import Linker, LinkerOptions, ObjectCode

    objects = [ObjectCode.from_ptx(ptx.encode())]
    if "cudaCGSynchronize" in ptx:  # a grid-wide barrier: cooperative groups live in cudadevrt
        from numba.cuda.cudadrv.libs import get_cudalib

        objects.append(ObjectCode.from_library(get_cudalib("cudadevrt", static=True)))
    linker = Linker(*objects, options=LinkerOptions(arch=f"sm_{cc[0]}{cc[1]}", verbose=True))
    linker.link("cubin")
    log = linker.get_info_log()
    entry = _ENTRY.search(log)
    if entry is None:
        raise RuntimeError(f"no entry function in the assembler's report:\n{log}")
    tail = log[entry.end():]
    frame, used = _FRAME.search(tail), _USED.search(tail)
    if frame is None or used is None:
        raise RuntimeError(f"unexpected assembler report:\n{log}")
    return int(used.group(1)), int(frame.group(1)), int(frame.group(2)), int(frame.group(3))


def _bounds(kernel):
    bounds = kernel.targetoptions.get("launch_bounds")
    if bounds is None:
        raise RuntimeError(f"{kernel.py_func.__name__} declares no launch bounds")
    bounds = (bounds,) if isinstance(bounds, int) else tuple(bounds)
    return bounds[0], (bounds[1] if len(bounds) > 1 else 1)


def usage(cc=(9, 0), quick=False) -> list:
    """:class:`Usage` of every kernel and dtype variant, compiled for compute capability ``cc``."""
    from numba import cuda

    rows = []
    with _architecture(cc):
        for name, variant, kernel, args, local_ok in _signatures(quick):
            threads, blocks = _bounds(kernel)
            ptx, _ = cuda.compile_ptx(kernel.py_func, args, cc=cc, launch_bounds=(threads, blocks))
            registers, frame, stores, loads = _assemble(ptx, cc)
            rows.append(Usage(name, variant, threads, blocks, registers, register_limit(threads, blocks),
                              frame, stores, loads, local_ok))
    return rows


def table(rows) -> str:
    head = f"{'kernel':18} {'variant':34} {'threads':>7} {'blk/SM':>6} {'regs':>4} {'limit':>5} " \
           f"{'stack B':>7} {'spill B':>7}  status"
    lines = [head, "-" * len(head)]
    for r in rows:
        status = "; ".join(r.problems) or "ok"
        lines.append(f"{r.kernel:18} {r.variant:34} {r.threads:7d} {r.blocks_per_sm:6d} {r.registers:4d} "
                     f"{r.register_limit:5d} {r.stack_frame:7d} {r.spill_stores + r.spill_loads:7d}  {status}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cc", default="9.0", help="compute capability to compile for (default 9.0, H100/H200)")
    parser.add_argument("--json", help="also write the table as JSON to this file")
    parser.add_argument("--quick", action="store_true", help="only the variants that bound the others")
    args = parser.parse_args(argv)
    cc = tuple(int(p) for p in args.cc.split("."))
    rows = usage(cc, args.quick)
    print(f"CUDA kernels compiled for sm_{cc[0]}{cc[1]} (registers and local memory per thread)")
    print(table(rows))
    if args.json:
        import json

        with open(args.json, "w") as fh:
            json.dump({"cc": list(cc), "kernels": [dict(asdict(r), problems=r.problems) for r in rows]}, fh, indent=1)
    bad = [r for r in rows if r.problems]
    if bad:
        print(f"{len(bad)} kernel variant(s) exceed their resources", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
