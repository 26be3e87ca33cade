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
# # Quick start: from raw frames to a SIM image (and a clip to share)
#
# This notebook walks through one complete session on the **simulated microscope** that ships
# with scope, so it runs anywhere — no camera, no projector, no network:
#
# 1. **acquire** a few SIM sets (3 pattern angles x 3 phases each), every frame tied to the
#    pattern it was exposed under;
# 2. **read the run back** from disk, as you would after a real session;
# 3. **estimate the pattern** (angles, periods, phases) from the data alone and check it against
#    what the microscope projected;
# 4. **reconstruct** the super-resolved images and measure how much finer they are than
#    widefield;
# 5. **look** at the result;
# 6. **export a short clip** for social media;
# 7. **explore** it in napari (when a screen is attached).
#
# The simulated microscope is not a shortcut: the controller is the real serial driver talking
# to the firmware's state machine on a pseudo-terminal, and the camera is triggered by the
# emulated board. On your own instrument you name the camera and the controller (`scope acquire
# --camera genicam:0 --controller /dev/ttyACM0 ...`) and everything below stays the same.

# %%
import os
import tempfile
from pathlib import Path

import numpy as np
from IPython.display import Image, display
from PIL import Image as PILImage

from scope.acquisition.engine import AcquisitionConfig, AcquisitionEngine
from scope.acquisition.writer import read_acquisition
from scope.devices.simulated_microscope import SimulatedMicroscope
from scope.io.raw import open_raw
from scope.sim.diagnostics import carrier_report, estimate_resolution
from scope.sim.estimate import estimate_parameters
from scope.sim.pipeline import expected_resolution_nm, reconstruct_stack, widefield_stack
from scope.sim.reconstruct import ReconstructionSettings

workdir = Path(tempfile.mkdtemp(prefix="scope-quick-start-"))
print("results go to", workdir)

# %% [markdown]
# ## 1. Acquire
#
# The microscope below has a 128 x 128 camera with 65 nm pixels at the sample, an NA 1.2
# objective and green (525 nm) emission. Its illuminator holds nine patterns: stripes at 0°, 60°
# and 120°, 260 nm apart, each shifted in three phase steps. The sample is a tangle of thin
# filaments (think microtubules).
#
# The controller *leads*: it shows a pattern, then triggers the camera; each frame is written to
# disk the moment it arrives and is paired with the controller's pulse. A set counts as valid
# only when all nine frames arrived, on time, under the right patterns.

# %%
N_SETS = 4
EXPOSURE_MS, DARK_MS = 5.0, 1.0
run_path = workdir / "run.zarr"

camera_options = {"marker": False}  # the test marker in the corner: off, as `scope acquire`
with SimulatedMicroscope(
    (128, 128), sample_kind="filaments", seed=1, camera_options=camera_options
) as microscope:
    setup, nominal = microscope.setup, microscope.params
    config = AcquisitionConfig(n_sets=N_SETS, exposure_ms=EXPOSURE_MS, dark_ms=DARK_MS)
    engine = AcquisitionEngine(
        microscope.camera, microscope.controller, run_path, config, setup=setup, params=nominal
    )
    summary = engine.run()
    light_after = microscope.emulator.snapshot()["light"]

print(f"optics: NA {setup.na}, {setup.wavelength_nm:.0f} nm, {setup.pixel_size_nm:.0f} nm pixels")
print(
    f"{summary.frames_written} frames written, {summary.sets_valid} valid / "
    f"{summary.sets_invalid} invalid sets, {len(summary.dropped_pulses)} dropped frames; "
    f"run {summary.state}; light {'off' if light_after == 0 else 'ON'}"
)
assert summary.state == "complete"
assert summary.sets_valid == N_SETS
assert summary.frames_written == 9 * N_SETS
assert light_after == 0  # the light source is dark once the run is over

# %% [markdown]
# The same run from the command line (it also reconstructs with `--reconstruct`):
#
# ```bash
# scope acquire --sets 4 --shape 128 128 --sample filaments -o run.zarr --reconstruct
# ```

