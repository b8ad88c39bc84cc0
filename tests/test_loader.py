"""read_data_sets on the real files, and next_batch's tutorial semantics."""

import gzip
import hashlib
import shutil

import numpy as np
import pytest

import fastsoftmax as fs
from fastsoftmax.data import BatchOrder, DataSet
from fastsoftmax.data.manifest import MNIST

pytestmark = pytest.mark.realdata


def test_real_mnist_files_match_the_manifest(mnist_dir):
    for part in ("test_images", "test_labels", "train_labels"):
        spec = MNIST.file(part)
        data = (mnist_dir / spec.filename).read_bytes()
        assert len(data) == spec.size
        assert hashlib.sha256(data).hexdigest() == spec.sha256


def test_mnist_test_set_contents(mnist_test_split):
    pixels, labels = mnist_test_split
    assert pixels.shape == (10000, 784) and pixels.dtype == np.uint8
    assert labels[:5].tolist() == [7, 2, 1, 0, 4]
    assert np.bincount(labels).tolist()[:3] == [980, 1135, 1032]


def test_fashion_mnist_from_the_system_directory(fashion_dir):
    data = fs.read_data_sets(dataset="fashion-mnist", download=False)
    assert (data.train.num_examples, data.validation.num_examples, data.test.num_examples) == (55000, 5000, 10000)
    assert data.sources["train_images"].startswith(str(fashion_dir))
    images = data.train.images
    assert images.shape == (55000, 784) and images.dtype == np.float32
    assert 0.0 <= images.min() and images.max() <= 1.0
    # the raw pixels are a view of the parsed array, not a copy
    assert data.train.pixels.dtype == np.uint8 and not data.train.pixels.flags.owndata
    # validation is the first 5000 training rows, as in the tutorial
    again = fs.read_data_sets(dataset="fashion-mnist", download=False, validation_size=0)
    np.testing.assert_array_equal(again.train.pixels[:5000], data.validation.pixels)


def test_one_hot_labels(fashion_dir):
    data = fs.read_data_sets(dataset="fashion-mnist", one_hot=True, download=False)
    labels = data.test.labels
    assert labels.shape == (10000, 10) and labels.dtype == np.float32
    np.testing.assert_array_equal(labels.argmax(1), data.test.class_indices)
    assert np.all(labels.sum(1) == 1)


def test_second_load_comes_from_the_parsed_cache(fashion_dir, isolated_cache):
    first = fs.read_data_sets(dataset="fashion-mnist", download=False)
    cached = sorted(p.name for p in (isolated_cache / "parsed").glob("*.npy"))
    assert len(cached) == 4
    second = fs.read_data_sets(dataset="fashion-mnist", download=False)
    np.testing.assert_array_equal(first.test.pixels, second.test.pixels)


