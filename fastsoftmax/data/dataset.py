"""``read_data_sets``: the replacement for TensorFlow's removed ``input_data.read_data_sets``."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from .. import validation
from ..errors import DataFileError, InputError, InputTypeError
from ..kernels.pixels import to_float
from .batches import BatchOrder
from .cache import check_against_manifest, load_idx_hashed
from .fetch import cache_root, locate
from .manifest import DATASETS, PARTS, DatasetSpec

log = logging.getLogger(__name__)

class DataSet:
    """One split (train, validation or test) of an MNIST-format dataset.

    Attributes
    ----------
    pixels : numpy.ndarray
        uint8 ``[N, 784]``, the raw pixels, a view of the parsed file (no copy).
    images : numpy.ndarray
        float32 ``[N, 784]`` in [0, 1], computed on first access.
    labels : numpy.ndarray
        int64 class indices ``[N]``, or float32 one-hot ``[N, num_classes]``.
    class_indices : numpy.ndarray
        int64 ``[N]`` whatever ``one_hot`` is.
    num_examples : int
    epochs_completed : int
    """

    def __init__(self, pixels, class_indices, *, num_classes=10, one_hot=False, seed=None):
        if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8 or pixels.ndim < 1:
            raise InputTypeError(f"pixels must be a uint8 array [N, ...], got {validation.describe(pixels)}")
        if not isinstance(class_indices, np.ndarray) or class_indices.dtype.kind not in "iu" \
                or class_indices.ndim != 1:
            raise InputTypeError(f"class_indices must be a 1-D integer array, got "
                                 f"{validation.describe(class_indices)}")
        num_classes = validation.count(num_classes, "num_classes", minimum=0)
        validation.flag(one_hot, "one_hot")
        if not isinstance(seed, np.random.SeedSequence):
            validation.seed(seed)
        if num_classes < 1 or (class_indices.size and (class_indices.min() < 0
                                                        or class_indices.max() >= num_classes)):
            raise InputError(f"class_indices must lie in [0, num_classes) with num_classes >= 1, "
                             f"got num_classes {num_classes}")
        if pixels.shape[0] != class_indices.shape[0]:
            raise InputError(f"pixels has {pixels.shape[0]} rows but labels has {class_indices.shape[0]}")
        self.pixels = pixels.reshape(pixels.shape[0], int(np.prod(pixels.shape[1:])))
        self.class_indices = class_indices.astype(np.int64)
        self.num_classes = num_classes
        self.one_hot = one_hot
        self._images = None
        self._batches = BatchOrder(self.num_examples, np.random.default_rng(seed))

    @property
    def num_examples(self) -> int:
        return self.pixels.shape[0]

    @property
    def epochs_completed(self) -> int:
        return self._batches.epochs_completed

    @property
    def images(self) -> np.ndarray:
        if self._images is None:
            self._images = to_float_images(self.pixels)
        return self._images

    @property
    def labels(self) -> np.ndarray:
        return self._format_labels(self.class_indices)

    def _format_labels(self, indices):
        if not self.one_hot:
            return indices
        return np.eye(self.num_classes, dtype=np.float32)[indices]

    def next_batch(self, batch_size: int, shuffle: bool = True):
        """The next ``batch_size`` examples, with the tutorial's semantics.

        Parameters
        ----------
        batch_size : int
            Rows per batch, 1 to ``num_examples``.
        shuffle : bool
            Reshuffle at the start and at each epoch end (rows left over from an
            epoch are carried into the batch that crosses it).

        Returns
        -------
        images : numpy.ndarray
            float32 ``[batch_size, 784]``.
        labels : numpy.ndarray
            As :attr:`labels`, ``batch_size`` rows.
        """
        rows = self._batches.next_batch(batch_size, shuffle)
        return to_float_images(self.pixels[rows]), self._format_labels(self.class_indices[rows])

    def batch_order(self, batch_size: int, steps: int, shuffle: bool = True) -> np.ndarray:
        """Row indices of the next ``steps`` batches, as ``next_batch`` would draw them.

        Advances the same state as ``next_batch``, so the two can be mixed. The
        compiled training loops take this array instead of the rows themselves.
        """
        return self._batches.batches(batch_size, steps, shuffle)


def _check_arguments(validation_size, seed, data_dir=None, mirrors=None, **flags):
    validation.directory_name(data_dir)
    for name, value in flags.items():
        validation.flag(value, name)
    validation.urls(mirrors)
    validation.count(validation_size, "validation_size", minimum=0)
    validation.seed(seed)


def to_float_images(pixels: np.ndarray, dtype=np.float32) -> np.ndarray:
    """uint8 pixels to floats in [0, 1], multiplied by ``PIXEL_SCALE`` as the kernels do."""
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8:
        raise InputTypeError(f"pixels must be a uint8 array, got {validation.describe(pixels)}")
    return to_float(pixels, validation.float_dtype(dtype))


@dataclass
class Datasets:
    """The three splits of a dataset, as the tutorial's ``mnist`` object."""

    train: DataSet
    validation: DataSet
    test: DataSet
    name: str = ""
    sources: dict = field(default_factory=dict)