# %% [markdown]
# ## 2. Read the run back
#
# The run is an OME-Zarr folder: frames in arrival order plus a table saying, for each frame,
# which set, angle and phase it belongs to and whether its set was verified. `open_raw` turns
# the verified sets into a `(time, 9, Y, X)` stack, frames in pattern order (angle-major, phase
# fastest) — the same reader `scope reconstruct` and `scope batch` use for every file format.

# %%
frames, table, metadata = read_acquisition(run_path)
print("frame table columns:", ", ".join(table))
print("sets:", table["set"][:12], "...")
print("phase:", table["phase"][:12], "...")

stack = open_raw(run_path, n_frames_per_set=9)
raw = np.stack(list(stack.iter_sets()))  # float32 (sets, 9, Y, X)
print(f"raw stack {raw.shape} ({stack.axes}), stored as {stack.dtype}")
print(f"the file states: {stack.pixel_size_nm} nm pixels, {stack.wavelength_nm} nm, NA {stack.na}")
assert raw.shape == (N_SETS, 9, 128, 128)
assert (table["valid"] == 1).sum() == 9 * N_SETS

# %% [markdown]
# ## 3. Estimate the pattern from the data
#
# Reconstruction needs each pattern's exact direction, period and phase. Rather than trusting the
# projector's nominal values, scope finds them in the data: the stripes shift copies of the
# sample's spectrum, and the shift (the *carrier*) is located to about a hundredth of a pixel.
# No prior is given here — the estimate is blind — and it is compared with what the simulated
# projector actually showed.

# %%
estimated = estimate_parameters(raw[0], setup)
print(carrier_report(estimated))


def angle_error_deg(a: float, b: float) -> float:
    """Difference of two stripe directions; a stripe pattern is the same turned by 180°."""
    return abs((a - b + 90.0) % 180.0 - 90.0)


for got, want in zip(estimated.angles, nominal.angles):
    d_angle = angle_error_deg(got.angle_deg, want.angle_deg)
    d_period = abs(got.period_nm / want.period_nm - 1)
    print(
        f"projected {want.angle_deg:6.1f}° / {want.period_nm:.1f} nm -> "
        f"error {d_angle:.3f}° / {100 * d_period:.3f} %"
    )
    assert d_angle < 0.2
    assert d_period < 0.005

# %% [markdown]
# ## 4. Reconstruct and measure the resolution
#
# The estimated parameters are reused for every set (one cached reconstructor), the camera's
# offset of 100 ADU is subtracted first. The resolution is then measured **without a ground
# truth**, by decorrelation analysis (Descloux et al., 2019) — the same figure you get on real
# data. Theory for these optics: widefield `λ / 2NA` and SIM `1 / (2NA/λ + 1/period)`; the
# measured figures are coarser than theory because noise hides the finest detail, but their
# ratio is what SIM gains on your sample.

# %%
OFFSET_ADU = 100.0
sim, used = reconstruct_stack(
    raw, setup, params=estimated, settings=ReconstructionSettings(offset_adu=OFFSET_ADU)
)
widefield = widefield_stack(raw, n_frames=9, offset_adu=OFFSET_ADU)
print(f"widefield {widefield.shape} at 65 nm -> SIM {sim.shape} at 32.5 nm pixels")

res = estimate_resolution(raw[0], setup, estimated, offset_adu=OFFSET_ADU)
wf_theory, sim_theory = expected_resolution_nm(setup, estimated)
print(f"measured: widefield {res.widefield_nm:.0f} nm, SIM {res.sim_nm:.0f} nm")
print(f"theory:   widefield {wf_theory:.0f} nm, SIM {sim_theory:.0f} nm")
print(f"SIM is {res.improvement:.2f}x finer")
assert sim.shape == (N_SETS, 256, 256)
assert np.isfinite(sim).all()
assert res.sim_nm < 0.8 * res.widefield_nm
assert res.sim_nm > 0.9 * sim_theory  # not finer than SIM can be

