"""What each dataset is made of: file names, checksums and mirrors.

Each file has two sha256 values: ``sha256`` of the upstream ``.gz`` file,
checked on every download, and ``content_sha256`` of its decompressed IDX
content. Files found on disk (a user's directory, Debian's package, which
re-compresses them) are checked against either, once: the verdict's hashes are
cached with the parsed arrays (see :mod:`fastsoftmax.data.cache`).
"""

from __future__ import annotations

from dataclasses import dataclass

#: The four parts of every MNIST-format dataset, in a fixed order.
PARTS = ("train_images", "train_labels", "test_images", "test_labels")


@dataclass(frozen=True)
class FileSpec:
    """One upstream file: its name, size in bytes, sha256 of the ``.gz`` and of its IDX content.

    ``content_sha256`` (the decompressed bytes) also recognises a copy stored
    uncompressed or compressed again; None where it is not recorded, and then only
    the ``.gz`` itself can be verified.
    """

    filename: str
    size: int
    sha256: str
    content_sha256: str | None = None

    @property
    def uncompressed_name(self) -> str:
        """The same file's name without ``.gz``, accepted when found on disk."""
        return self.filename[: -len(".gz")] if self.filename.endswith(".gz") else self.filename


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset: a name, base URLs tried in order, and its four files."""

    name: str
    mirrors: tuple[str, ...]
    files: dict
    num_classes: int = 10

    def file(self, part: str) -> FileSpec:
        return self.files[part]


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
