# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Calibrating your microscope
#
# Four measurements turn a home-built SIM microscope into a calibrated instrument, and each is
# saved into the setup's preset TOML under `[calibration.*]`:
#
# 1. **camera**: offset, gain (photo-electrons per ADU) and read noise by photon transfer, with
#    per-pixel maps for sCMOS cameras;
# 2. **pattern**: the angle, period and phase steps of every pattern orientation, from a uniform
#    fluorescent slide;
# 3. **OTF**: the detection transfer function measured on sub-resolution beads;
# 4. **registration**: where the pattern device's pixels land on the sample (scale, rotation,
#    mirror), for patterns that come out at the sample as planned.
#
# Here the microscope is simulated, so every result can be checked against the truth. On the
# real instrument you record the same images and run the same calls (or `scope calibrate`).

# %%
import math
import tempfile
import tomllib
from pathlib import Path

import numpy as np
import tifffile

from scope.calibration.camera import (
    photon_transfer,
    pixel_maps,
    read_scmos_maps,
    save_camera_calibration,
    simulate_frames,
)
from scope.calibration.otf import measure_otf, save_measured_otf, sphere_transfer
from scope.calibration.pattern import calibrate_pattern, save_pattern_calibration
from scope.optics import OpticalSetup, ideal_otf, pixel_transfer
from scope.sim.forward import simulate_raw
from scope.sim.params import AngleParameters, SIMParameters

rng = np.random.default_rng(2026)
workdir = Path(tempfile.mkdtemp(prefix="scope-calibration-"))
preset = workdir / "my_setup.toml"
_ = preset.write_text("[optics]\nna = 1.2\nwavelength_nm = 525.0\npixel_size_nm = 65.0\n")

# %% [markdown]
# ## 1. Camera: photon transfer
#
# Record dark frames (cap on) and, at the same exposure, frames of a uniform light field at a few
# brightness levels. The temporal variance of each pixel grows linearly with its mean signal; the
# slope is the gain in ADU per electron and the dark variance is the read noise.

# %%
TRUE_GAIN_ADU_PER_E, TRUE_READ_NOISE_E, TRUE_OFFSET = 2.2, 1.6, 100.0
camera = dict(
    gain_adu_per_e=TRUE_GAIN_ADU_PER_E,
    read_noise_e=TRUE_READ_NOISE_E,
    offset_adu=TRUE_OFFSET,
    rng=rng,
)
dark = simulate_frames(np.zeros((64, 64)), 50, **camera)
flats = [
    simulate_frames(np.full((64, 64), level), 50, **camera) for level in (50, 200, 600, 1500, 3000)
]

cal = photon_transfer(dark, flats, saturation_adu=65535)
print(f"offset     {cal.offset_adu:8.2f} ADU   (true {TRUE_OFFSET})")
print(f"gain       {cal.gain_e_per_adu:8.4f} e-/ADU (true {1 / TRUE_GAIN_ADU_PER_E:.4f})")
print(f"read noise {cal.read_noise_e:8.3f} e-    (true {TRUE_READ_NOISE_E})")
assert abs(cal.gain_adu_per_e / TRUE_GAIN_ADU_PER_E - 1) < 0.03
assert abs(cal.read_noise_e / TRUE_READ_NOISE_E - 1) < 0.10

# %% [markdown]
# An sCMOS camera has one amplifier per pixel: measure maps instead (more frames per level give
# better per-pixel estimates). Real maps from a published data set (B-SIM, HeLa mitochondria) are
# read and applied the same way: `electrons = (raw - offset) / gain`, pixel by pixel.

# %%
maps = pixel_maps(dark, flats)
print("median gain from the maps:", float(np.median(maps.gain_adu_per_e)), "ADU/e-")

# the repository holds the files used here; run from anywhere inside it (or as a script)
here = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
root = next((p for p in [here, *here.parents] if (p / "tests" / "data").is_dir()), None)
if root is None:
    raise FileNotFoundError("open this notebook inside the scope repository: it reads tests/data/")
