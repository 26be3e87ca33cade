"""One error hierarchy for the whole package.

Every error raised on purpose by scope derives from :class:`ScopeError`, so callers can catch
them all at once. Messages say what was expected, what was found, and what to do.
"""

from __future__ import annotations


class ScopeError(Exception):
    """Root of all errors raised by scope."""


class ConfigurationError(ScopeError, ValueError):
    """A parameter or setting is out of range or inconsistent."""


class DataFormatError(ScopeError, ValueError):
    """Input data has the wrong shape, type, values or file format."""


class ReconstructionError(ScopeError):
    """The reconstruction could not proceed (e.g. the pattern could not be found)."""


class DeviceError(ScopeError):
    """A device (camera, controller) failed, timed out or is not connected."""


class DeviceTimeoutError(DeviceError, TimeoutError):
    """A device did not answer within its timeout."""


class ProtocolError(DeviceError):
    """The controller answered something that does not follow the serial protocol."""


class AcquisitionError(ScopeError):
    """Synchronised acquisition failed or lost synchronisation."""
