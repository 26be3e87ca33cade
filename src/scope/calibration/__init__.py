"""Calibration workflows whose results are saved into a setup's preset TOML.

- :mod:`scope.calibration.camera`: offset, gain and read noise (photon transfer), sCMOS maps.
- :mod:`scope.calibration.preset`: reading and updating the preset TOML.
"""

from __future__ import annotations