bsim = root / "tests" / "data" / "bsim-hela-mitochondria"
bsim_maps = read_scmos_maps(
    bsim / "offset_map.tif", bsim / "gain_map.tif", bsim / "variance_map.tif"
)
raw_bsim = tifffile.imread(bsim / "raw_images.tif")
electrons = bsim_maps.to_electrons(raw_bsim)
print(
    f"B-SIM: raw {raw_bsim.mean():.1f} ADU -> {electrons.mean():.1f} photo-electrons per pixel;"
    f" read noise {float(np.median(bsim_maps.read_noise_e)):.2f} e- (median)"
)

save_camera_calibration(preset, cal)

# %% [markdown]
# ## 2. Pattern: angle, period and phase steps from a uniform slide
#
# On a uniform fluorescent slide the camera sees the illumination pattern itself. The calibration
# finds each orientation's wave vector to a small fraction of a pixel and fits every frame's
# phase. Here the "real" pattern has slightly different periods per angle and uneven phase steps,
# as a projector gives them; the slide is unevenly lit.

# %%
setup = OpticalSetup(na=1.2, wavelength_nm=525, pixel_size_nm=65)
truth_angles = []
for angle, period in ((12.3, 271.0), (72.1, 268.5), (132.4, 273.2)):
    phases = tuple(2 * math.pi * n / 3 + rng.uniform(-0.3, 0.3) for n in range(3))
    truth_angles.append(AngleParameters(angle, period, phases, modulation=0.8))
truth = SIMParameters(tuple(truth_angles))

yy, xx = np.mgrid[:256, :256]
slide = (1.0 - 0.3 * ((xx - 128) ** 2 + (yy - 100) ** 2) / 128**2).astype(np.float32)
sets = np.stack(
    [
        simulate_raw(slide, truth, setup, photons_peak=2000, background_photons=50, rng=s)
        for s in range(2)
    ]
)
pattern = calibrate_pattern(sets, setup, offset_adu=cal.offset_adu)
for got, want, steps in zip(pattern.params.angles, truth.angles, pattern.phase_steps_rad):
    print(
        f"angle {got.angle_deg:8.3f} deg (true {want.angle_deg}), "
        f"period {got.period_nm:7.2f} nm (true {want.period_nm}), "
        f"steps {np.round(steps, 3)} rad (true {np.round(np.diff(want.phases_rad), 3)})"
    )
    assert abs(got.angle_deg - want.angle_deg) < 0.05
    assert abs(got.period_nm / want.period_nm - 1) < 5e-4
save_pattern_calibration(preset, pattern)

# %% [markdown]
# ## 3. OTF from beads
#
# Sparse 100 nm beads, imaged in focus. Isolated beads are found (close pairs and aggregates are
# left out), registered to a fraction of a pixel and averaged into a PSF whose Fourier transform,
# corrected for the bead size and the camera pixels, is the OTF. The simulated objective here is
# not ideal: its OTF falls faster than the textbook one (damping 0.6).


# %%
def bead_image(positions, damping=0.6, n=256, dx_um=0.065):
    f = np.fft.fftfreq(n, d=dx_um)
    fx, fy = f[None, :], f[:, None]
    k = np.hypot(fx, fy)
    h = ideal_otf(k, setup.cutoff_per_um, damping=damping) * pixel_transfer(fx, fy, dx_um)
    h = h * sphere_transfer(k, 100.0)
    spectrum = sum(np.exp(-2j * np.pi * (fx * x + fy * y) * dx_um) for y, x in positions)
    img = np.real(np.fft.ifft2(spectrum * h))
    return simulate_frames(img / img.max() * 3000 + 40, 1, offset_adu=100.0, rng=rng)[0]


