"""Sample data: a simulated raw SIM stack, and a real one (B-SIM HeLa mitochondria).

The real set is ``raw_images.tif`` of LabPresse/B-SIM example 2 (MIT licence, text in
``sample_data/LICENSE.B-SIM.txt``): 3 angles x 3 phases of 120 x 120 pixels, NA 1.3, emission
660 nm, 65 nm camera pixels at the sample, offset 100 ADU, gain 2 e-/ADU (Saurabh et al.,
npj Imaging 3, 5 (2025)).
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import numpy as np

BSIM_OPTICS = {"na": 1.3, "wavelength_nm": 660.0, "pixel_size_nm": 65.0}


def _layer(data: np.ndarray, name: str, metadata: dict[str, Any]) -> list[tuple]:
    px_um = metadata["pixel_size_nm"] / 1000.0
    kwargs = {
        "name": name,
        "scale": (1.0, px_um, px_um),
        "units": ("pixel", "µm", "µm"),
        "metadata": metadata,
        "colormap": "gray",
        "axis_labels": ("angle·phase", "y", "x"),
    }
    return [(data, kwargs, "image")]


def simulated_raw(shape: tuple[int, int] = (256, 256), seed: int = 0) -> list[tuple]:
    """A simulated raw SIM set (9, Y, X): filaments and beads, 3 angles x 3 phases."""
    from scope.optics import OpticalSetup
    from scope.sim.forward import simulate_raw
    from scope.sim.params import SIMParameters
    from scope.sim.samples import make_sample

    setup = OpticalSetup(na=1.2, wavelength_nm=525, pixel_size_nm=65)
    params = SIMParameters.equidistant([10, 70, 130], period_nm=260, modulation=0.8)
    truth = make_sample((2 * shape[0], 2 * shape[1]), "mixed", seed=seed)
    raw = simulate_raw(truth, params, setup, rng=seed, offset_adu=100)
    meta = {
        "scope_kind": "raw",
        "pixel_size_nm": 65.0,
        "camera_pixel_size_nm": 65.0,
        "wavelength_nm": 525.0,
        "na": 1.2,
        "n_angles": 3,
        "n_phases": 3,
        "offset_adu": 100.0,
        "sim_parameters": params.to_dict(),
        "source_path": "simulated",
    }
    return _layer(raw.astype(np.float32), "simulated raw", meta)


def bsim_hela_mitochondria() -> list[tuple]:
    """The real B-SIM HeLa mitochondria set with its optics (see the module docstring)."""
    import tifffile

    ref = resources.files("scope.napari") / "sample_data" / "bsim_hela_mitochondria.tif"
    with resources.as_file(ref) as path:
        raw = tifffile.imread(path).astype(np.float32)
    meta = {
        "scope_kind": "raw",
        **BSIM_OPTICS,
        "camera_pixel_size_nm": 65.0,
        "n_angles": 3,
        "n_phases": 3,
        "offset_adu": 100.0,
        "source_path": "LabPresse/B-SIM example_2 raw_images.tif (MIT)",
        "licence": "MIT, Copyright (c) 2023 Ayush Saurabh (sample_data/LICENSE.B-SIM.txt)",
    }
    return _layer(raw, "B-SIM HeLa mitochondria raw", meta)
