"""Calibration workflows whose results are saved into a setup's preset TOML.

- :mod:`scope.calibration.camera`: offset, gain and read noise (photon transfer), sCMOS maps.
- :mod:`scope.calibration.pattern`: pattern angles, periods, phase steps and modulation from a
  uniform fluorescent slide or beads.
- :mod:`scope.calibration.otf`: measured detection OTF from bead images.
- :mod:`scope.calibration.registration`: illuminator-to-camera map (scale, rotation, mirror,
  translation) from the device gratings and a pattern calibration.
- :mod:`scope.calibration.preset`: reading and updating the preset TOML.

``scope calibrate camera|pattern|otf`` runs them on files.
"""

from __future__ import annotations
