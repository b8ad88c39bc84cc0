"""``fit_many``: a list of estimators trained together, in one compiled pass per batch size."""

from __future__ import annotations

from . import training


def fit_many(models, X, y, *, steps=None, epochs=None, shuffle=True, validation_data=None, classes=None):
    """Fit every :class:`~fastsoftmax.SoftmaxRegression` of ``models`` on ``(X, y)``, in one compiled pass.

    Each model ends with exactly the state its own ``model.fit(X, y, ...)`` with the same
    arguments gives it, bit for bit (weights, running average, step count, batch order and
    history): a single ``fit`` is the one-model case of the same run. Models may differ in
    ``learning_rate``, ``lr_decay``, ``weight_decay``, ``average``, ``seed``, ``steps``,
    ``epochs``, ``warm_start`` and ``batch_size``:

    * models with the same seed, fitted from scratch, share one batch order, and the
      kernels read each batch's rows once for all of them;
    * on the CPU backend the models are spread over every thread Numba's thread count
      allows (``NUMBA_NUM_THREADS``); on the CUDA backend over the GPU's blocks;
    * each batch size is a pass of its own over the same X (no copy of X is made);
    * models on another backend or dtype than the first model's are refused before any
      work: fit them in a call of their own.

    Parameters
    ----------
    models : list of SoftmaxRegression
        Distinct objects (the same object twice is refused; ``sklearn.base.clone`` makes copies).
    X, y, steps, epochs, shuffle, validation_data, classes
        As :meth:`SoftmaxRegression.fit`; shared by every model.

    Returns
    -------
    list
        ``models``, fitted in place.

    Raises
    ------
    InputError, InputTypeError
        A model, setting or argument is wrong (checked for every model before any work).
    DivergenceError
        A model's training diverged.

    On any error every model keeps the fitted state it had before the call. An interrupt
    (Ctrl-C) keeps the compiled calls completed so far, as ``fit`` does.
    """
    return training.fit(models, X, y, steps=steps, epochs=epochs, shuffle=shuffle,
                        validation_data=validation_data, classes=classes)
