"""V4L2/UVC camera: what can be tested without a device (format negotiation, ioctl layouts,
the error for a missing /dev/videoN). The device suite in test_camera_devices.py runs the rest
when a camera is plugged in."""

from __future__ import annotations

import pytest

from scope.devices.v4l2 import (
    _CONTROL,
    _FMTDESC,
    _FRMSIZE,
    _QUERYCTRL,
    VIDIOC_ENUM_FMT,
    VIDIOC_QUERYCTRL,
    V4L2Camera,
    V4L2Format,
    fourcc_to_str,
    negotiate_format,
)
from scope.errors import ConfigurationError, DeviceError

# what an Arducam AR0234 UVC camera lists (v4l2-ctl --list-formats-ext), abridged
AR0234 = [
    V4L2Format("MJPG", 1920, 1200), V4L2Format("MJPG", 1280, 720), V4L2Format("MJPG", 640, 480),
    V4L2Format("YUYV", 1920, 1200), V4L2Format("YUYV", 1280, 720), V4L2Format("YUYV", 640, 480),
]  # fmt: skip


def test_ioctl_structure_sizes_match_videodev2_h():
    # sizes from include/uapi/linux/videodev2.h on 64-bit Linux
    assert (_FMTDESC.size, _FRMSIZE.size, _QUERYCTRL.size, _CONTROL.size) == (64, 44, 68, 8)
    assert VIDIOC_ENUM_FMT == 0xC0405602  # _IOWR('V', 2, struct v4l2_fmtdesc)
    assert VIDIOC_QUERYCTRL == 0xC0445624  # _IOWR('V', 36, struct v4l2_queryctrl)
    assert fourcc_to_str(0x59455247) == "GREY"


def test_negotiation_prefers_mono_then_raw_then_mjpeg():
    mono = [*AR0234, V4L2Format("GREY", 1920, 1200), V4L2Format("Y16 ", 1920, 1200)]
    assert negotiate_format(mono) == V4L2Format("GREY", 1920, 1200)
    assert negotiate_format(AR0234).fourcc == "YUYV"  # raw luma before MJPEG
    # the smallest size that holds the ROI
    assert negotiate_format(AR0234, width=1000, height=700) == V4L2Format("YUYV", 1280, 720)
    assert negotiate_format(AR0234, width=600, height=400) == V4L2Format("YUYV", 640, 480)
    # Mono16 request: 16-bit first
    got = negotiate_format(mono, prefer=("Y16 ", "GREY"))
    assert got.fourcc == "Y16 "
    assert negotiate_format([V4L2Format("MJPG", 640, 480)]).fourcc == "MJPG"


def test_negotiation_errors_say_what_is_offered():
    with pytest.raises(ConfigurationError, match="H264"):
        negotiate_format([V4L2Format("H264", 1920, 1080)])
    with pytest.raises(ConfigurationError, match="at least 4000x3000"):
        negotiate_format(AR0234, width=4000, height=3000)


def test_missing_device_is_a_clear_error(tmp_path):
    cam = V4L2Camera(str(tmp_path / "video42"))  # no I/O in __init__
    assert not cam.is_connected
    with pytest.raises(DeviceError, match=r"does not exist.*scope devices"):
        cam.connect()
    with pytest.raises(DeviceError, match=r"not a video capture device|cannot open"):
        V4L2Camera("/dev/null").connect()
