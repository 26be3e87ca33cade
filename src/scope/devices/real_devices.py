"""Open a real camera and the serial pattern controller that triggers it, as one pair.

Used by ``scope acquire`` and the napari live view when hardware is named (the simulated
microscope, :mod:`scope.devices.simulated_microscope`, is their default).
"""

from __future__ import annotations

from typing import Any

from scope.errors import ConfigurationError

CAMERA_SPECS = "sim, genicam[:INDEX_OR_ID] or v4l2:/dev/videoN"


def open_real_devices(
    camera_spec: str, controller_port: str | None, *, cti: str | None = None
) -> tuple[Any, Any, Any]:
    """``(closer, camera, controller)``, both connected; ``closer.close()`` closes both.

    Parameters
    ----------
    camera_spec : str
        ``genicam[:INDEX_OR_ID]``, ``v4l2:/dev/videoN`` or ``/dev/videoN``.
    controller_port : str
        Serial port of the pattern controller (``/dev/ttyACM0``); the emulator (``sim://``)
        cannot trigger a real camera.
    cti : str, optional
        GenTL producer for a GenICam camera.

    Raises
    ------
    ConfigurationError
        For an unknown camera, or no (or an emulated) controller.
    """
    if not controller_port or controller_port == "sim://":
        raise ConfigurationError(
            "a real camera needs the serial port of the pattern controller that triggers it "
            "(--controller PORT; `scope devices` lists the ports with a controller): the "
            "emulated controller sim:// cannot trigger a real camera"
        )
    kind, _, rest = camera_spec.partition(":")
    if kind == "genicam":
        from scope.devices.genicam import GenICamCamera

        device: int | str = int(rest) if rest.isdigit() else (rest or 0)
        camera: Any = GenICamCamera(cti, device=device)
    elif kind == "v4l2" or camera_spec.startswith("/dev/video"):
        from scope.devices.v4l2 import V4L2Camera

        camera = V4L2Camera(rest if kind == "v4l2" else camera_spec)
    else:
        raise ConfigurationError(f"unknown camera {camera_spec!r}: use {CAMERA_SPECS}")
    from scope.devices.serial_controller import SerialPatternController

    controller = SerialPatternController(controller_port)
    camera.connect()
    try:
        controller.connect()
    except BaseException:
        camera.close()
        raise
    return _Pair(camera, controller), camera, controller


class _Pair:
    """Closes the camera, then the controller (which sends SAFE: light off)."""

    def __init__(self, camera: Any, controller: Any) -> None:
        self.camera = camera
        self.controller = controller

    def close(self) -> None:
        try:
            self.camera.close()
        finally:
            self.controller.close()
