"""Downloads end to end against a local HTTP server on 127.0.0.1 serving real files."""

import hashlib
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastsoftmax as fs
from fastsoftmax.data.fetch import download_file
from fastsoftmax.data.manifest import MNIST, PARTS, DatasetSpec, FileSpec

pytestmark = pytest.mark.realdata

LABELS = MNIST.file("test_labels")  # the real t10k labels, 4,542 bytes, with the real sha256


def serve(mnist_dir, served, name=LABELS.filename):
    shutil.copy(mnist_dir / name, served / name)


def leftovers(directory):
    """Everything in a download directory: lock files and partial files included."""
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_download_verifies_and_lands_in_the_cache(mnist_dir, mirror, tmp_path):
    base, served, hits = mirror
    serve(mnist_dir, served)
    path = download_file(LABELS, [base + "/ok/"], tmp_path / "cache", progressbar=False)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == LABELS.sha256
    assert leftovers(tmp_path / "cache") == [LABELS.filename]


@pytest.mark.parametrize("first", ["missing", "wrong", "html", "drop"])
def test_failover_to_the_next_mirror(mnist_dir, mirror, tmp_path, first):
    base, served, hits = mirror
    serve(mnist_dir, served)
    path = download_file(LABELS, [f"{base}/{first}/", f"{base}/ok/"], tmp_path / "cache", progressbar=False)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == LABELS.sha256
    assert [h.split("/")[1] for h in hits] == [first, "ok"]
    assert leftovers(tmp_path / "cache") == [LABELS.filename]


@pytest.mark.parametrize("mode", ["missing", "wrong", "html", "drop"])
def test_every_mirror_failing_leaves_the_cache_clean(mnist_dir, mirror, tmp_path, mode):
    base, served, hits = mirror
    serve(mnist_dir, served)
    with pytest.raises(fs.DownloadError) as info:
        download_file(LABELS, [f"{base}/{mode}/", f"{base}/{mode}/"], tmp_path / "cache", progressbar=False)
    assert len(str(info.value).splitlines()) == 3  # a heading and one line per mirror
    assert len(info.value.attempts) == 2 and info.value.file == LABELS.filename
    assert not (tmp_path / "cache").exists()  # made for the download, removed with it


def test_read_data_sets_downloads_a_whole_dataset(fashion_dir, mirror, tmp_path, monkeypatch):
    """The four real Fashion-MNIST files, served locally, checked against their own sha256."""
    base, served, hits = mirror
    monkeypatch.setattr("fastsoftmax.data.fetch.SYSTEM_DATA_ROOT", tmp_path / "none")
    files = {}
    for part in PARTS:
        name = fs.data.DATASETS["fashion-mnist"].file(part).filename
        shutil.copy(fashion_dir / name, served / name)
        data = (served / name).read_bytes()
        files[part] = FileSpec(name, len(data), hashlib.sha256(data).hexdigest())
    spec = DatasetSpec("local-fashion", (base + "/missing/", base + "/ok/"), files)
    data = fs.read_data_sets(dataset=spec, progressbar=False)
    assert data.train.num_examples == 55000 and data.test.num_examples == 10000
    assert len([h for h in hits if h.startswith("/ok/")]) == 4
    # a second load finds the downloaded files and asks the network for nothing
    hits.clear()
    fs.read_data_sets(dataset=spec, progressbar=False)
    assert hits == []


def _test_split_spec(mnist_dir, served, mirrors):
    """MNIST's real test files served locally, under a spec of their own (the training parts unused)."""
    files = dict(MNIST.files)
    for part in ("test_images", "test_labels"):
        serve(mnist_dir, served, MNIST.file(part).filename)
    return DatasetSpec("served-mnist", tuple(mirrors), files)


def test_threads_downloading_one_file_fetch_it_once_and_leave_no_lock(mnist_dir, mirror, tmp_path):
    import threading

    base, served, hits = mirror
    serve(mnist_dir, served)
    results, errors = [], []

    def load():
        try:
            results.append(download_file(LABELS, [base + "/slow/"], tmp_path / "cache", progressbar=False))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == [] and len(results) == 4
    assert len([h for h in hits if h.startswith("/slow/")]) == 1  # the lock made the others wait and reuse
    assert leftovers(tmp_path / "cache") == [LABELS.filename]


def test_a_mirror_sending_more_than_the_file_is_cut_off(mnist_dir, mirror, tmp_path):
    base, served, hits = mirror
    (served / LABELS.filename).write_bytes(bytes(LABELS.size * 50))  # another, larger file under the name
    with pytest.raises(fs.DownloadError, match=f"more than the file's {LABELS.size} bytes"):
        download_file(LABELS, [base + "/ok/"], tmp_path / "cache", progressbar=False)
    assert not (tmp_path / "cache").exists()


