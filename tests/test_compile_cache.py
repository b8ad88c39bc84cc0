"""Compiled kernels are cached on disk: a second process loads them instead of compiling.

Each test copies the package to a temporary directory, so the cache starts empty
and its location is under the test's control, and runs real processes.
"""

import pytest

from tests.cachecheck import index_files, package_copy, run_training


@pytest.mark.slow
def test_second_process_loads_compiled_kernels_from_the_package_cache(tmp_path):
    root = package_copy(tmp_path)
    cold = run_training(root, tmp_path)
    warm = run_training(root, tmp_path)
    assert cold["misses"] >= 1 and cold["hits"] == 0
    assert warm["hits"] >= 1 and warm["misses"] == 0
    assert warm["digest"] == cold["digest"]
    assert index_files(root / "fastsoftmax" / "kernels" / "__pycache__")
    assert not index_files(tmp_path / "user-cache")


@pytest.mark.slow
def test_unwritable_package_directory_falls_back_to_the_user_cache(tmp_path):
    root = package_copy(tmp_path)
    # A file where the cache directory would go: unwritable even for root, which
    # ignores permission bits.
    (root / "fastsoftmax" / "kernels" / "__pycache__").write_text("not a directory")
    cold = run_training(root, tmp_path)
    warm = run_training(root, tmp_path)
    assert warm["hits"] >= 1 and warm["misses"] == 0
    assert warm["digest"] == cold["digest"]
    assert index_files(tmp_path / "user-cache" / "numba")


@pytest.mark.slow
def test_cache_can_be_switched_off(tmp_path):
    root = package_copy(tmp_path)
    first = run_training(root, tmp_path, FASTSOFTMAX_NO_CACHE="1")
    second = run_training(root, tmp_path, FASTSOFTMAX_NO_CACHE="1")
    assert first["hits"] == second["hits"] == 0
    assert second["digest"] == first["digest"]
    assert not index_files(root / "fastsoftmax") and not index_files(tmp_path / "user-cache")
