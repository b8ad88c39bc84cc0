"""DatasetSpec and FileSpec refuse missing and wrongly typed fields with the library's errors,
naming the field, when they are made (not later, deep inside a download or a load)."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastsoftmax as fs
from fastsoftmax.data.manifest import MNIST, PARTS, DatasetSpec, FileSpec
from fastsoftmax.errors import FastSoftmaxError

DIGEST = "ab" * 32
GOOD_FILE = {"filename": "t10k-labels-idx1-ubyte.gz", "size": 4542, "sha256": DIGEST, "content_sha256": None}
GOOD_SPEC = {"name": "mine", "mirrors": ("http://127.0.0.1:1/",), "files": dict(MNIST.files), "num_classes": 10}

ODD = [None, "", "x", b"x", 0, -1, 1.5, math.nan, True, [], (), {}, ["a"], object(), "../up", "a/b", "a\0b", ".",
       "..", "A" * 64, "g" * 64, "ab" * 33, 10**30, 257, 0.0]


def test_the_published_specs_are_valid():
    for spec in fs.data.DATASETS.values():
        assert DatasetSpec(spec.name, spec.mirrors, spec.files, spec.num_classes) == spec


@pytest.mark.parametrize("field", ["filename", "size", "sha256"])
def test_a_missing_file_field_is_named(field):
    given = {k: v for k, v in GOOD_FILE.items() if k != field}
    with pytest.raises(fs.InputTypeError, match=f"FileSpec.{field} .*it is required"):
        FileSpec(**given)


@pytest.mark.parametrize("field", ["name", "mirrors", "files"])
def test_a_missing_dataset_field_is_named(field):
    given = {k: v for k, v in GOOD_SPEC.items() if k != field}
    with pytest.raises(fs.InputTypeError, match=f"DatasetSpec.{field} .*it is required"):
        DatasetSpec(**given)


@pytest.mark.parametrize("files, words", [
    ({k: v for k, v in MNIST.files.items() if k != "test_labels"}, "missing test_labels"),
    ({**MNIST.files, "extra": MNIST.file("test_labels")}, "unknown 'extra'"),
    ({**MNIST.files, "train_images": "train-images-idx3-ubyte.gz"}, r"DatasetSpec.files\['train_images'\] must be"),
    ([MNIST.file(p) for p in PARTS], "DatasetSpec.files must be a dict"),
])
def test_files_must_be_the_four_parts(files, words):
    with pytest.raises(FastSoftmaxError, match=words):
        DatasetSpec("mine", (), files)


@pytest.mark.parametrize("name", ["../elsewhere", "a/b", "a\\b", ".", "..", "", "x\0y"])
def test_names_written_as_paths_are_refused(name):
    """A dataset's name is a directory under each root, a file's name the name a download is written
    under: neither may lead out of its directory."""
    with pytest.raises(fs.InputError, match="plain name"):
        DatasetSpec(name, (), MNIST.files)
    with pytest.raises(fs.InputError, match="plain name"):
        FileSpec(name, 10, DIGEST)


def test_values_are_normalised():
    spec = DatasetSpec("mine", ["http://127.0.0.1:1/"], dict(MNIST.files))
    assert spec.mirrors == ("http://127.0.0.1:1/",)
    assert FileSpec("f.gz", 1, DIGEST.upper()).sha256 == DIGEST
    files = dict(MNIST.files)
    spec = DatasetSpec("mine", (), files)
    files.clear()  # the spec keeps a dict of its own
    assert set(spec.files) == set(PARTS)


@settings(max_examples=150, deadline=None)
@given(which=st.sampled_from(["file", "dataset"]), field=st.sampled_from(["filename", "size", "sha256",
                                                                          "content_sha256", "name", "mirrors",
                                                                          "files", "num_classes"]),
       value=st.sampled_from(ODD))
def test_sweep_only_library_errors_or_a_valid_spec(which, field, value):
    base = dict(GOOD_FILE) if which == "file" else dict(GOOD_SPEC)
    if field not in base:
        return
    base[field] = value
    try:
        made = (FileSpec if which == "file" else DatasetSpec)(**base)
    except FastSoftmaxError as exc:
        assert ("FileSpec." if which == "file" else "DatasetSpec.") + field in str(exc)
        return
    except Exception as exc:  # the point of the sweep
        raise AssertionError(f"{which} {field}={value!r}: {type(exc).__name__}: {exc}") from exc
    if which == "file":
        assert isinstance(made.filename, str) and made.size >= 1 and len(made.sha256) == 64
    else:
        assert isinstance(made.name, str) and 1 <= made.num_classes <= 256 and set(made.files) == set(PARTS)
