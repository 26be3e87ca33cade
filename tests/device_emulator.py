"""A strict stand-in for cupy on the CPU, to run the GPU code path where no GPU is lent.

cupy arrays live in device memory: numpy cannot read them implicitly (``np.asarray(a)``
raises ``TypeError``), cupy functions refuse numpy arrays, and results of reductions stay on
the device as 0-d arrays. Code that mixes host and device arrays therefore works with numpy
and fails on a GPU. :class:`DeviceArray` wraps a numpy array with those same rules, and
:func:`emulated_gpu_backend` builds a :class:`scope.backend.Backend` named ``"cupy"`` on it, so
every ``backend.name == "cupy"`` branch and every host/device boundary runs in the tests.

What it cannot show: cupy's numerical differences (its FFT library, float rounding) and
functions numpy has but cupy lacks; those need the GPU machine (``test_backends_agree[cupy]``).
"""

from __future__ import annotations

import types
from typing import Any

import numpy as np
import scipy.fft

from scope.backend import Backend

_MESSAGE = (
    "Implicit conversion to a NumPy array is not allowed. "
    "Please use `.get()` to construct a NumPy array explicitly."
)


def _unwrap(obj: Any, *, allow_host: bool = False) -> Any:
    """Device arrays to their numpy payload (recursively in lists/tuples/dicts); host arrays
    refused unless ``allow_host`` (cupy functions raise on numpy arrays)."""
    if isinstance(obj, DeviceArray):
        return obj._a
    if isinstance(obj, np.ndarray):
        if not allow_host:
            raise TypeError(f"Unsupported type {type(obj)}: a numpy array where cupy wants one")
        return obj
    if isinstance(obj, (list, tuple)):
        return type(obj)(_unwrap(o, allow_host=allow_host) for o in obj)
    if isinstance(obj, dict):
        return {k: _unwrap(v, allow_host=allow_host) for k, v in obj.items()}
    return obj


def _wrap(obj: Any) -> Any:
    """numpy results to device arrays (scalars from reductions become 0-d arrays, as in cupy)."""
    if isinstance(obj, np.ndarray):
        return DeviceArray(obj)
    if isinstance(obj, np.generic):
        return DeviceArray(np.asarray(obj))
    if isinstance(obj, (list, tuple)) and any(isinstance(o, np.ndarray) for o in obj):
        return type(obj)(_wrap(o) for o in obj)
    return obj


class DeviceArray(np.lib.mixins.NDArrayOperatorsMixin):
    """A numpy array that behaves like a cupy array towards numpy and towards host code."""

    __slots__ = ("_a",)

    def __init__(self, a: np.ndarray) -> None:
        self._a = a

    # --- what cupy refuses
    def __array__(self, *args: Any, **kwargs: Any) -> np.ndarray:
        raise TypeError(_MESSAGE)

    # --- what cupy allows: numpy ufuncs and functions dispatch to cupy (device inputs only)
    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        out = kwargs.get("out")
        args = _unwrap(inputs)
        if out is not None:
            kwargs["out"] = _unwrap(out)
        result = getattr(ufunc, method)(*args, **kwargs)
        return out[0] if out is not None and len(out) == 1 else _wrap(result)

    def __array_function__(self, func: Any, types_: Any, args: Any, kwargs: Any) -> Any:
        return _wrap(func(*_unwrap(args), **_unwrap(kwargs)))

    def get(self) -> np.ndarray:
        """Copy to the host (cupy's ``ndarray.get``)."""
        return self._a.copy()

    # --- attributes and methods, results kept on the device
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    real = property(lambda self: DeviceArray(self._a.real))
    imag = property(lambda self: DeviceArray(self._a.imag))
    T = property(lambda self: DeviceArray(self._a.T))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # no __array_interface__ & co: numpy must not see the data
            raise AttributeError(name)
        attr = getattr(self._a, name)
        if callable(attr):
            return lambda *a, **k: _wrap(attr(*_unwrap(a, allow_host=True), **_unwrap(k)))
        return _wrap(attr)

    def __getitem__(self, key: Any) -> Any:
        return _wrap(self._a[_unwrap(key, allow_host=True)])

    def __setitem__(self, key: Any, value: Any) -> None:
        self._a[_unwrap(key, allow_host=True)] = _unwrap(value, allow_host=True)

    def __len__(self) -> int:
        return len(self._a)

    def __iter__(self) -> Any:
        return (_wrap(x) for x in self._a)

    # 0-d and one-element arrays convert to Python numbers (cupy synchronises and copies)
    def __float__(self) -> float:
        return float(self._a)

    def __int__(self) -> int:
        return int(self._a)

    def __index__(self) -> int:
        return self._a.__index__()

    def __complex__(self) -> complex:
        return complex(self._a)

    def __bool__(self) -> bool:
        return bool(self._a)

    def __repr__(self) -> str:
        return f"DeviceArray({self._a!r})"


def _device_function(fn: Any, *, allow_host: bool = False) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        return _wrap(fn(*_unwrap(args, allow_host=allow_host), **_unwrap(kwargs)))

    call.__name__ = getattr(fn, "__name__", "device_function")
    return call


class _DeviceNamespace(types.SimpleNamespace):
    """numpy's namespace (or a submodule) with device-array rules: types, constants and
    submodules pass through, functions take and give device arrays."""

    def __init__(self, module: Any, **extra: Any) -> None:
        super().__init__(**extra)
        object.__setattr__(self, "_module", module)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._module, name)
        if isinstance(attr, type) or not callable(attr):
            return attr if not isinstance(attr, types.ModuleType) else _DeviceNamespace(attr)
        return _device_function(attr)


def _asarray(a: Any, dtype: Any = None, **kwargs: Any) -> DeviceArray:
    if isinstance(a, DeviceArray):
        return DeviceArray(a._a if dtype is None else a._a.astype(dtype, copy=False))
    return DeviceArray(np.array(_unwrap(a, allow_host=True), dtype=dtype, **kwargs))


def _asnumpy(a: Any) -> np.ndarray:
    return a.get() if isinstance(a, DeviceArray) else np.asarray(a)


def emulated_cupy() -> _DeviceNamespace:
    """A cupy-like module backed by numpy (``asarray``/``array`` copy host data to the
    'device', ``asnumpy`` back; ``cuda.Stream.null.synchronize`` does nothing)."""
    stream = types.SimpleNamespace(synchronize=lambda: None)
    cuda = types.SimpleNamespace(Stream=types.SimpleNamespace(null=stream))
    return _DeviceNamespace(np, asarray=_asarray, array=_asarray, asnumpy=_asnumpy, cuda=cuda)


class _EmulatedFFT:
    """cupyx.scipy.fft's interface on scipy.fft, device arrays only."""

    def __init__(self) -> None:
        for name in ("fft2", "ifft2", "rfft2", "irfft2", "fftfreq", "rfftfreq", "fft", "rfft"):
            setattr(self, name, _device_function(getattr(scipy.fft, name)))


def emulated_gpu_backend() -> Backend:
    """A :class:`scope.backend.Backend` named ``"cupy"`` whose arrays follow cupy's rules."""
    return Backend("cupy", emulated_cupy(), _EmulatedFFT())  # type: ignore[arg-type]
