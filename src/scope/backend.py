"""Array backend: numpy on the CPU, cupy on a GPU, one code path.

The backend is chosen once — explicitly, ``"auto"``, or through the ``SCOPE_BACKEND``
environment variable — and passed down as an object. cupy is imported lazily, only when asked
for, so the package imports on machines without a GPU.

Examples
--------
>>> be = get_backend("numpy")
>>> x = be.xp.ones((4, 4), dtype=be.xp.float32)
>>> be.fft.rfft2(x).shape
(4, 3)
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from types import ModuleType
from typing import Any, Literal

import numpy as np

from scope.errors import ConfigurationError

log = logging.getLogger(__name__)

BackendName = Literal["numpy", "cupy", "auto"]
ENV_VAR = "SCOPE_BACKEND"


@dataclass(frozen=True)
class Backend:
    """An array module with its FFT functions.

    Attributes
    ----------
    name : str
        ``"numpy"`` or ``"cupy"``.
    xp : module
        The array namespace (numpy or cupy).
    fft : object
        An object with ``fft2``, ``ifft2``, ``rfft2``, ``irfft2`` bound to the backend's FFT
        library (scipy.fft with ``workers`` on the CPU, cupyx.scipy.fft on the GPU).
    threads : int
        CPU threads that share element-wise work split into row blocks (1 on a GPU, where one
        kernel launch already uses the whole device).
    """

    name: str
    xp: ModuleType
    fft: Any = field(repr=False)
    threads: int = 1

    def row_blocks(self, n_rows: int, *, min_rows: int = 32) -> list[slice]:
        """Split ``range(n_rows)`` into at most ``threads`` contiguous blocks.

        Blocks are at least ``min_rows`` long, so small images are not split at all.
        """
        k = max(1, min(self.threads, n_rows // max(min_rows, 1)))
        bounds = [round(i * n_rows / k) for i in range(k + 1)]
        return [slice(a, b) for a, b in itertools.pairwise(bounds)]

    def single_threaded_blas(self) -> Any:
        """Context in which BLAS (numpy's matrix products) runs on the calling thread only.

        Our matrix products are small or already split across threads; OpenBLAS's own
        threads would only spin after each call (for milliseconds) and starve the FFT threads
        that run next. A no-op on the GPU.
        """
        if self.name != "numpy":
            return contextlib.nullcontext()
        return _one_blas_thread()

    def run_blocks(self, fn: Callable[[int], None], n_blocks: int) -> None:
        """Call ``fn(i)`` for ``i in range(n_blocks)``, on the backend's threads when > 1.

        numpy releases the GIL inside its element-wise loops and BLAS calls, so blocks of
        rows processed by different threads run in parallel. The error of the first block that
        fails (lowest ``i``) propagates, once every block has ended.
        """
        if self.name != "numpy":
            for i in range(n_blocks):
                fn(i)
            return
        # the blocks are the parallelism: BLAS must not start threads of its own as well
        with self.single_threaded_blas():
            if n_blocks <= 1 or self.threads <= 1:
                for i in range(n_blocks):
                    fn(i)
            else:
                # the calling thread takes the first block itself: one hand-over fewer
                pool = _thread_pool(self.threads)
                others = [pool.submit(fn, i) for i in range(1, n_blocks)]
                error: BaseException | None = None
                try:
                    fn(0)
                except BaseException as err:
                    error = err
                for f in others:  # every block ends before this returns or raises
                    try:
                        f.result()
                    except BaseException as err:
                        error = error or err
                if error is not None:  # the first block's error, as a loop would raise it
                    raise error

    def asarray(self, a: Any, dtype: Any = None) -> Any:
        """Move ``a`` onto this backend's device (no copy when already there)."""
        return self.xp.asarray(a, dtype=dtype)

    def to_numpy(self, a: Any) -> np.ndarray:
        """Copy ``a`` back to host memory as a numpy array (no copy for numpy)."""
        if self.name == "cupy":
            return self.xp.asnumpy(a)
        return np.asarray(a)

    def synchronize(self) -> None:
        """Wait for queued device work (no-op on the CPU); needed for honest timings."""
        if self.name == "cupy":
            self.xp.cuda.Stream.null.synchronize()


class _ScipyFFT:
    """scipy.fft with a fixed number of worker threads; keeps float32 as complex64."""

    def __init__(self, workers: int) -> None:
        import scipy.fft

        self._f = scipy.fft
        self.workers = workers

    def fft2(self, a: Any, s: Any = None) -> Any:
        return self._f.fft2(a, s=s, workers=self.workers)

    def ifft2(self, a: Any, s: Any = None) -> Any:
        return self._f.ifft2(a, s=s, workers=self.workers)

    def rfft2(self, a: Any, s: Any = None) -> Any:
        return self._f.rfft2(a, s=s, workers=self.workers)

    def irfft2(self, a: Any, s: Any = None) -> Any:
        return self._f.irfft2(a, s=s, workers=self.workers)

    def fftfreq(self, n: int, d: float = 1.0) -> Any:
        return self._f.fftfreq(n, d)

    def rfftfreq(self, n: int, d: float = 1.0) -> Any:
        return self._f.rfftfreq(n, d)


class _CupyFFT:
    """cupyx.scipy.fft (plans cached by cupy)."""

    def __init__(self) -> None:
        import cupyx.scipy.fft

        self._f = cupyx.scipy.fft

    def fft2(self, a: Any, s: Any = None) -> Any:
        return self._f.fft2(a, s=s)

    def ifft2(self, a: Any, s: Any = None) -> Any:
        return self._f.ifft2(a, s=s)

    def rfft2(self, a: Any, s: Any = None) -> Any:
        return self._f.rfft2(a, s=s)

    def irfft2(self, a: Any, s: Any = None) -> Any:
        return self._f.irfft2(a, s=s)

    def fftfreq(self, n: int, d: float = 1.0) -> Any:
        return self._f.fftfreq(n, d)

    def rfftfreq(self, n: int, d: float = 1.0) -> Any:
        return self._f.rfftfreq(n, d)


def cupy_available() -> bool:
    """True when cupy imports and sees at least one CUDA device."""
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # ImportError, CUDARuntimeError, missing driver ...
        return False


@cache
def _blas_limiter() -> Any:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController().select(user_api="blas")


_BLAS_LOCK = threading.Lock()
_blas_users = 0
_blas_saved: Any = None


@contextlib.contextmanager
def _one_blas_thread() -> Iterator[None]:
    """BLAS on one thread while any caller is inside; the setting is process-wide, so the
    first one in limits it and the last one out restores it (threads may overlap)."""
    global _blas_users, _blas_saved
    with _BLAS_LOCK:
        if _blas_users == 0:
            _blas_saved = _blas_limiter().limit(limits=1)
        _blas_users += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _blas_users -= 1
            if _blas_users == 0:
                _blas_saved.restore_original_limits()
                _blas_saved = None


@cache
def _thread_pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="scope-backend")