beads = [
    (40.3, 44.7),
    (42.8, 120.2),
    (45.1, 200.6),
    (118.6, 42.2),
    (122.4, 205.9),
    (200.7, 40.9),
    (204.2, 121.3),
    (210.9, 203.4),
    (120.0, 118.0),
    (126.0, 125.0),
]
measured = measure_otf(bead_image(beads), 65.0, offset_adu=100.0, bead_diameter_nm=100.0)
print(
    f"{measured.n_beads} isolated beads used (of {len(beads)}: one close pair left out); "
    f"cutoff {measured.cutoff_per_um:.2f} /µm (2NA/λ = {setup.cutoff_per_um:.2f} /µm)"
)
for frac in (0.25, 0.5, 0.75):
    k = frac * setup.cutoff_per_um
    print(
        f"OTF at {frac:.2f} fc: measured {float(measured.to_otf()(k)):.3f}, "
        f"true {float(ideal_otf(k, setup.cutoff_per_um, damping=0.6)):.3f}"
    )
save_measured_otf(preset, measured)

# %% [markdown]
# ## 4. Is the pattern bent across the field?
#
# A projector's lens or a relay of stock lenses distorts the grating a little towards the edges
# of the field, so on a large sensor one pattern (one angle, period and phase per frame) no
# longer fits everywhere. The reconstruction notices it by itself (`scope reconstruct
# --pattern-map auto`, the default) and takes a smooth map of the pattern's phase out pixel by
# pixel; here is what it measures, on a simulated 512 x 512 field whose pattern is displaced by
# 1 % in the corners. On your microscope, `scope reconstruct --diagnostics` draws the same map
# as `<name>.pattern-map.png`.

# %%
from scope.sim import metrics
from scope.sim.estimate import estimate_parameters
from scope.sim.forward import simulate_raw
from scope.sim.params import SIMParameters
from scope.sim.pattern_map import plan_pattern_map
from scope.sim.pipeline import reconstruct_stack
from scope.sim.samples import make_sample

truth = SIMParameters.equidistant([12.0, 72.0, 132.0], period_nm=257.0, modulation=0.8)
field = make_sample((1024, 1024), "mixed", seed=0)
bent = simulate_raw(field, truth, setup, offset_adu=100, rng=1, pattern_distortion=0.01)
whole = estimate_parameters(bent, setup)
pattern_map = plan_pattern_map(bent, setup, whole, mode="auto")
tiles = pattern_map.tiled
print(
    f"corner drift from one pattern: up to {pattern_map.max_drift_rad:.2f} rad; map fitted to "
    f"{int(tiles.estimated.sum())} tiles within {pattern_map.residual_rad.max():.2f} rad"
)
for a, g in enumerate(whole.angles):
    periods = [t.angles[a].period_nm for t in tiles.tiles]
    print(
        f"angle {g.angle_deg:6.1f}°: period {g.period_nm:.1f} nm at the centre, "
        f"{min(periods):.1f}-{max(periods):.1f} nm across the tiles"
    )
kmax = max(math.hypot(*a.k_per_um) for a in truth.angles)
target = metrics.ideal_sim_target(
    field, pixel_size_nm=32.5, cutoff_per_um=setup.cutoff_per_um + kmax
)
for mode in ("off", "auto"):
    image, _ = reconstruct_stack(bent, setup, pattern_map=mode)
    error = metrics.normalized_rms_error(image, target, margin=40)
    print(f"pattern_map={mode!r}: error against the ideal SIM image {error:.3f}")
    if mode == "auto":
        assert error < 0.13