# %% [markdown]
# ## 5. Look at it
#
# Widefield (left, enlarged to the same grid) and SIM (right), each scaled from its own 0.5 and
# 99.8 percentiles.


# %%
def to_8bit(image: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(image, [0.5, 99.8])
    return (np.clip((image - lo) / max(hi - lo, 1e-12), 0, 1) * 255).astype(np.uint8)


wf_big = np.kron(widefield[0], np.ones((2, 2), np.float32))  # each camera pixel -> 2 x 2
gap = np.full((256, 8), 255, np.uint8)
panel = np.hstack([to_8bit(wf_big), gap, to_8bit(sim[0])])
png = workdir / "widefield_vs_sim.png"
PILImage.fromarray(panel).resize((2 * panel.shape[1], 2 * panel.shape[0])).save(png)
display(Image(filename=str(png)))

# %% [markdown]
# ## 6. Export a clip
#
# `scope.export.export_video` makes an H.264 MP4 that social apps accept as it is: here a
# square 1080 x 1080 clip, 3 seconds long, with a wipe from widefield to SIM, a scale bar and a
# title. The run lasted a fraction of a second, so it is slowed down to the length asked for
# (the speed is printed on screen). The clip is decoded back to check it.

# %%
import av  # PyAV, from the video extra

from scope.export import export_video

clip = export_video(
    sim,
    workdir / "quick_start.mp4",
    preset="square",
    pixel_size_nm=setup.pixel_size_nm / 2,
    widefield=widefield,
    frame_interval_s=9 * (EXPOSURE_MS + DARK_MS) / 1000,
    duration_s=3.0,
    title="Filaments, simulated",
    caption="widefield -> SIM",
)
print(clip)
with av.open(str(clip.path)) as container:
    stream = container.streams.video[0]
    decoded = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
print(f"decoded {len(decoded)} frames of {decoded[0].shape}, {clip.size_bytes / 1e6:.1f} MB")
assert clip.layout == "wipe"
assert len(decoded) == clip.n_frames
assert abs(len(decoded) / clip.fps - 3.0) < 0.1
assert decoded[0].shape == (1080, 1080, 3)
assert not np.array_equal(decoded[0], decoded[-1])  # the wipe moves

# %% [markdown]
# ## 7. Explore in napari
#
# With a screen attached, the same images open in **napari** (with its scale bar in µm). The
# SIM grid has half the pixel size and each SIM pixel covers a quarter of a camera pixel, so the
# SIM layer is shifted by a quarter of a camera pixel to sit exactly on the widefield one. The
# viewer stays open for you to explore; it is the last step because napari hands the
# notebook's kernel over to Qt's event loop. Without a display (a server, a CI job) this step
# is skipped. `scope view run.zarr` opens the run in napari with the reconstruction widget
# docked.

# %%
if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
    import napari

    viewer = napari.Viewer(title="scope quick start")
    px_um = setup.pixel_size_nm / 1000
    axes = {"axis_labels": ("set", "y", "x"), "units": ("pixel", "um", "um")}
    viewer.add_image(widefield, name="widefield", scale=(1, px_um, px_um), colormap="gray", **axes)
    viewer.add_image(
        sim,
        name="SIM",
        scale=(1, px_um / 2, px_um / 2),
        translate=(0, -px_um / 4, -px_um / 4),
        colormap="magma",
        blending="additive",
        **axes,
    )
    viewer.scale_bar.visible = True
    shot = viewer.screenshot(canvas_only=True)
    print("napari shows", [layer.name for layer in viewer.layers], "- screenshot", shot.shape)
    assert shot.std() > 0  # something was drawn
else:
    print("no display: napari skipped (the images above are the same)")

# %% [markdown]
# ## Next
#
# - `calibration.py`: measure your camera, pattern and OTF once and keep them in a preset.
# - `reconstruct_your_files.py`: the same steps on data recorded elsewhere (TIFF, MRC, OME-Zarr).
# - `batch_on_dask.py`: a folder of time-lapses on a Dask cluster.
