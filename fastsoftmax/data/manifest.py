"""What each dataset is made of: file names, checksums and mirrors.

Each file has two sha256 values: ``sha256`` of the upstream ``.gz`` file,
checked on every download, and ``content_sha256`` of its decompressed IDX
content. Files found on disk (a user's directory, Debian's package, which
re-compresses them) are checked against either, once: the verdict's hashes are
cached with the parsed arrays (see :mod:`fastsoftmax.data.cache`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import InputError, InputTypeError

#: The four parts of every MNIST-format dataset, in a fixed order.
PARTS = ("train_images", "train_labels", "test_images", "test_labels")

#: IDX labels are unsigned bytes, so a dataset can name at most this many classes.
MAX_CLASSES = 256


@dataclass(frozen=True)
class FileSpec:
    """One upstream file: its name, size in bytes, sha256 of the ``.gz`` and of its IDX content.

    ``content_sha256`` (the decompressed bytes) also recognises a copy stored
    uncompressed or compressed again; None where it is not recorded, and then only
    the ``.gz`` itself can be verified.

    Every field is checked when the spec is made: the name must be a plain file
    name (downloads are written under it), the size a positive integer and the
    digests 64 hexadecimal digits (stored in lower case).

    Raises
    ------
    InputTypeError
        A field is missing or of the wrong type; the message names it.
    InputError
        A field has an impossible value (a name with a directory in it, a size
        below 1, a digest that is not 64 hexadecimal digits).
    """

    filename: str = None
    size: int = None
    sha256: str = None
    content_sha256: str | None = None

    def __post_init__(self):
        _plain_name(self.filename, "FileSpec.filename")
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise InputTypeError(f"FileSpec.size must be the file's size in bytes (an int), got {self.size!r}"
                                 + _required(self.size))
        if self.size < 1:
            raise InputError(f"FileSpec.size must be >= 1 byte, got {self.size}")
        object.__setattr__(self, "sha256", _digest(self.sha256, "FileSpec.sha256"))
        if self.content_sha256 is not None:
            object.__setattr__(self, "content_sha256", _digest(self.content_sha256, "FileSpec.content_sha256"))

    @property
    def uncompressed_name(self) -> str:
        """The same file's name without ``.gz``, accepted when found on disk."""
        return self.filename[: -len(".gz")] if self.filename.endswith(".gz") else self.filename


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset: a name, base URLs tried in order, and its four files.

    Parameters
    ----------
    name : str
        A plain name, also the dataset's directory under each search root and the cache.
    mirrors : sequence of str
        Base URLs, tried in order (stored as a tuple); may be empty for a dataset
        that is only ever found on disk.
    files : mapping
        One :class:`FileSpec` for each of :data:`PARTS` (stored as a dict of its own).
    num_classes : int
        Labels lie in ``[0, num_classes)``; 1 to 256 (IDX labels are bytes).

    Raises
    ------
    InputTypeError
        A field is missing or of the wrong type; the message names it.
    InputError
        A field has an impossible value (a name with a directory in it, a part
        missing from ``files`` or unknown, ``num_classes`` out of range).
    """

    name: str = None
    mirrors: tuple[str, ...] = None
    files: dict = None
    num_classes: int = 10

    def __post_init__(self):
        _plain_name(self.name, "DatasetSpec.name")
        mirrors = self.mirrors
        if isinstance(mirrors, (str, bytes)) or not isinstance(mirrors, (list, tuple)):
            raise InputTypeError(f"DatasetSpec.mirrors must be a list or tuple of base URLs (str), got {mirrors!r}"
                                 + _required(mirrors))
        for k, url in enumerate(mirrors):
            if not isinstance(url, str) or not url.strip():
                raise InputTypeError(f"DatasetSpec.mirrors[{k}] must be a base URL (a non-empty str), got {url!r}")
        object.__setattr__(self, "mirrors", tuple(mirrors))
        files = self.files
        if not isinstance(files, Mapping):
            raise InputTypeError(f"DatasetSpec.files must be a dict of {', '.join(PARTS)} to FileSpec, "
                                 f"got {files!r}" + _required(files))
        unknown = [k for k in files if k not in PARTS]
        missing = [k for k in PARTS if k not in files]
        if unknown or missing:
            raise InputError(f"DatasetSpec.files must have exactly the parts {', '.join(PARTS)}; "
                             + "; ".join(filter(None, [missing and f"missing {', '.join(map(str, missing))}",
                                                       unknown and f"unknown {', '.join(map(repr, unknown))}"])))
        for part in PARTS:
            if not isinstance(files[part], FileSpec):
                raise InputTypeError(f"DatasetSpec.files[{part!r}] must be a FileSpec, got {files[part]!r}")
        object.__setattr__(self, "files", {part: files[part] for part in PARTS})
        classes = self.num_classes
        if isinstance(classes, bool) or not isinstance(classes, int):
            raise InputTypeError(f"DatasetSpec.num_classes must be an int, got {classes!r}")
        if not 1 <= classes <= MAX_CLASSES:
            raise InputError(f"DatasetSpec.num_classes must be in [1, {MAX_CLASSES}] (labels are bytes), got {classes}")

    def file(self, part: str) -> FileSpec:
        """The :class:`FileSpec` of one of :data:`PARTS`."""
        return self.files[part]


def _required(value) -> str:
    return " (it is required)" if value is None else ""


def _plain_name(value, field: str) -> None:
    """A file or directory name with no directory in it: downloads and caches are written under it."""
    if not isinstance(value, str):
        raise InputTypeError(f"{field} must be a str, got {value!r}" + _required(value))
    if value in ("", ".", "..") or any(c in value for c in "/\\\0"):
        raise InputError(f"{field} must be a plain name without a directory in it, got {value!r}")


def _digest(value, field: str) -> str:
    if not isinstance(value, str):
        raise InputTypeError(f"{field} must be a sha256 digest (a str of 64 hexadecimal digits), got {value!r}"
                             + _required(value))
    digest = value.lower()
    if len(digest) != 64 or not set(digest) <= set("0123456789abcdef"):
        raise InputError(f"{field} must be 64 hexadecimal digits, got {value!r}")
    return digest


MNIST = DatasetSpec(
    name="mnist",
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    files={
        # No content_sha256 recorded: the file's decompressed hash was not at hand, so only
        # the published .gz is recognised; other copies of it load unverified (logged).
        "train_images": FileSpec(
            "train-images-idx3-ubyte.gz", 9_912_422,
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
        "train_labels": FileSpec(
            "train-labels-idx1-ubyte.gz", 28_881,
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
        "test_images": FileSpec(
            "t10k-images-idx3-ubyte.gz", 1_648_877,
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
        "test_labels": FileSpec(
            "t10k-labels-idx1-ubyte.gz", 4_542,
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
    },
)

FASHION_MNIST = DatasetSpec(
    name="fashion-mnist",
    mirrors=(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
    ),
    files={
        "train_images": FileSpec(
            "train-images-idx3-ubyte.gz", 26_421_880,
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
        "train_labels": FileSpec(
            "train-labels-idx1-ubyte.gz", 29_515,
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
        "test_images": FileSpec(
            "t10k-images-idx3-ubyte.gz", 4_422_102,
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
        "test_labels": FileSpec(
            "t10k-labels-idx1-ubyte.gz", 5_148,
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
    },
)

#: Every dataset known by name. Adding one is adding an entry here (see CONTRIBUTING.md).
DATASETS = {spec.name: spec for spec in (MNIST, FASHION_MNIST)}
