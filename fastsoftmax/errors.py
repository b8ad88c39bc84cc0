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


class NotFittedError(InputError, AttributeError):
    """The model has no weights yet: like scikit-learn's ``NotFittedError``, a ``ValueError``
    and an ``AttributeError``, so ``hasattr(model, "coef_")`` is False before ``fit``.

    When scikit-learn is loaded, what ``SoftmaxRegression`` raises is also an instance
    of scikit-learn's ``NotFittedError``, so its tools recognise it without fastsoftmax
    importing scikit-learn.
    """


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


class DataReadError(DataFileError, OSError):
    """A data file exists but cannot be read (permissions, I/O error); also an ``OSError``."""


class DataNotFoundError(FastSoftmaxError, OSError):
    """Dataset files are missing and could not be downloaded.

    The message says, in the Python API's terms, what is missing, where it was
    looked for, what was tried and how to provide the files. The attributes hold
    the same facts, so that a caller such as the command line can word its own.

    Attributes
    ----------
    dataset : str or None
        The dataset's name.
    missing : tuple of str
        Names of the files not found (as published, ``.gz``).
    searched : tuple of str
        The directories looked in, in order.
    attempts : tuple of (str, str)
        ``(url, reason)`` for each download tried, all failed; empty when none was.
    download_off : str or None
        Why nothing was downloaded (``"download=False"``, ``"FASTSOFTMAX_OFFLINE=1"``,
        ``"the dataset lists no mirrors"``), or None when downloads were tried.
    available : dict
        Other datasets whose files (those that were asked for) are all on this
        machine: name -> the directory holding them.
    data_dir : str or None
        The ``data_dir`` given, when it is itself the problem (it does not exist, or
        is not a directory); None otherwise.
    """

    def __init__(self, message, *, dataset=None, missing=(), searched=(), attempts=(), download_off=None,
                 available=None, data_dir=None):
        super().__init__(message)
        self.dataset = dataset
        self.missing = tuple(missing)
        self.searched = tuple(str(d) for d in searched)
        self.attempts = tuple(attempts)
        self.download_off = download_off
        self.available = dict(available or {})
        self.data_dir = None if data_dir is None else str(data_dir)


class DownloadError(FastSoftmaxError, OSError):
    """Every mirror failed for a file (HTTP error, timeout or checksum mismatch).

    Attributes
    ----------
    file : str or None
        The name of the file that could not be downloaded.
    attempts : tuple of (str, str)
        ``(url, reason)`` for each mirror, in the order they were tried.
    """

    def __init__(self, message, *, file=None, attempts=()):
        super().__init__(message)
        self.file = file
        self.attempts = tuple(attempts)


class ModelFileError(FastSoftmaxError, ValueError):
    """A file is not a valid fastsoftmax model."""


class ModelNotFoundError(FastSoftmaxError, FileNotFoundError):
    """No model file at the given path."""


class FileWriteError(FastSoftmaxError, OSError):
    """Writing a file failed (missing directory, no permission, disk full, ...).

    The message names the file that was to be written, never a temporary name.
    The previous file at that path, if any, is left as it was. Instances raised
    by fastsoftmax also subclass the builtin the cause would have raised
    (``FileNotFoundError``, ``PermissionError``, ``IsADirectoryError``, ...),
    so ``except FileNotFoundError`` keeps working.

    Attributes
    ----------
    filename : str
        The target path.
    errno : int or None
        The cause's error number (``errno.EFBIG``, ``errno.ENOSPC``, ...).
    """

    def __init__(self, path, message, errno=None):
        super().__init__(errno, message)
        self.filename = str(path)

    def __str__(self):
        return self.strerror

    @classmethod
    def from_os_error(cls, path, exc: OSError, doing="write"):
        """The library's error for ``exc``, raised while writing ``path``."""
        reason = exc.strerror or str(exc) or type(exc).__name__
        return write_error_type(exc)(path, f"cannot {doing} {path}: {reason}", exc.errno)


class PathIsDirectoryError(FileWriteError, IsADirectoryError, InputError):
    """A path that names a directory was given where a file is to be written."""


class WriteDirectoryNotFoundError(FileWriteError, FileNotFoundError):
    """The directory a file was to be written into does not exist."""


class WritePermissionError(FileWriteError, PermissionError):
    """The file, or its directory, may not be written."""


class WriteNotADirectoryError(FileWriteError, NotADirectoryError):
    """A component of the path to be written is a file, not a directory."""


_WRITE_ERROR_TYPES = {IsADirectoryError: PathIsDirectoryError, FileNotFoundError: WriteDirectoryNotFoundError,
                      PermissionError: WritePermissionError, NotADirectoryError: WriteNotADirectoryError}


def write_error_type(exc: OSError) -> type:
    """The :class:`FileWriteError` subclass for ``exc``: also its builtin type where that is specific."""
    return _WRITE_ERROR_TYPES.get(type(exc), FileWriteError)


class ChecksumWarning(UserWarning):
    """A local dataset file's content is not the one the dataset's manifest records."""


class DivergenceError(FastSoftmaxError, FloatingPointError):
    """Training produced a non-finite loss; the weights were rolled back."""


class BackendUnavailableError(FastSoftmaxError, ImportError):
    """The requested compute backend cannot run here."""


class CacheWarning(UserWarning):
    """Compiled kernels cannot be kept on disk here: they are compiled again in every process."""


class ConvergenceWarning(UserWarning):
    """Training finished, but its loss ended far above where it started: the run did not learn."""
