"""What each dataset is made of: file names, checksums and mirrors.

The sha256 values are those of the upstream ``.gz`` files, checked on every
download. Files found on disk (a user's directory, Debian's package) are not
hashed, because Debian re-compresses them; the IDX parser checks their structure.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The four parts of every MNIST-format dataset, in a fixed order.
PARTS = ("train_images", "train_labels", "test_images", "test_labels")


@dataclass(frozen=True)
class FileSpec:
    """One upstream file: its name, size in bytes and sha256 of the ``.gz``."""

    filename: str
    size: int
    sha256: str

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
        "train_images": FileSpec(
            "train-images-idx3-ubyte.gz", 9_912_422,
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
        "train_labels": FileSpec(
            "train-labels-idx1-ubyte.gz", 28_881,
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
        "test_images": FileSpec(
            "t10k-images-idx3-ubyte.gz", 1_648_877,
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
        "test_labels": FileSpec(
            "t10k-labels-idx1-ubyte.gz", 4_542,
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
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
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
        "train_labels": FileSpec(
            "train-labels-idx1-ubyte.gz", 29_515,
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
        "test_images": FileSpec(
            "t10k-images-idx3-ubyte.gz", 4_422_102,
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
        "test_labels": FileSpec(
            "t10k-labels-idx1-ubyte.gz", 5_148,
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
    },
)

#: Every dataset known by name. Adding one is adding an entry here (see CONTRIBUTING.md).
DATASETS = {spec.name: spec for spec in (MNIST, FASHION_MNIST)}
