"""The library's own exception types.

Each one also subclasses the builtin that a caller would naturally catch
(``ValueError``, ``TypeError``, ``OSError``), so ``except ValueError`` keeps
working for code that does not know about fastsoftmax.
"""

from __future__ import annotations


class FastSoftmaxError(Exception):
    """Base class of every error raised on purpose by fastsoftmax."""


class InputError(FastSoftmaxError, ValueError):
    """An argument has the wrong shape, size, range or value."""


class InputTypeError(FastSoftmaxError, TypeError):
    """An argument has the wrong type or dtype."""


class DataFileError(FastSoftmaxError, ValueError):
    """A data file is truncated, corrupt or not in the expected IDX format.

    Attributes
    ----------
    path : str
        The file that was being read.
    """

    def __init__(self, path, message):
        self.path = str(path)
        super().__init__(f"{self.path}: {message}")


class DataNotFoundError(FastSoftmaxError, OSError):
    """Dataset files are missing and could not be downloaded."""


class DownloadError(FastSoftmaxError, OSError):
    """Every mirror failed for a file (HTTP error, timeout or checksum mismatch)."""


class ModelFileError(FastSoftmaxError, ValueError):
    """A file is not a valid fastsoftmax model."""


class ModelNotFoundError(FastSoftmaxError, FileNotFoundError):
    """No model file at the given path."""


class DivergenceError(FastSoftmaxError, FloatingPointError):
    """Training produced a non-finite loss; the weights were rolled back."""


class BackendUnavailableError(FastSoftmaxError, ImportError):
    """The requested compute backend cannot run here."""


class ConvergenceWarning(UserWarning):
    """Training finished, but its loss ended far above where it started: the run did not learn."""