def read_data_sets(data_dir=None, *, dataset="mnist", one_hot=False, validation_size=5000,
                   download=True, seed=None, mirrors=None, progressbar=True, cache=True) -> Datasets:
    """Load an MNIST-format dataset, finding or downloading its files.

    Parameters
    ----------
    data_dir : str or Path, optional
        Searched first; downloads go here when given (else to the cache
        directory). A ``data_dir`` that does not exist is made by the first
        download into it, and only then; with downloading off it must exist.
    dataset : str or DatasetSpec
        ``"mnist"`` or ``"fashion-mnist"``, or a :class:`DatasetSpec` of your own.
    one_hot : bool
        Labels as float32 one-hot rows instead of int64 class indices.
    validation_size : int
        The first ``validation_size`` training rows become the validation split.
    download : bool
        Download missing files (also off when ``$FASTSOFTMAX_OFFLINE=1``).
    seed : int, optional
        Seeds each split's batch order; ``None`` draws fresh entropy.
    mirrors : sequence of str, optional
        Base URLs to use instead of the dataset's own mirrors.
    progressbar : bool
        Show a progress bar while downloading.
    cache : bool
        Keep parsed arrays in the cache directory so the next load is fast.

    Returns
    -------
    Datasets
        ``.train``, ``.validation`` and ``.test`` :class:`DataSet` objects.

    Raises
    ------
    DataNotFoundError
        Files missing and not downloadable, or a ``data_dir`` that is not a
        directory (or does not exist, with downloading off); the message says
        which files, where it looked, what was tried and what to do, and the
        attributes (``missing``, ``searched``, ``attempts``, ``available``, ...)
        hold the same facts.
    DataFileError
        A file is truncated or corrupt, or has the exact name and size of the
        dataset's published ``.gz`` file but other bytes; the message names it.
    InputError
        Unknown dataset name or a bad ``validation_size``.
    InputTypeError
        An argument of the wrong type (``one_hot="yes"``, ``mirrors="http://..."``, ...).

    Warns
    -----
    ChecksumWarning
        A local file's checksum is not the manifest's for ``dataset`` (another
        dataset's file, say); the warning names the file and the dataset. Each file
        is hashed once, when first parsed, and the hashes are cached with the
        parsed array (with ``cache=False``, on every load).

    See Also
    --------
    read_test_set : the test split alone, from its two files.
    """
    spec = _spec(dataset)
    _check_arguments(validation_size, seed, data_dir, mirrors, one_hot=one_hot, download=download,
                     progressbar=progressbar, cache=cache)  # before any file is looked for
    arrays, paths = _read_parts(spec, PARTS, data_dir, download, mirrors, progressbar, cache)
    n_train = arrays["train_images"].shape[0]
    if not 0 <= validation_size <= n_train:
        raise InputError(f"validation_size must be in [0, {n_train}], got {validation_size}")
    seeds = np.random.SeedSequence(seed).spawn(3)

    def make(pix, lab, s):
        return DataSet(pix, lab, num_classes=spec.num_classes, one_hot=one_hot, seed=s)

    train_pix, train_lab = arrays["train_images"], arrays["train_labels"]
    return Datasets(
        train=make(train_pix[validation_size:], train_lab[validation_size:], seeds[0]),
        validation=make(train_pix[:validation_size], train_lab[:validation_size], seeds[1]),
        test=make(arrays["test_images"], arrays["test_labels"], seeds[2]),
        name=spec.name,
        sources={part: str(path) for part, path in paths.items()},
    )


