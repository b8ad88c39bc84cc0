"""An estimator to and from a model file (:mod:`fastsoftmax.modelfile` writes and checks the file itself).

The file keeps the SGD weights, the running average when there is one (so training can
continue exactly), ``classes_``, the step count and every saved parameter
(:data:`~fastsoftmax.model.parameters.PARAMETERS`).
"""

from __future__ import annotations

import numpy as np

from .._version import __version__
from ..errors import InputError, InputTypeError, ModelFileError
from ..modelfile import load_model, save_model
from . import parameters
from .state import FittedState, empty_history


def save(model, state: FittedState, path):
    """Write ``model`` (fitted to ``state``) to ``path``; returns the path written."""
    classes = state.classes
    if classes.dtype.kind not in "biufU" and not all(isinstance(c, (str, int, float)) for c in classes.tolist()):
        raise InputTypeError(f"classes_ of dtype {classes.dtype} cannot be saved: only numbers and strings")
    settings = parameters.saved(model.get_params())
    averages = {"W_avg": state.W_avg, "b_avg": state.b_avg} if state.average_count else None
    return save_model(path, state.W, state.b, {
        "library_version": __version__, **settings, "dtype": str(state.W.dtype), "n_features": state.W.shape[0],
        "n_classes": state.W.shape[1], "classes": classes.tolist(), "classes_dtype": classes.dtype.str,
        "steps_done": state.steps, "average_count": state.average_count,
    }, averages=averages)


def load(cls, path, backend=None):
    """An estimator of class ``cls`` read from ``path``; ``backend`` overrides the saved one."""
    W, b, meta, averages = load_model(path, averages=True)
    params = {p.name: meta[p.name] for p in parameters.PARAMETERS if p.saved and p.name in meta}
    params["dtype"] = meta["dtype"]
    if backend is not None:
        params["backend"] = backend
    model = cls(**params)
    try:
        parameters.checked(model.get_params(), resolve_backend=False)
    except (InputError, InputTypeError) as exc:
        raise ModelFileError(f"{path}: saved settings are not valid ({exc})") from exc
    classes = meta.get("classes")
    classes = np.arange(W.shape[1]) if classes is None else np.array(classes, dtype=meta["classes_dtype"])
    count = int(meta.get("average_count", 0)) if averages is not None else 0
    W_avg, b_avg = averages if averages is not None else (None, None)
    model._state = FittedState(np.ascontiguousarray(W), np.ascontiguousarray(b), W_avg, b_avg, count,
                               int(meta.get("steps_done", 0)), classes, empty_history(), None)
    return model
