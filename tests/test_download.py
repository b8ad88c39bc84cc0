"""Downloads end to end against a local HTTP server on 127.0.0.1 serving real files."""

import hashlib
import shutil

import pytest

import fastsoftmax as fs
from fastsoftmax.data.fetch import download_file
from fastsoftmax.data.manifest import MNIST, PARTS, DatasetSpec, FileSpec

pytestmark = pytest.mark.realdata

LABELS = MNIST.file("test_labels")  # the real t10k labels, 4,542 bytes, with the real sha256


def serve(mnist_dir, served, name=LABELS.filename):
    shutil.copy(mnist_dir / name, served / name)


def leftovers(directory):
    """Anything in the cache directory besides finished files and lock files."""
    return sorted(p.name for p in directory.iterdir() if not p.name.endswith(".lock"))


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
    assert leftovers(tmp_path / "cache") == []


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
