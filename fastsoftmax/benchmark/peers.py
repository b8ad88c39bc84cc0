"""What a user would write instead of fastsoftmax: the yardsticks its speed is measured against.

Each preparer takes the workload's data (float32 images in [0, 1], the same
rows and the same batch order as every other variant) and returns the call to
time, with anything that must stay outside the timing (JAX's compilation,
copies into the library's arrays) already done. Training calls return the
final ``W`` as a NumPy array, so ``tests/test_benchmark.py`` can check that
each peer computes what the reference computes.

- ``numpy-loop``: the tight NumPy loop a NumPy user writes. It is the baseline
  of every speed ratio. The reference backend (``numpy-f32``) computes the same
  thing behind argument checks and a general batch sampler, so it is a little
  slower.
- ``jax``: the whole run as one ``lax.scan`` under ``jax.jit``, the fastest
  form JAX offers; ``block_until_ready`` waits for the result.
- ``torch``: eager PyTorch on the CPU, one step per loop iteration with the
  gradient written out by hand (in place, no autograd: autograd's graph costs
  more than the step's arithmetic at this size), as many threads as Numba uses.

JAX and PyTorch are optional: :func:`problem` says when one is not installed.
"""

from __future__ import annotations

import importlib.util

import numpy as np

LIBRARIES = {"numpy-loop": "numpy", "jax": "jax", "torch": "torch", "sklearn-grid": "sklearn"}
#: The package to install for a library, where its name differs.
_PIP_NAMES = {"sklearn": "scikit-learn"}


def problem(implementation: str):
    """Why the peer ``implementation`` cannot run here (a message), or None when it can."""
    module = LIBRARIES[implementation]
    if importlib.util.find_spec(module) is None:
        return (f"{module} is not installed (pip install {_PIP_NAMES.get(module, module)}); its variants are "
                f"skipped")
    return None


def _zeros(F, C):
    return np.zeros((F, C), np.float32), np.zeros(C, np.float32)


# ----------------------------------------------------------------------------- NumPy


def numpy_train(X, y, order, batch_size, learning_rate, n_classes):
    """The tight NumPy loop: float32 throughout, one step per iteration."""
    steps = order.reshape(-1, batch_size)
    F, C, B, lr = X.shape[1], n_classes, batch_size, learning_rate

    def run():
        W, b = _zeros(F, C)
        for s in range(len(steps)):
            i = steps[s]
            xb = X[i]
            z = xb @ W + b
            z -= z.max(1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(1, keepdims=True)
            p[np.arange(B), y[i]] -= 1
            p /= B
            W -= lr * (xb.T @ p)
            b -= lr * p.sum(0)
        return W
    return run


def numpy_predict(X, W, b):
    return lambda: np.argmax(X @ W + b, axis=1)


def numpy_forward(X, W, b):
    def run():
        z = X @ W + b
        z -= z.max(1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(1, keepdims=True)
        return p
    return run


def numpy_grad(X, y, W, b):
    """Mean cross-entropy (log-sum-exp of the logits) and its gradient."""
    rows = np.arange(len(X))

    def run():
        z = X @ W + b
        z -= z.max(1, keepdims=True)
        p = np.exp(z)
        total = p.sum(1, keepdims=True)
        loss = float(np.mean(np.log(total[:, 0]) - z[rows, y]))
        p /= total
        p[rows, y] -= 1
        p /= len(X)
        return loss, X.T @ p, p.sum(0)
    return run


def numpy_sgd(W, b, dW, db, learning_rate):
    def run():
        W[...] -= learning_rate * dW
        b[...] -= learning_rate * db
    return run


# ----------------------------------------------------------------------------- JAX


def jax_train(X, y, order, batch_size, learning_rate, n_classes):
    """The whole run as one ``lax.scan`` over the steps, compiled once by ``jax.jit``."""
    import jax
    import jax.numpy as jnp

    F, C, B, lr = X.shape[1], n_classes, batch_size, learning_rate
    Xd, yd = jax.device_put(X), jax.device_put(y.astype(np.int32))
    steps = jax.device_put(order.reshape(-1, B).astype(np.int32))

    @jax.jit
    def train(X, y, steps):
        def step(params, i):
            W, b = params
            xb = X[i]
            p = jax.nn.softmax(xb @ W + b, axis=1)
            p = p.at[jnp.arange(B), y[i]].add(-1.0) / B
            return (W - lr * (xb.T @ p), b - lr * p.sum(0)), None
        params, _ = jax.lax.scan(step, (jnp.zeros((F, C), jnp.float32), jnp.zeros(C, jnp.float32)), steps)
        return params[0]

    def run():
        return np.asarray(train(Xd, yd, steps).block_until_ready())
    run()  # compiles, outside the timing
    return run


def jax_predict(X, W, b):
    import jax
    import jax.numpy as jnp

    predict = jax.jit(lambda X, W, b: jnp.argmax(X @ W + b, axis=1))
    Xd, Wd, bd = (jax.device_put(a) for a in (X, W, b))

    def run():
        return predict(Xd, Wd, bd).block_until_ready()
    run()
    return run


# ----------------------------------------------------------------------------- PyTorch


def _torch():
    import numba
    import torch

    # The same number of threads as the compiled kernels get.
    torch.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    return torch


def torch_train(X, y, order, batch_size, learning_rate, n_classes):
    """One step per iteration on the CPU, in place, with the gradient written out."""
    torch = _torch()
    F, C, B, lr = X.shape[1], n_classes, batch_size, learning_rate
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y.astype(np.int64))
    steps = torch.from_numpy(order.reshape(-1, B).astype(np.int64))
    rows = torch.arange(B)

    def run():
        W, b = torch.zeros(F, C), torch.zeros(C)
        with torch.inference_mode():
            for i in steps:
                xb = Xt.index_select(0, i)
                p = torch.softmax(torch.addmm(b, xb, W), dim=1)
                p[rows, yt[i]] -= 1
                p /= B
                W.addmm_(xb.T, p, alpha=-lr)
                b.sub_(p.sum(0), alpha=lr)
        return W.numpy()
    run()
    return run


def torch_predict(X, W, b):
    torch = _torch()
    Xt, Wt, bt = (torch.from_numpy(a) for a in (X, W, b))

    def run():
        with torch.inference_mode():
            return torch.argmax(torch.addmm(bt, Xt, Wt), dim=1)
    run()
    return run


TRAIN = {"numpy-loop": numpy_train, "jax": jax_train, "torch": torch_train}
PREDICT = {"numpy-loop": numpy_predict, "jax": jax_predict, "torch": torch_predict}
