"""How long a first call waits for the CPU kernels: cold (nothing cached) and warm (cached on disk).

Each entry runs in fresh Python processes with a Numba cache directory of its
own (``NUMBA_CACHE_DIR``, which takes precedence over the package's and the
user's cache): the first process finds it empty and compiles, the second loads
what the first saved. Each process times its first call and then a second one
(the call itself, without compilation), and counts the Numba cache's hits and
misses over every compiled function of ``fastsoftmax.kernels``, so a warm run
that compiled after all shows up. One entry per process and cache keeps the
entries independent: each says what that call alone costs a new user.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

#: Entry -> the call timed. "train" is what ``fastsoftmax train`` compiles before it trains:
#: a one-step fit and a prediction through the public API, on uint8 pixels.
ENTRIES = {
    "train": "SoftmaxRegression().fit(X8, y, steps=1).predict(X8)",
    "train_steps-u8": "cpu.train_steps(X8, y, *zeros(), order, 100, 0.5)",
    "train_steps-f32": "cpu.train_steps(Xf, y, *zeros(), order, 100, 0.5)",
    "predict-u8": "cpu.predict(X8, *zeros())",
    "forward-u8": "cpu.forward(X8, *zeros())",
    "xent_loss-u8": "cpu.xent_loss(X8, y, *zeros())",
}

_SCRIPT = """
import json, sys, time
import numpy as np
from numba.core.dispatcher import Dispatcher
from fastsoftmax import SoftmaxRegression
from fastsoftmax.kernels import get_backend

cpu = get_backend("cpu")
rng = np.random.default_rng(0)
X8 = rng.integers(0, 256, (300, 784), dtype=np.uint8)
Xf = X8.astype(np.float32) / np.float32(255)
y = np.arange(300) % 10
order = rng.permutation(300)
zeros = lambda: (np.zeros((784, 10), np.float32), np.zeros(10, np.float32))
call = lambda: {call}
start = time.perf_counter()
call()
first = time.perf_counter() - start
start = time.perf_counter()
call()
second = time.perf_counter() - start
hits = misses = 0
for name, module in list(sys.modules.items()):
    if name.startswith("fastsoftmax.kernels"):
        for fn in vars(module).values():
            if isinstance(fn, Dispatcher):
                hits += sum(fn.stats.cache_hits.values())
                misses += sum(fn.stats.cache_misses.values())
print(json.dumps({{"first_call_s": first, "call_s": second, "hits": hits, "misses": misses}}))
"""


def _first_call(call: str, cache_dir: Path) -> dict:
    import fastsoftmax

    env = {k: v for k, v in os.environ.items() if k != "FASTSOFTMAX_NO_CACHE"}
    env["NUMBA_CACHE_DIR"] = str(cache_dir)
    # The fastsoftmax this process runs, whether installed or a checkout.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(fastsoftmax.__file__).parent.parent),
                                                      env.get("PYTHONPATH")]))
    result = subprocess.run([sys.executable, "-c", _SCRIPT.format(call=call)], env=env, cwd=cache_dir.parent,
                            check=False, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"compile-time probe {call!r} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure(entries=None) -> dict:
    """Seconds to the end of each entry's first call, cold and warm.

    Returns ``{entry: {"cold_s", "warm_s", "call_s", "cold_misses", "warm_hits", "warm_misses"}}``:
    the first call with an empty cache and with a filled one, a later call in the
    warm process (the work itself), and the cache's counts.
    """
    out = {}
    for name in entries or ENTRIES:
        with tempfile.TemporaryDirectory(prefix="fastsoftmax-compile-") as tmp:
            cache = Path(tmp) / "numba-cache"
            cache.mkdir()
            cold = _first_call(ENTRIES[name], cache)
            warm = _first_call(ENTRIES[name], cache)
        out[name] = {"cold_s": round(cold["first_call_s"], 3), "warm_s": round(warm["first_call_s"], 3),
                     "call_s": round(warm["call_s"], 4), "cold_misses": cold["misses"],
                     "warm_hits": warm["hits"], "warm_misses": warm["misses"]}
    return out
