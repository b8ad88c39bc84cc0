"""scikit-learn's estimator protocol, implemented without importing scikit-learn.

``get_params``/``set_params`` from the constructor's signature, a ``repr`` showing the
changed parameters, ``__sklearn_tags__`` (scikit-learn calls it, so only scikit-learn
imports scikit-learn), and the not-fitted error scikit-learn's tools recognise.
"""

from __future__ import annotations

import functools
import inspect
import sys

from ..errors import InputError, NotFittedError


class EstimatorProtocol:
    """Base class: the parameters are the constructor's keyword arguments, stored as attributes."""

    @classmethod
    def _get_param_names(cls):
        return [name for name in inspect.signature(cls.__init__).parameters if name != "self"]

    def get_params(self, deep=True):
        """The constructor's arguments, as given (``deep`` is accepted for scikit-learn)."""
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params):
        """Set constructor arguments; checked, like all settings, by the next ``fit``."""
        valid = self._get_param_names()
        for name, value in params.items():
            if name not in valid:
                raise InputError(f"Invalid parameter {name!r} for estimator {type(self).__name__}. "
                                 f"Valid parameters are: {valid!r}.")
            setattr(self, name, value)
        return self

    def __repr__(self):
        defaults = {p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()}
        changed = [f"{k}={v!r}" for k, v in self.get_params().items()
                   if not (type(v) is type(defaults[k]) and v == defaults[k])]
        return f"{type(self).__name__}({', '.join(changed)})"

    def __sklearn_tags__(self):
        """scikit-learn's tags (only scikit-learn calls this, so only it imports scikit-learn)."""
        from sklearn.utils import ClassifierTags, InputTags, Tags, TargetTags

        return Tags(estimator_type="classifier", target_tags=TargetTags(required=True),
                    classifier_tags=ClassifierTags(multi_class=True), input_tags=InputTags(two_d_array=True))


@functools.cache
def _not_fitted_class(sklearn_class):
    return type("_SklearnNotFittedError", (NotFittedError, sklearn_class), {"__module__": __name__})


def not_fitted(message) -> NotFittedError:
    """The library's :class:`NotFittedError`, also scikit-learn's when scikit-learn is loaded."""
    sklearn_exceptions = sys.modules.get("sklearn.exceptions")
    if sklearn_exceptions is None:
        return NotFittedError(message)
    cls = _not_fitted_class(sklearn_exceptions.NotFittedError)
    globals()[cls.__name__] = cls  # picklable by name
    return cls(message)


def data_conversion_warning():
    """scikit-learn's DataConversionWarning when scikit-learn is loaded (its tools expect it), else UserWarning."""
    sklearn_exceptions = sys.modules.get("sklearn.exceptions")
    return UserWarning if sklearn_exceptions is None else sklearn_exceptions.DataConversionWarning
