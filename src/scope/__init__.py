"""scope — an affordable structured-illumination microscope and its software.

The package is layered:

- :mod:`scope.backend` chooses the array module (numpy or cupy) and the FFTs.
- :mod:`scope.optics` models the optical setup and its transfer functions.
- :mod:`scope.sim` is the reconstruction core: pure array functions.
- :mod:`scope.devices` drives cameras and the pattern controller (with simulators).
- :mod:`scope.io` reads and writes raw and reconstructed data.
- :mod:`scope.cli` is the ``scope`` command; :mod:`scope.napari` the napari plugin.
"""

from __future__ import annotations

import logging

from scope.errors import (
    DataFormatError,
    DeviceError,
    ProtocolError,
    ReconstructionError,
    ScopeError,
)

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "DataFormatError",
    "DeviceError",
    "ProtocolError",
    "ReconstructionError",
    "ScopeError",
    "__version__",
]