def test_truncated_copy_raises_naming_the_file(mnist_dir, tmp_path):
    for name in ("t10k-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        shutil.copy(mnist_dir / name, tmp_path / name)
    data = gzip.decompress((mnist_dir / "t10k-images-idx3-ubyte.gz").read_bytes())
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(data[: len(data) // 2])
    # train images: a tiny valid file is enough to reach the broken test images
    header = bytes([0, 0, 8, 3]) + (60000).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    (tmp_path / "train-images-idx3-ubyte").write_bytes(header + bytes(60000 * 784))
    with pytest.raises(fs.DataFileError, match="t10k-images-idx3-ubyte.*truncated"):
        fs.read_data_sets(tmp_path, download=False)


def test_missing_files_give_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr("fastsoftmax.data.fetch.SYSTEM_DATA_ROOT", tmp_path / "none")
    with pytest.raises(fs.DataNotFoundError) as info:
        fs.read_data_sets(tmp_path, dataset="fashion-mnist", download=False)
    text = str(info.value)
    assert "train-images-idx3-ubyte.gz" in text and str(tmp_path) in text
    assert "apt-get install dataset-fashion-mnist" in text
    assert isinstance(info.value, OSError)


def test_offline_switch_blocks_downloads(tmp_path, monkeypatch, mirror):
    base, served, hits = mirror
    monkeypatch.setenv("FASTSOFTMAX_OFFLINE", "1")
    monkeypatch.setattr("fastsoftmax.data.fetch.SYSTEM_DATA_ROOT", tmp_path / "none")
    with pytest.raises(fs.DataNotFoundError, match="downloading is off"):
        fs.read_data_sets(tmp_path, mirrors=[base + "/ok/"])
    assert hits == []


def test_unknown_dataset():
    with pytest.raises(fs.InputError, match="unknown dataset 'cifar'"):
        fs.read_data_sets(dataset="cifar")


# ------------------------------------------------------------------ next_batch semantics


def tutorial_next_batch(state, images, labels, batch_size, rng):
    """TensorFlow's DataSet.next_batch (shuffle=True), with an explicit generator."""
    start = state["index"]
    if state["epochs"] == 0 and start == 0:
        perm = rng.permutation(len(images))
        state["images"], state["labels"] = images[perm], labels[perm]
    if start + batch_size > len(images):
        state["epochs"] += 1
        rest_i, rest_l = state["images"][start:], state["labels"][start:]
        perm = rng.permutation(len(images))
        state["images"], state["labels"] = images[perm], labels[perm]
        state["index"] = batch_size - len(rest_i)
        return (np.concatenate([rest_i, state["images"][: state["index"]]]),
                np.concatenate([rest_l, state["labels"][: state["index"]]]))
    state["index"] = start + batch_size
    return state["images"][start:state["index"]], state["labels"][start:state["index"]]


@pytest.mark.parametrize("n, batch", [(10, 3), (10, 10), (7, 1), (9, 4)])
def test_next_batch_matches_the_tutorial(n, batch):
    rng = np.random.default_rng(5)
    pixels = rng.integers(0, 256, (n, 784), dtype=np.uint8)
    labels = rng.integers(0, 10, n)
    ours = DataSet(pixels, labels, seed=11)
    state = {"index": 0, "epochs": 0}
    theirs_rng = np.random.default_rng(11)
    for step in range(4 * n // batch + 3):
        xb, yb = ours.next_batch(batch)
        xt, yt = tutorial_next_batch(state, pixels, labels, batch, theirs_rng)
        np.testing.assert_array_equal(xb, xt.astype(np.float32) * np.float32(1 / 255))
        np.testing.assert_array_equal(yb, yt)
        assert ours.epochs_completed == state["epochs"]


def test_batch_order_advances_the_same_state_as_next_batch():
    order_a = BatchOrder(13, np.random.default_rng(3))
    order_b = BatchOrder(13, np.random.default_rng(3))
    many = order_a.batches(5, 7)
    one_by_one = np.concatenate([order_b.next_batch(5) for _ in range(7)])
    np.testing.assert_array_equal(many, one_by_one)
    assert order_a.epochs_completed == order_b.epochs_completed == 2


def test_unshuffled_batches_are_consecutive_slices():
    order = BatchOrder(10, np.random.default_rng(0))
    np.testing.assert_array_equal(order.batches(4, 3, shuffle=False), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1])


@pytest.mark.parametrize("bad, error", [(0, fs.InputError), (-1, fs.InputError), (11, fs.InputError),
                                        (2.0, fs.InputTypeError), ("2", fs.InputTypeError)])
def test_bad_batch_size(bad, error):
    with pytest.raises(error, match="batch_size"):
        BatchOrder(10, np.random.default_rng(0)).next_batch(bad)


def test_seeded_loaders_draw_the_same_batches(fashion_dir):
    a = fs.read_data_sets(dataset="fashion-mnist", seed=4, download=False)
    b = fs.read_data_sets(dataset="fashion-mnist", seed=4, download=False)
    np.testing.assert_array_equal(a.train.batch_order(100, 3), b.train.batch_order(100, 3))


# ---------------------------------------------------------------- local files against the manifest


def _fake_mnist_train_images(directory):
    """A valid uncompressed 60000-image file: MNIST's train images are not available offline."""
    header = bytes([0, 0, 8, 3]) + (60000).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    (directory / "train-images-idx3-ubyte").write_bytes(header + bytes(60000 * 784))


def test_another_datasets_files_warn_naming_file_and_dataset_once_hashed(fashion_dir, tmp_path, monkeypatch):
    import fastsoftmax.data.cache as cache

    hashed = []
    real = cache.read_idx_hashed
    monkeypatch.setattr(cache, "read_idx_hashed", lambda path, ndim: hashed.append(path) or real(path, ndim))
    for attempt in range(2):
        with pytest.warns(fs.ChecksumWarning) as caught:
            data = fs.read_data_sets(fashion_dir, dataset="mnist", download=False)
        messages = [str(w.message) for w in caught if issubclass(w.category, fs.ChecksumWarning)]
        for name in ("train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
            assert any(str(fashion_dir / name) in m and "'mnist'" in m for m in messages), (name, messages)
        assert data.test.num_examples == 10000  # custom data in MNIST format still loads
    assert len(hashed) == 4  # the second load took the digests from the cache, not from the files


def test_the_right_files_load_without_a_warning_compressed_again_or_not(fashion_dir, mnist_dir, tmp_path):
    import warnings

    for name in ("t10k-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        shutil.copy(mnist_dir / name, tmp_path / name)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(gzip.decompress((mnist_dir / "t10k-images-idx3-ubyte.gz")
                                                                      .read_bytes()))
    _fake_mnist_train_images(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", fs.ChecksumWarning)
        fs.read_data_sets(tmp_path, dataset="mnist", download=False)
        fs.read_data_sets(tmp_path, dataset="mnist", download=False, cache=False)
        # Debian's Fashion-MNIST: re-compressed .gz files, the published content
        fs.read_data_sets(fashion_dir, dataset="fashion-mnist", download=False)


def test_without_the_cache_a_mismatch_still_warns(fashion_dir):
    with pytest.warns(fs.ChecksumWarning) as caught:
        fs.read_data_sets(fashion_dir, dataset="mnist", download=False, cache=False)
    assert any("t10k-labels-idx1-ubyte.gz of dataset 'mnist'" in str(w.message) for w in caught)


def _same_size_gzip(content: bytes, size: int) -> bytes:
    """A valid gzip of ``content`` padded to exactly ``size`` bytes with a stored file name."""
    import io

    bare = gzip.compress(content, compresslevel=9, mtime=0)
    name_length = size - len(bare) - 1  # the FNAME field: the name and its NUL
    assert name_length > 0
    out = io.BytesIO()
    with gzip.GzipFile(filename="n" * name_length, mode="wb", fileobj=out, compresslevel=9, mtime=0) as f:
        f.write(content)
    assert len(out.getvalue()) == size
    return out.getvalue()


def test_an_altered_copy_of_a_published_file_is_refused(mnist_dir, tmp_path):
    spec = MNIST.file("test_labels")
    labels = bytearray(gzip.decompress((mnist_dir / spec.filename).read_bytes()))
    labels[8] = (labels[8] + 1) % 10  # one label changed: still a valid IDX file
    (tmp_path / spec.filename).write_bytes(_same_size_gzip(bytes(labels), spec.size))
    for name in ("t10k-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        shutil.copy(mnist_dir / name, tmp_path / name)
    _fake_mnist_train_images(tmp_path)
    with pytest.raises(fs.DataFileError, match=f"{spec.filename}.*name and size of the published"):
        fs.read_data_sets(tmp_path, dataset="mnist", download=False)


def test_next_batch_and_batch_order_refuse_what_is_not_a_count():
    data = DataSet(np.zeros((10, 4), np.uint8), np.arange(10) % 3, seed=0)
    for bad in ("x", None, 2.7, float("nan"), float("inf"), True):
        with pytest.raises(fs.InputTypeError, match="batch_size must be a positive integer"):
            data.next_batch(bad)
    for bad in ("x", 2.5, None):
        with pytest.raises(fs.InputTypeError, match="steps must be an integer"):
            data.batch_order(2, bad)
    with pytest.raises(fs.InputError, match="steps must be an integer >= 0"):
        data.batch_order(2, -1)
    with pytest.raises(fs.InputTypeError, match="shuffle must be True or False"):
        data.next_batch(2, shuffle="no")
    assert data.batch_order(np.int64(2), np.uint8(3)).shape == (6,)
    with pytest.raises(fs.InputTypeError, match="pixels must be a uint8 array"):
        DataSet(np.zeros((10, 4)), np.zeros(10, int))
    with pytest.raises(fs.InputError, match=r"class_indices must lie in \[0, num_classes\)"):
        DataSet(np.zeros((10, 4), np.uint8), np.arange(10), num_classes=3)


def test_a_data_file_that_cannot_be_read_gives_a_library_error(tmp_path):
    from fastsoftmax.data.idx import read_idx

    with pytest.raises(fs.DataReadError, match="cannot be read") as info:
        read_idx(tmp_path)  # a directory: reading it fails as an unreadable file would
    assert isinstance(info.value, OSError) and isinstance(info.value, fs.DataFileError)


@pytest.mark.parametrize("sidecar", ['{"file": "0", "content": "0"}', "[1, 2]", "{", '{"file": 1}', ""])
def test_a_damaged_checksum_cache_entry_is_hashed_again_not_trusted(mnist_dir, tmp_path, sidecar):
    import warnings

    from fastsoftmax.data.cache import check_against_manifest, load_idx_hashed

    spec = MNIST.file("test_labels")
    local = tmp_path / spec.filename
    shutil.copy(mnist_dir / spec.filename, local)
    cache = tmp_path / "cache"
    load_idx_hashed(local, cache, 1)
    (entry,) = cache.glob("*.sha256")
    entry.write_text(sidecar)
    labels, digests = load_idx_hashed(local, cache, 1)
    assert digests.file == spec.sha256 and list(labels[:3]) == [7, 2, 1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_against_manifest(local, digests, spec, "mnist")
    assert entry.read_text() != sidecar  # rewritten


# ---------------------------------------------------------------- the test split alone, data_dir, what is missing


def test_the_test_set_alone_loads_where_only_it_is(mnist_dir, tmp_path, monkeypatch):
    """read_test_set needs MNIST's two test files only (shared/data/mnist has no training images)."""
    from fastsoftmax.data.dataset import read_test_set

    monkeypatch.setattr("fastsoftmax.data.fetch.SYSTEM_DATA_ROOT", tmp_path / "none")
    assert not (mnist_dir / "train-images-idx3-ubyte.gz").exists()
    with pytest.raises(fs.DataNotFoundError):
        fs.read_data_sets(mnist_dir, download=False)
    test = read_test_set(mnist_dir, download=False, one_hot=True)
    assert test.num_examples == 10000 and test.pixels.shape == (10000, 784)
    assert test.class_indices[:5].tolist() == [7, 2, 1, 0, 4] and test.labels.shape == (10000, 10)


def test_the_test_set_alone_is_the_same_split_with_the_same_batches(fashion_dir):
    from fastsoftmax.data.dataset import read_test_set

    whole = fs.read_data_sets(dataset="fashion-mnist", download=False, seed=3)
    alone = read_test_set(dataset="fashion-mnist", download=False, seed=3)
    np.testing.assert_array_equal(whole.test.pixels, alone.pixels)
    np.testing.assert_array_equal(whole.test.class_indices, alone.class_indices)
    np.testing.assert_array_equal(whole.test.batch_order(100, 150), alone.batch_order(100, 150))


def test_read_test_set_refuses_what_read_data_sets_refuses(tmp_path):
    from fastsoftmax.data.dataset import read_test_set

    for bad in ({"one_hot": "yes"}, {"seed": -1}, {"mirrors": "http://127.0.0.1/"}, {"dataset": "cifar"},
                {"data_dir": b"bytes"}, {"cache": None}):
        with pytest.raises(fs.FastSoftmaxError):
            read_test_set(**{"data_dir": tmp_path, "download": False, **bad})


def test_a_missing_data_dir_with_downloading_off_is_an_error_naming_it(tmp_path, fashion_dir):
    """Fashion-MNIST is on this machine, but data_dir names where the caller says it is."""
    for download, env in ((False, None), (True, "1")):
        with pytest.MonkeyPatch.context() as patch:
            if env:
                patch.setenv("FASTSOFTMAX_OFFLINE", env)
            with pytest.raises(fs.DataNotFoundError, match="data_dir .*no-such-dir does not exist") as info:
                fs.read_data_sets(tmp_path / "no-such-dir", dataset="fashion-mnist", download=download)
        assert info.value.data_dir == str(tmp_path / "no-such-dir")
        assert info.value.download_off == ("download=False" if not download else "FASTSOFTMAX_OFFLINE=1")
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(fs.DataNotFoundError, match="a-file is not a directory"):
        fs.read_data_sets(tmp_path / "a-file", dataset="fashion-mnist")


def test_a_missing_data_dir_with_downloading_on_is_made_only_by_a_download(tmp_path, fashion_dir):
    """The tutorial's read_data_sets("MNIST_data/"): with the files found elsewhere, nothing is made."""
    data = fs.read_data_sets(tmp_path / "MNIST_data", dataset="fashion-mnist")
    assert data.test.num_examples == 10000 and not (tmp_path / "MNIST_data").exists()


def test_what_is_missing_is_said_in_the_apis_words_and_held_as_attributes(tmp_path, monkeypatch, fashion_dir):
    system = tmp_path / "system"
    system.mkdir()
    (system / "fashion-mnist").symlink_to(fashion_dir)
    monkeypatch.setattr("fastsoftmax.data.fetch.SYSTEM_DATA_ROOT", system)
    monkeypatch.setenv("FASTSOFTMAX_OFFLINE", "1")
    with pytest.raises(fs.DataNotFoundError) as info:
        fs.read_data_sets(tmp_path)
    error = info.value
    assert error.dataset == "mnist" and error.download_off == "FASTSOFTMAX_OFFLINE=1" and error.attempts == ()
    assert error.missing == tuple(MNIST.file(p).filename for p in ("train_images", "train_labels", "test_images",
                                                                   "test_labels"))
    assert error.searched[:2] == (str(tmp_path), str(tmp_path / "mnist")) and error.data_dir is None
    assert error.available == {"fashion-mnist": str(system / "fashion-mnist")}
    text = str(error)
    assert "data_dir" in text and "FASTSOFTMAX_DATA" in text and "dataset='fashion-mnist'" in text
    assert "--data-dir" not in text and "--dataset" not in text  # the command line words its own
    # the test split alone: only its files are missing, and only datasets with a test set are offered
    from fastsoftmax.data.dataset import read_test_set

    with pytest.raises(fs.DataNotFoundError) as info:
        read_test_set(tmp_path)
    assert info.value.missing == ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