# %% [markdown]
# ## 5. Illuminator registration: where the device's pixels land on the sample
#
# The gratings a DMD or projector shows are known exactly on its own pixel grid; the pattern
# calibration (section 2) measured what reaches the sample, in camera coordinates. Together they
# give the map from device pixels to the sample: the real demagnification (one device pixel at
# the sample), the rotation between device and camera, whether the optics mirror the image, and
# which device pixel lands on camera pixel (0, 0). With it, `scope patterns` and
# `scope acquire --preset` draw gratings whose angles and periods at the sample come out as
# planned, and the reconstruction gets exact priors.
#
# Here the budget build's projector (7.56 µm pixels, 4-pixel gratings) is simulated behind optics
# that demagnify 83.33x, turn the image by 7.3° and mirror it; the device pixel (0.7, -0.4)
# lands on the camera's pixel (0, 0). Show the three gratings on a uniform slide, calibrate
# the pattern as in section 2, and fit the map. On your microscope: record the slide with
# `scope acquire --preset`, run `scope calibrate pattern`, then the two calls below with the
# gratings `scope patterns` made.

# %%
from dataclasses import replace

from scope.calibration.registration import fit_registration, save_registration
from scope.sim.gratings import ProjectionGeometry, make_pattern_set

pitch_um = 7.56
gratings = make_pattern_set([0, 60, 120], 4.0, shape=(360, 640))
optics_truth = ProjectionGeometry(
    pixel_pitch_um=pitch_um, demagnification=83.33, rotation_deg=7.3, mirror=True
)
origin_px = (0.7, -0.4)  # the device pixel imaged on camera pixel (0, 0)
nominal = gratings.nominal_parameters(optics_truth)  # the pattern if origin_px were (0, 0)
shown_angles = []
for angle, grating in zip(nominal.angles, gratings.gratings):
    shift = 2 * math.pi * float(np.dot(grating.k_per_px, origin_px))  # the origin's phase
    shown_angles.append(replace(angle, phases_rad=tuple(p + shift for p in angle.phases_rad)))
shown = replace(nominal, angles=tuple(shown_angles))
uniform = np.ones((256, 256), np.float32)
slide_sets = np.stack(
    [
        simulate_raw(uniform, shown, setup, photons_peak=2000, background_photons=50, rng=s)
        for s in range(2)
    ]
)
measured = calibrate_pattern(slide_sets, setup, offset_adu=cal.offset_adu)
registration = fit_registration(
    [g.k_per_px for g in gratings.gratings],
    [gratings.device_phases_rad(i) for i in range(gratings.n_angles)],
    measured,
)
print(
    f"demagnification {registration.demagnification(pitch_um):.2f} (true 83.33), "
    f"rotation {registration.rotation_deg:.2f} deg (true 7.3), mirror {registration.mirror}, "
    f"anisotropy {registration.anisotropy:.1e}, fit residual {registration.residual_rel:.1e}\n"
    f"device pixel at camera pixel (0, 0): "
    f"({registration.device_px_at_camera_origin[0]:.2f}, "
    f"{registration.device_px_at_camera_origin[1]:.2f}) (true {origin_px})"
)
assert registration.mirror
assert abs(registration.rotation_deg - 7.3) < 0.05
assert abs(registration.demagnification(pitch_um) / 83.33 - 1) < 1e-3
assert np.allclose(registration.device_px_at_camera_origin, origin_px, atol=0.05)
save_registration(preset, registration)

# %% [markdown]
# A residual of order 1e-5, as here, says the map is affine, as a good projection is. One of a
# per cent or more means the gratings were given in another order than they were shown, or are
# not the ones shown. `registration.to_geometry(pitch_um)` is the `ProjectionGeometry` the pattern
# generator takes.

# %% [markdown]
# ## The preset now holds the calibration

# %%
with preset.open("rb") as fh:
    doc = tomllib.load(fh)
for name, table in doc["calibration"].items():
    print(f"[calibration.{name}]")
    for key, value in table.items():
        shown = f"[{len(value)} values]" if key == "profile" else value
        print(f"  {key} = {shown}")
assert set(doc["calibration"]) == {"camera", "pattern", "otf", "registration"}
assert doc["optics"]["na"] == 1.2  # what was there before is kept