#: The two files of the test split.
TEST_PARTS = ("test_images", "test_labels")


def read_test_set(data_dir=None, *, dataset="mnist", one_hot=False, download=True, seed=None, mirrors=None,
                  progressbar=True, cache=True) -> DataSet:
    """Load the test split of an MNIST-format dataset alone, from its two files.

    What evaluating a model needs: the training files are neither looked for nor
    downloaded, so this works where only a test set is present (MNIST's
    ``t10k-*`` files, say). The files are found, downloaded, verified and cached
    exactly as :func:`read_data_sets` does.

    Parameters
    ----------
    data_dir : str or Path, optional
        Searched first; downloads go here when given (else to the cache
        directory). With downloading off it must exist.
    dataset : str or DatasetSpec
        ``"mnist"`` or ``"fashion-mnist"``, or a :class:`DatasetSpec` of your own.
    one_hot : bool
        Labels as float32 one-hot rows instead of int64 class indices.
    download : bool
        Download missing files (also off when ``$FASTSOFTMAX_OFFLINE=1``).
    seed : int, optional
        Seeds the split's batch order: the same seed gives the batches of
        ``read_data_sets(..., seed=seed).test``. ``None`` draws fresh entropy.
    mirrors : sequence of str, optional
        Base URLs to use instead of the dataset's own mirrors.
    progressbar : bool
        Show a progress bar while downloading.
    cache : bool
        Keep parsed arrays in the cache directory so the next load is fast.

    Returns
    -------
    DataSet
        The test split: ``pixels`` uint8 ``[N, 784]``, ``images`` float32
        ``[N, 784]``, ``labels`` (int64 ``[N]`` or float32 one-hot
        ``[N, num_classes]``), ``class_indices`` int64 ``[N]``.

    Raises
    ------
    DataNotFoundError, DataFileError, InputError, InputTypeError
        As :func:`read_data_sets`, for the two test files only.

    Warns
    -----
    ChecksumWarning
        As :func:`read_data_sets`.

    Examples
    --------
    >>> test = read_test_set(dataset="fashion-mnist")  # doctest: +SKIP
    >>> model.score(test.pixels, test.labels)  # doctest: +SKIP
    """
    spec = _spec(dataset)
    _check_arguments(0, seed, data_dir, mirrors, one_hot=one_hot, download=download, progressbar=progressbar,
                     cache=cache)
    arrays, _ = _read_parts(spec, TEST_PARTS, data_dir, download, mirrors, progressbar, cache)
    test_seed = np.random.SeedSequence(seed).spawn(3)[2]  # the test split's seed in read_data_sets
    return DataSet(arrays["test_images"], arrays["test_labels"], num_classes=spec.num_classes, one_hot=one_hot,
                   seed=test_seed)


def _read_parts(spec, parts, data_dir, download, mirrors, progressbar, cache):
    """Find, parse and check the files of ``parts``; returns ``(arrays, paths)``, dicts by part."""
    paths = locate(spec, data_dir, parts=parts, download=download, mirrors=mirrors, progressbar=progressbar)
    cache_dir = (cache_root() / "parsed") if cache else None
    arrays = {}
    for part, path in paths.items():
        arrays[part], digests = load_idx_hashed(path, cache_dir, 3 if part.endswith("images") else 1)
        check_against_manifest(path, digests, spec.file(part), spec.name)
    for split in ("train", "test"):
        if f"{split}_images" in arrays:
            _check_pair(arrays, split, paths, spec.num_classes)
    return arrays, paths


def _spec(dataset) -> DatasetSpec:
    if isinstance(dataset, DatasetSpec):
        return dataset
    try:
        return DATASETS[dataset]
    except (KeyError, TypeError):
        raise InputError(f"unknown dataset {dataset!r}; known: {', '.join(DATASETS)}") from None


def _check_pair(arrays, split, paths, num_classes):
    images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
    if images.shape[0] != labels.shape[0]:
        raise DataFileError(paths[f"{split}_labels"],
                            f"{labels.shape[0]} labels for {images.shape[0]} images in {paths[f'{split}_images']}")
    if labels.size and labels.max() >= num_classes:
        raise DataFileError(paths[f"{split}_labels"],
                            f"label {int(labels.max())} is outside [0, {num_classes})")
