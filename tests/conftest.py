"""Shared fixtures: the array backends that can run here, and paths to the test data."""

from __future__ import annotations

from pathlib import Path

import pytest

from scope.backend import cupy_available, get_backend

DATA = Path(__file__).parent / "data"

#: "emulated-gpu": the cupy code path on the CPU, with cupy's host/device rules
#: (tests/device_emulator.py); "cupy" needs a GPU
_BACKENDS = ["numpy", "emulated-gpu", pytest.param("cupy", marks=pytest.mark.gpu)]


def pytest_collection_modifyitems(config, items):
    if cupy_available():
        return
    skip = pytest.mark.skip(reason="cupy with a CUDA device is not available on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(params=_BACKENDS)
def backend(request):
    """Every backend that can run here: numpy and the emulated GPU always, cupy where a GPU
    is present."""
    if request.param == "emulated-gpu":
        from device_emulator import emulated_gpu_backend

        return emulated_gpu_backend()
    return get_backend(request.param)


@pytest.fixture
def numpy_backend():
    return get_backend("numpy")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA
