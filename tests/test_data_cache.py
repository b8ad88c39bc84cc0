"""The parsed-array cache never trusts a damaged entry: whatever happened to it (a crash that left
it empty or cut short, a wrong header, shape or dtype, an unreadable checksum file), the source is
parsed again, the right array returned and the entry replaced."""

import gzip
import io
import logging
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastsoftmax as fs
from fastsoftmax.data.cache import load_idx_hashed
from fastsoftmax.data.idx import read_idx, read_idx_shape


@pytest.fixture
def source(tmp_path):
    """A real-format IDX images file (gzip), 50 images of 28 x 28 with distinct contents."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (50, 28, 28), dtype=np.uint8)
    header = bytes([0, 0, 8, 3]) + (50).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    path = tmp_path / "images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(header + images.tobytes(), mtime=0))
    return path, images


def _entry(cache):
    (npy,) = cache.glob("*.npy")
    return npy, npy.with_suffix(".sha256")


def _npy(array, fortran=False):
    out = io.BytesIO()
    np.save(out, np.asfortranarray(array) if fortran else array, allow_pickle=False)
    return out.getvalue()


DAMAGE = {
    "empty": lambda good, images: b"",
    "truncated": lambda good, images: good[: len(good) // 2],
    "header only": lambda good, images: good[:128],
    "trailing bytes": lambda good, images: good + b"\0" * 100,
    "not npy": lambda good, images: b"garbage" * 100,
    "zip": lambda good, images: b"PK\x03\x04" + b"\0" * 100,
    "pickle": lambda good, images: b"\x80\x04K\x01.",
    "wrong shape": lambda good, images: _npy(images[:10]),
    "flattened": lambda good, images: _npy(images.reshape(50, 784)),
    "wrong dtype": lambda good, images: _npy(images.astype(np.uint16)),
    "float": lambda good, images: _npy(images.astype(np.float32)),
    "fortran order": lambda good, images: _npy(images, fortran=True),
    "object": lambda good, images: (b"\x93NUMPY\x01\x00v\x00{'descr': '|O', 'fortran_order': False, "
                                    b"'shape': (50, 28, 28), }").ljust(127, b" ") + b"\n",
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_array_entry_is_parsed_again_and_replaced(damage, source, tmp_path, caplog):
    path, images = source
    cache = tmp_path / "cache"
    load_idx_hashed(path, cache, 3)
    entry, _ = _entry(cache)
    entry.write_bytes(DAMAGE[damage](entry.read_bytes(), images))
    with caplog.at_level(logging.WARNING, logger="fastsoftmax"):
        array, digests = load_idx_hashed(path, cache, 3)
    np.testing.assert_array_equal(array, images)
    assert array.dtype == np.uint8 and array.flags.c_contiguous
    assert any("damaged" in r.getMessage() and entry.name in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="fastsoftmax"):
        again, _ = load_idx_hashed(path, cache, 3)  # the replaced entry is good: read from the cache, silently
    np.testing.assert_array_equal(again, images)
    assert isinstance(again.base, np.memmap) or isinstance(again, np.memmap)
    assert caplog.records == []


@pytest.mark.parametrize("damage", ["sidecar missing", "sidecar empty", "sidecar a directory", "entry missing",
                                    "entry a directory"])
def test_a_half_written_pair_is_parsed_again(damage, source, tmp_path):
    path, images = source
    cache = tmp_path / "cache"
    load_idx_hashed(path, cache, 3)
    entry, sidecar = _entry(cache)
    broken = {"sidecar missing": sidecar, "sidecar empty": sidecar, "sidecar a directory": sidecar,
              "entry missing": entry, "entry a directory": entry}[damage]
    broken.unlink()
    if damage == "sidecar empty":
        broken.write_text("")
    elif damage.endswith("a directory"):
        broken.mkdir()
    array, digests = load_idx_hashed(path, cache, 3)
    np.testing.assert_array_equal(array, images)
    assert len(digests.file) == 64 and len(digests.content) == 64


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_damage_to_an_entrys_header_or_length_gives_the_right_array(data, source, tmp_path):
    """Random bytes of the .npy header changed, the file cut anywhere, bytes appended: the right array
    comes back every time. (Values changed in place, the length kept, cannot be seen without hashing
    the array on every load, which the cache is there to avoid.)"""
    path, images = source
    cache = tmp_path / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    load_idx_hashed(path, cache, 3)
    entry, _ = _entry(cache)
    raw = bytearray(entry.read_bytes())
    header = raw.index(b"\n") + 1
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["header", "cut", "append"]))
        if kind == "header":
            raw[data.draw(st.integers(0, header - 1))] = data.draw(st.integers(0, 255))
        elif kind == "cut":
            del raw[data.draw(st.integers(0, len(raw))):]
        else:
            raw += data.draw(st.binary(min_size=1, max_size=64))
        if len(raw) < header:
            break
    entry.write_bytes(bytes(raw))
    array, _ = load_idx_hashed(path, cache, 3)
    np.testing.assert_array_equal(array, images)
    assert array.dtype == np.uint8 and array.shape == images.shape


def test_read_idx_shape_reads_only_the_header(source, tmp_path):
    path, images = source
    assert read_idx_shape(path, 3) == (50, 28, 28)
    plain = tmp_path / "plain-idx3-ubyte"
    plain.write_bytes(gzip.decompress(path.read_bytes())[:16])  # the header alone: the rest is not read
    assert read_idx_shape(plain) == (50, 28, 28)
    with pytest.raises(fs.DataFileError, match="truncated"):
        read_idx(plain)
    with pytest.raises(fs.DataFileError, match="expected 1"):
        read_idx_shape(path, 1)
    (tmp_path / "junk.gz").write_bytes(b"\x1f\x8b" + b"junk" * 10)
    with pytest.raises(fs.DataFileError, match="corrupt or truncated gzip"):
        read_idx_shape(tmp_path / "junk.gz")
    with pytest.raises(fs.DataReadError):
        read_idx_shape(tmp_path)