@cache
def _make(name: str, workers: int) -> Backend:
    if name == "numpy":
        return Backend("numpy", np, _ScipyFFT(workers), threads=workers)
    import cupy

    return Backend("cupy", cupy, _CupyFFT())


def get_backend(
    name: BackendName | Backend | None = None, *, workers: int | None = None
) -> Backend:
    """Return the array backend.

    Parameters
    ----------
    name : {"numpy", "cupy", "auto"} or Backend, optional
        ``None`` reads the ``SCOPE_BACKEND`` environment variable (default ``"auto"``).
        ``"auto"`` picks cupy when a CUDA device is usable, numpy otherwise.
    workers : int, optional
        Threads on the CPU, for the FFTs and for element-wise work split into row blocks
        (default: all cores).

    Raises
    ------
    ConfigurationError
        For an unknown name, or ``"cupy"`` on a machine where cupy cannot run.
    """
    if isinstance(name, Backend):
        return name
    if name is None:
        name = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"  # type: ignore[assignment]
    if name not in ("numpy", "cupy", "auto"):
        raise ConfigurationError(
            f"unknown backend {name!r}: expected 'numpy', 'cupy' or 'auto' "
            f"(check the --backend flag or the {ENV_VAR} environment variable)"
        )
    if name == "auto":
        name = "cupy" if cupy_available() else "numpy"
        log.debug("auto backend chose %s", name)
    elif name == "cupy" and not cupy_available():
        raise ConfigurationError(
            "backend 'cupy' was requested but cupy cannot use a CUDA device here: install the "
            "gpu extra (pip install 'scope-sim[gpu]') on a machine with an NVIDIA GPU, "
            "or use --backend numpy"
        )
    return _make(name, workers or os.cpu_count() or 1)
