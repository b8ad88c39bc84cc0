"""Random and mutated bytes into the IDX parser and the model loader: only the library's
errors come out, never a crash, a hang, or a large allocation."""

import gzip
import resource
import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastsoftmax as fs
from fastsoftmax.data.idx import read_idx
from fastsoftmax.errors import DataFileError, ModelFileError

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
# Any allocation beyond this fails the test instead of swapping the machine.
MEMORY_CAP = 4 * 2**30


@pytest.fixture(autouse=True, scope="module")
def capped_memory():
    """Cap this process's address space while fuzzing, so a huge allocation shows as a MemoryError."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    used = _address_space()
    resource.setrlimit(resource.RLIMIT_AS, (used + MEMORY_CAP, hard))
    yield
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _address_space():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * resource.getpagesize()


def _idx(shape, fill=7):
    return struct.pack(">BBBB", 0, 0, 8, len(shape)) + struct.pack(f">{len(shape)}I", *shape) + \
        bytes([fill]) * int(np.prod(shape))


def _mutate(data: bytes, draw_ops):
    data = bytearray(data)
    for kind, pos, value in draw_ops:
        if not data:
            break
        pos %= len(data)
        if kind == "flip":
            data[pos] ^= 1 << (value % 8)
        elif kind == "set":
            data[pos] = value % 256
        elif kind == "truncate":
            del data[pos:]
        else:
            data[pos:pos] = bytes([value % 256]) * (value % 9)
    return bytes(data)


OPS = st.lists(st.tuples(st.sampled_from(["flip", "set", "truncate", "insert"]), st.integers(0, 10**6),
                         st.integers(0, 255)), min_size=1, max_size=6)


def _read(tmp_path, data, compress):
    path = tmp_path / ("f.gz" if compress else "f")
    path.write_bytes(gzip.compress(data) if compress else data)
    try:
        return read_idx(path)
    except DataFileError:
        return None


@FUZZ
@given(data=st.binary(max_size=300), compress=st.booleans())
def test_idx_random_bytes(tmp_path, data, compress):
    _read(tmp_path, data, compress)


@FUZZ
@given(ops=OPS, compress=st.booleans(), gz_after=st.booleans())
def test_idx_mutations(tmp_path, ops, compress, gz_after):
    good = _idx((3, 4, 5))
    if gz_after:  # mutate the compressed stream itself
        path = tmp_path / "m.gz"
        path.write_bytes(_mutate(gzip.compress(good), ops))
        try:
            read_idx(path)
        except DataFileError:
            pass
    else:
        result = _read(tmp_path, _mutate(good, ops), compress)
        assert result is None or result.dtype == np.uint8


@FUZZ
@given(dims=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=4), compress=st.booleans())
def test_idx_huge_declared_dimensions(tmp_path, dims, compress):
    header = struct.pack(">BBBB", 0, 0, 8, len(dims)) + struct.pack(f">{len(dims)}I", *dims)
    _read(tmp_path, header + b"\x01" * 64, compress)


@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory):
    rng = np.random.default_rng(0)
    model = fs.SoftmaxRegression(batch_size=10, progress=False).fit(rng.integers(0, 256, (40, 6), dtype=np.uint8),
                                                     rng.integers(0, 3, 40), steps=3, n_classes=3)
    return model.save(tmp_path_factory.mktemp("model") / "m.npz").read_bytes()


def _load(tmp_path, data):
    path = tmp_path / "fuzzed.npz"
    path.write_bytes(data)
    try:
        model = fs.SoftmaxRegression.load(path)
    except ModelFileError:
        return None
    assert np.all(np.isfinite(model.W))
    return model


@FUZZ
@given(ops=OPS)
def test_model_file_mutations(tmp_path, model_bytes, ops):
    _load(tmp_path, _mutate(model_bytes, ops))


@FUZZ
@given(data=st.binary(max_size=400))
def test_model_file_random_bytes(tmp_path, data):
    _load(tmp_path, b"PK\x03\x04" + data)


def test_model_with_a_huge_declared_array_is_refused_unread(tmp_path):
    import io
    import zipfile

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (10**6, 10**6)})
    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("W.npy", header.getvalue() + b"\0" * 64)
    with pytest.raises(ModelFileError, match="declares shape"):
        fs.SoftmaxRegression.load(path)


def test_gzip_bomb_behind_a_small_header_is_not_inflated(tmp_path):
    """A header declaring 12 bytes, followed by 1 GiB of zeros (1 MB compressed): only 13 bytes
    are ever decompressed, well inside the memory cap of this module."""
    packer = zlib.compressobj(1, zlib.DEFLATED, 31)  # wbits 31: gzip container
    chunk = bytes(64 * 2**20)
    parts = [packer.compress(_idx((3, 4)))] + [packer.compress(chunk) for _ in range(16)] + [packer.flush()]
    path = tmp_path / "bomb.gz"
    path.write_bytes(b"".join(parts))
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (_address_space() + 512 * 2**20, hard))
    try:
        with pytest.raises(DataFileError, match="trailing bytes"):
            read_idx(path)
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
