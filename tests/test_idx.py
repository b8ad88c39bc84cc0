"""The IDX parser on files the tests write themselves, including every corruption case."""

import gzip
import struct

import numpy as np
import pytest

from fastsoftmax.data.idx import parse_idx, read_idx
from fastsoftmax.errors import DataFileError


def idx_bytes(array: np.ndarray) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


@pytest.fixture
def images():
    return np.random.default_rng(1).integers(0, 256, size=(7, 5, 3), dtype=np.uint8)


@pytest.mark.parametrize("compress", [False, True])
def test_round_trip(tmp_path, images, compress):
    path = tmp_path / ("x.gz" if compress else "x")
    data = idx_bytes(images)
    path.write_bytes(gzip.compress(data) if compress else data)
    np.testing.assert_array_equal(read_idx(path, 3), images)


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d[:3], "too short"),
    (lambda d: b"\x01" + d[1:], "bad magic"),
    (lambda d: d[:2] + b"\x0d" + d[3:], "type code"),
    (lambda d: d[:3] + b"\x00" + d[4:], "0 dimensions"),
    (lambda d: d[:3] + b"\x02" + d[4:], "expected 3"),
    (lambda d: d[:10], "truncated header"),
    (lambda d: d[:-1], "truncated"),
    (lambda d: d + b"\x00", "trailing bytes"),
    (lambda d: d[:4] + struct.pack(">I", 2**31) + d[8:], "truncated"),
])
def test_corruption_is_refused_naming_the_file(tmp_path, images, mutate, message):
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(mutate(idx_bytes(images)))
    with pytest.raises(DataFileError, match=message) as info:
        read_idx(path, 3)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_truncated_gzip_is_refused(tmp_path, images):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(idx_bytes(images))[:-20])
    with pytest.raises(DataFileError, match="gzip") as info:
        read_idx(path, 3)
    assert "x.gz" in str(info.value)


def test_huge_declared_dimensions_allocate_nothing():
    header = struct.pack(">BBBB", 0, 0, 8, 3) + struct.pack(">3I", 2**32 - 1, 2**32 - 1, 2**32 - 1)
    with pytest.raises(DataFileError, match="truncated"):
        parse_idx(header + b"\x00" * 16, "huge")