def test_a_mirror_that_could_not_be_reached_is_not_asked_again(mnist_dir, mirror, tmp_path):
    base, served, hits = mirror
    serve(mnist_dir, served)
    unreachable = {base + "/ok/": "cannot connect: host not found"}
    with pytest.raises(fs.DownloadError) as info:
        download_file(LABELS, [base + "/ok/"], tmp_path / "cache", progressbar=False, unreachable=unreachable)
    assert hits == [] and info.value.attempts == ((f"{base}/ok/{LABELS.filename}", "cannot connect: host not found"),)


def test_an_offline_machine_tries_each_mirror_once_and_says_so(mnist_dir, mirror, tmp_path, monkeypatch):
    import socket

    from fastsoftmax.data.dataset import read_test_set

    base, served, hits = mirror
    with socket.socket() as probe:  # a port where nothing listens: connections are refused
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/"
    monkeypatch.setattr("fastsoftmax.data.fetch.SYSTEM_DATA_ROOT", tmp_path / "none")
    spec = _test_split_spec(mnist_dir, served, [closed, base + "/missing/"])
    with pytest.raises(fs.DataNotFoundError) as info:
        read_test_set(tmp_path / "MNIST_data", dataset=spec, progressbar=False)
    error = info.value
    mirrors = (closed, base + "/missing/")
    assert [url for url, _ in error.attempts] == [m + name for name in error.missing for m in mirrors]
    refused = {reason for url, reason in error.attempts if url.startswith(closed)}
    assert refused == {"cannot connect: connection refused"}  # tried for the first file, then not again
    assert len(hits) == 2  # the 404 mirror, reachable, was asked for each file
    text = str(error)
    assert text.count(closed) == 1 and "HTTP 404" in text  # one line per mirror and reason
    assert not (tmp_path / "MNIST_data").exists()  # made for the downloads, removed with them


def test_a_download_makes_the_missing_data_dir_as_the_tutorial_did(mnist_dir, mirror, tmp_path, monkeypatch):
    from fastsoftmax.data.dataset import read_test_set

    base, served, hits = mirror
    monkeypatch.setattr("fastsoftmax.data.fetch.SYSTEM_DATA_ROOT", tmp_path / "none")
    spec = _test_split_spec(mnist_dir, served, [base + "/ok/"])
    test = read_test_set(tmp_path / "MNIST_data", dataset=spec, progressbar=False)
    assert test.num_examples == 10000
    assert leftovers(tmp_path / "MNIST_data") == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    assert sorted(h.rsplit("/", 1)[1] for h in hits) == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


MALFORMED_MIRRORS = ["http://", "ftp://127.0.0.1/", "127.0.0.1", "http://[::1", "http://127.0.0.1:99999/",
                     "http://127.0.0.1:0/", "file:///etc/", "http://user@/", "http:///x", " ", "http://\u2603/",
                     "http://127.0.0.1:1/\x00/", "https://127.0.0.1:1/"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mirrors=st.lists(st.one_of(st.sampled_from(MALFORMED_MIRRORS),
                                  st.text(min_size=1, max_size=20).map(lambda t: "/ok/" + t),
                                  st.sampled_from(["/missing/", "/wrong/", "/html/", "/drop/"])),
                        min_size=1, max_size=3))
def test_any_mirror_list_gives_the_file_or_the_librarys_error_and_leaves_nothing(mirrors, mnist_dir, mirror,
                                                                                  tmp_path):
    """Malformed URLs, unsupported schemes, odd paths on the local server: the right file or a
    DownloadError, and nothing left behind either way. (Never the internet: every URL is local or invalid.)"""
    base, served, hits = mirror
    serve(mnist_dir, served)
    urls = [base + m if m.startswith("/") else m for m in mirrors]
    target = tmp_path / "sweep"
    try:
        path = download_file(LABELS, urls, target, progressbar=False, timeout=5)
    except fs.DownloadError as exc:
        assert len(exc.attempts) == len(urls)
        assert not target.exists()
    except Exception as exc:  # the point of the sweep
        raise AssertionError(f"mirrors {urls!r}: {type(exc).__name__}: {exc}") from exc
    else:
        assert hashlib.sha256(path.read_bytes()).hexdigest() == LABELS.sha256
        assert leftovers(target) == [LABELS.filename]
        shutil.rmtree(target)


def test_a_dataset_of_ones_own_without_mirrors_says_there_is_nothing_to_download_from(tmp_path, monkeypatch):
    from fastsoftmax.data.dataset import read_test_set

    monkeypatch.setattr("fastsoftmax.data.fetch.SYSTEM_DATA_ROOT", tmp_path / "none")
    spec = DatasetSpec("local-only", (), dict(MNIST.files))
    with pytest.raises(fs.DataNotFoundError, match="nothing to download them from: the dataset lists no mirrors") \
            as info:
        read_test_set(dataset=spec)
    assert info.value.download_off == "the dataset lists no mirrors" and info.value.attempts == ()
    assert "allow downloading" not in str(info.value)
    with pytest.raises(fs.DataNotFoundError, match="does not exist, and nothing would be downloaded into it"):
        read_test_set(tmp_path / "MNIST_data", dataset=spec)
    assert not (tmp_path / "MNIST_data").exists()
