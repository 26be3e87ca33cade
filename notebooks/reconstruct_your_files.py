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
# # Reconstructing your own files
#
# Raw SIM data recorded on any instrument can be reconstructed with scope, as long as you know
# four things about it:
#
# - the **frame order**: scope expects `angles x phases` frames per set, angle-major, phase
#   fastest (frames 0-2 = first orientation, 3-5 = second, 6-8 = third), with time, z or
#   channel axes in front;
# - the **detection NA** and the **emission wavelength**;
# - the **camera pixel size at the sample** (camera pixel / magnification);
# - the **camera offset** (the dark level, in ADU) — or, for an sCMOS camera, its per-pixel
#   offset and gain maps.
#
# Everything else — pattern angles, periods, phases, modulation — is estimated from the data.
# Two published data sets (copies in `tests/data/`, MIT licence) show the two situations you
# will meet: a clean data set where the pattern is found blindly, and a hard one (TIRF-SIM at
# low signal, pattern near the detection limit) where it is safer to tell scope what pattern
# you projected.

# %%
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from IPython.display import Image, display
from PIL import Image as PILImage

from scope.calibration.camera import read_scmos_maps
from scope.errors import ReconstructionError
from scope.io.raw import open_raw
from scope.optics import OTF, OpticalSetup
from scope.sim.diagnostics import (
    carrier_report,
    estimate_resolution,
    modulation_map,
    modulation_png,
    spectrum_png,
)
from scope.sim.estimate import estimate_parameters
from scope.sim.params import SIMParameters
from scope.sim.pipeline import expected_resolution_nm
from scope.sim.reconstruct import ReconstructionSettings, SIMReconstructor

# the test data sit in tests/data of the repository this notebook belongs to
# the repository holds the files used here; run from anywhere inside it (or as a script)
here = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
root = next((p for p in [here, *here.parents] if (p / "tests" / "data").is_dir()), None)
if root is None:
    raise FileNotFoundError("open this notebook inside the scope repository: it reads tests/data/")
data = root / "tests" / "data"
workdir = Path(tempfile.mkdtemp(prefix="scope-your-files-"))


def angle_error_deg(a: float, b: float) -> float:
    """Difference of two stripe directions, modulo 180° (k and -k are the same pattern)."""
    return abs((a - b + 90.0) % 180.0 - 90.0)


def to_8bit(image: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(image, [0.5, 99.8])
    return (np.clip((image - lo) / max(hi - lo, 1e-12), 0, 1) * 255).astype(np.uint8)


def side_by_side(widefield: np.ndarray, sim: np.ndarray, path: Path, zoom: int = 1) -> Path:
    """Widefield (enlarged 2x to the SIM grid) | SIM, as a PNG, each pixel shown zoom x zoom."""
    wf_big = np.kron(widefield, np.ones((2, 2), np.float32))
    gap = np.full((sim.shape[0], 4), 255, np.uint8)
    panel = PILImage.fromarray(np.hstack([to_8bit(wf_big), gap, to_8bit(sim)]))
    panel.resize((panel.width * zoom, panel.height * zoom), PILImage.NEAREST).save(path)
    return path


# %% [markdown]
# ## 1. B-SIM: HeLa cells, mitochondria (sCMOS camera)
#
# Nine raw frames, 120 x 120 pixels, from the B-SIM paper (Saurabh et al., npj Imaging 2025).
# The optics, as the authors state them: NA 1.3, emission 660 nm, 65 nm pixels at the sample,
# camera offset 100 ADU. The authors also published the illumination patterns they fitted, so
# we know the true angles and periods: 120.72°, 58.18°, 2.29° and 357.7, 357.0, 332.9 nm.
#
# `open_raw` reads TIFF, OME-TIFF, MRC and OME-Zarr lazily and says what the file states about
# its optics (this plain TIFF states nothing, so we give the values ourselves).

# %%
bsim = data / "bsim-hela-mitochondria"
stack = open_raw(bsim / "raw_images.tif", n_frames_per_set=9)
print(f"{stack.path.name}: {stack.shape} ({stack.axes}), {stack.dtype}")
print(f"optics in the file: pixel {stack.pixel_size_nm}, wavelength {stack.wavelength_nm}")
raw = stack.read_set(0)  # float32 (9, 120, 120), ADU
setup = OpticalSetup(na=1.3, wavelength_nm=660, pixel_size_nm=65)
OFFSET_ADU = 100.0
print(f"raw counts {raw.min():.0f}..{raw.max():.0f} ADU (offset {OFFSET_ADU:.0f})")
assert stack.n_sets == 1

# %% [markdown]
# ### Estimate the pattern, and check it
#
# The estimator finds each orientation's *carrier*: the spatial frequency of the stripes, which
# shows up as a pair of peaks in the spectrum of the modulated part of the frames. The spectrum
# below is that of the frames minus their mean; the found carriers are circled in red, the
# detection cutoff 2NA/λ in blue. Angles are stripe directions, so 58° and -122° are the same
# pattern: they are compared modulo 180°.

# %%
params = estimate_parameters(raw, setup)
print(carrier_report(params))

reference = [(120.72, 357.7), (58.18, 357.0), (2.29, 332.9)]  # fitted to B-SIM's patterns
for got, (ref_angle, ref_period) in zip(params.angles, reference):
    d_angle = angle_error_deg(got.angle_deg, ref_angle)
    d_period = abs(got.period_nm / ref_period - 1)
    print(
        f"reference {ref_angle:6.2f}° {ref_period:.1f} nm: "
        f"off by {d_angle:.2f}° and {100 * d_period:.2f} %"
    )
    assert d_angle < 0.5
    assert d_period < 0.01

spectrum_png(workdir / "hela_spectrum.png", raw, setup, params)
display(Image(filename=str(workdir / "hela_spectrum.png"), width=360))

# %% [markdown]
# ### Reconstruct and measure the resolution
#
# With no ground truth on real data, the resolution is measured from each image alone by
# decorrelation analysis (Descloux et al., Nat. Methods 2019): the finest spatial frequency at
# which the image still correlates with its own phase. Widefield (left) against SIM (right):

# %%
settings = ReconstructionSettings(offset_adu=OFFSET_ADU)
rec = SIMReconstructor(setup, params, shape=raw.shape[-2:], settings=settings)
sim = rec(raw)
widefield = rec.widefield(raw)
res = estimate_resolution(raw, setup, params, offset_adu=OFFSET_ADU)
print(f"SIM {sim.shape} at {rec.output_pixel_size_nm} nm pixels")
print(
    f"resolution: widefield {res.widefield_nm:.0f} nm -> SIM {res.sim_nm:.0f} nm "
    f"({res.improvement:.2f}x finer)"
)
display(Image(filename=str(side_by_side(widefield, sim, workdir / "hela_wf_vs_sim.png", zoom=2))))
assert sim.shape == (240, 240)
assert 200 < res.widefield_nm < 700
assert res.sim_nm < 0.8 * res.widefield_nm

# %% [markdown]
# ### Is the pattern visible everywhere? Frame brightness and modulation
#
# Two checks worth making on any data set. First, the frames' brightness: a flickering light
# source, bleaching during the set or pattern orientations lit unequally make the frames of a
# set differ, which would leak the widefield image into the SIM orders as stripes. The
# reconstructor measures it on the first set and, when frames differ by more than 2 %,
# equalises every set (here the three orientations are lit about 1.02 / 0.85 / 1.13: it does).
#
# Second, *where* the pattern is visible: the modulation contrast-to-noise map compares the
# pattern's local modulation with its shot noise (an idea of SIMcheck, Ball et al. 2015). Where
# it reads under about 3, the pattern is barely seen — out-of-focus light, a defocused pattern,
# too few photons — and the SIM image holds little real detail there; 0.9 is noise alone.

# %%
gains = rec.frame_gains(raw)
print("frame brightness:", " ".join(f"{g:.2f}" for g in gains))
print("equalised:", rec.equalizes_frames)
mmap = modulation_map(raw, setup, params, offset_adu=OFFSET_ADU)
print(mmap.summary())
modulation_png(workdir / "hela_modulation.png", mmap)
display(Image(filename=str(workdir / "hela_modulation.png"), width=360))
assert rec.equalizes_frames
assert mmap.summary()["fraction_mcnr_3_or_more"] > 0.2  # the mitochondria carry the pattern

# %% [markdown]
# ### Hot and dead camera pixels
#
# A camera pixel with extra dark current (hot) or too little response (dead, dusty) shows the
# same wrong value in every frame. Light reaches the camera through the objective, which passes
# no spatial frequency beyond `2 NA / λ`; with SIM's fine sampling a one-pixel spike or dip
# cannot come from the sample, so the reconstructor finds such pixels on the first set and
# replaces them by their neighbours' mean in every set (`--keep-defects` leaves them). This set
# has two pixels 20-25 % darker than their neighbours:

# %%
defects = rec.defect_pixels
print(defects.summary(), list(zip(defects.rows.tolist(), defects.cols.tolist())))
assert len(defects) == 2
assert defects.hot == 0

# %% [markdown]
# ### sCMOS cameras: per-pixel offset and gain
#
# An sCMOS sensor has an amplifier per pixel: every pixel has its own offset and gain. The
# B-SIM authors published their camera's maps (offset in ADU, gain in ADU per electron, read
# noise variance in ADU²). Applying them turns the raw counts into photo-electrons,
# `(raw - offset) / gain` pixel by pixel, which removes the camera's fixed pattern and puts the
# image on a physical scale. (`calibration.py` shows how to measure such maps on your camera.)

# %%
maps = read_scmos_maps(bsim / "offset_map.tif", bsim / "gain_map.tif", bsim / "variance_map.tif")
cam = maps.summary()
print(
    f"offset {cam.offset_adu:.1f} ADU (spread {maps.offset_adu.std():.2f}), "
    f"gain {cam.gain_adu_per_e:.3f} ADU/e- (from {maps.gain_adu_per_e.min():.2f} "
    f"to {maps.gain_adu_per_e.max():.2f}), read noise {cam.read_noise_e:.2f} e- (medians)"
)
electrons = maps.to_electrons(raw)
print(f"mean signal {raw.mean() - OFFSET_ADU:.1f} ADU above offset -> {electrons.mean():.1f} e-")
params_e = estimate_parameters(electrons, setup)
for a_adu, a_e in zip(params.angles, params_e.angles):
    assert angle_error_deg(a_adu.angle_deg, a_e.angle_deg) < 0.1
    assert abs(a_e.period_nm / a_adu.period_nm - 1) < 0.002
sim_e = SIMReconstructor(
    setup, params_e, shape=raw.shape[-2:], settings=ReconstructionSettings(offset_adu=0.0)
)(electrons)
print(f"SIM in photo-electrons: {sim_e.shape}, the same pattern found in electrons and in ADU")
# electrons = (ADU - offset) / gain, on average
assert abs(electrons.mean() / ((raw.mean() - cam.offset_adu) / cam.gain_adu_per_e) - 1) < 0.03

# %% [markdown]
# ### The same from the command line
#
# `scope reconstruct` does all of the above in one call and writes a float32 OME-TIFF with its
# physical pixel size, the parameters beside it (`.params.json`), and with `--diagnostics` the
# spectrum PNG and the resolution estimate. Here it is run as `python -m scope` (the `scope`
# command of the virtual environment is the same).

# %%
cli_out = workdir / "cli" / "hela_sim.ome.tif"
cli_out.parent.mkdir()
cmd = [
    sys.executable,
    "-m",
    "scope",
    "reconstruct",
    str(bsim / "raw_images.tif"),
    "-o",
    str(cli_out),
    "--na",
    "1.3",
    "--wavelength",
    "660",
    "--pixel-size",
    "65",
    "--offset",
    "100",
    "--diagnostics",
]
print("$ scope reconstruct raw_images.tif -o hela_sim.ome.tif " + " ".join(cmd[7:]))
done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
print(done.stdout)
assert done.returncode == 0, done.stderr
print(sorted(p.name for p in cli_out.parent.iterdir()))
doc = json.loads((cli_out.parent / "hela_sim.params.json").read_text())
for a_cli, a_api in zip(doc["angles"], params.angles):
    assert abs(a_cli["angle_deg"] - a_api.angle_deg) < 1e-6  # same estimate as above
print("resolution from the CLI:", doc["resolution_nm"])
assert doc["resolution_nm"]["sim"] < doc["resolution_nm"]["widefield"]

# %% [markdown]
# ## 2. rDL-SIM: TIRF-SIM microtubules, a hard case (MRC file, measured OTF)
#
# Nine frames of 256 x 256 from the rDL-SIM paper (Qiao et al., Nat. Biotechnol. 2022), at low
# signal, with a pattern of about 181 nm — just beyond what the objective resolves in
# widefield (`λ / 2NA` ≈ 202 nm). The file's header (Priism/DeltaVision MRC) gives the pixel
# size (62.6 nm) and the emission wavelength (525 nm); the objective's NA is 1.3. The authors
# measured their OTF; that file sits beside the data and replaces the ideal OTF.
#
# First, blind estimation: either it finds the carriers, or it refuses **and says why**, instead
# of reconstructing garbage. (On this file the carriers are found, with a low peak-to-noise of
# about 5-9; on a dimmer set of the same sample they may not be: then it refuses.)

# %%
mt_dir = data / "rdl-tirf-microtubules"
mt = open_raw(mt_dir / "MT.mrc", n_frames_per_set=9)
print(
    f"{mt.path.name}: {mt.shape} ({mt.axes}), {mt.dtype}, pixel {mt.pixel_size_nm:.1f} nm, "
    f"emission {mt.wavelength_nm:g} nm"
)
raw_mt = mt.read_set(0)
setup_mt = OpticalSetup(na=1.3, wavelength_nm=mt.wavelength_nm, pixel_size_nm=mt.pixel_size_nm)
otf = OTF.from_file(mt_dir / "TIRF488_cam1_0_z30_OTF2d.mrc")
print(f"measured OTF cutoff {otf.cutoff_per_um:.2f} /µm (ideal 2NA/λ {setup_mt.cutoff_per_um:.2f})")
assert abs(mt.pixel_size_nm - 62.6) < 0.1

# rDL-SIM quotes the angles from the y axis; ours are from the x axis: ours = 90° - theirs
theirs_rad = (0.0908, -0.9564, -2.0036)
nominal_deg = [90.0 - math.degrees(a) for a in theirs_rad]
print("nominal pattern in our convention:", [f"{a:.2f}°" for a in nominal_deg], "181 nm")

refusal = None
try:
    blind = estimate_parameters(raw_mt, setup_mt, otf=otf)
except ReconstructionError as err:
    refusal = str(err)
if refusal is not None:
    print("blind estimation refused:", refusal)
    assert "carrier" in refusal  # it says what it looked for,
    assert "prior" in refusal  # and what to do
else:
    print("blind estimation found:\n" + carrier_report(blind))
    for got, want in zip(blind.angles, nominal_deg):
        assert angle_error_deg(got.angle_deg, want) < 1.0
        assert abs(got.period_nm - 181) < 5

# %% [markdown]
# ### Tell it the pattern you projected
#
# The nominal pattern (what the illuminator was set to) narrows the search to a few degrees and
# a few percent around it; inside that window the carriers are found and refined as usual —
# the `source` column says `estimated`. Were a carrier still too weak, the nominal value would be
# used with a warning (`source` = `prior`).

# %%
prior = SIMParameters.equidistant(nominal_deg, period_nm=181)
params_mt = estimate_parameters(raw_mt, setup_mt, otf=otf, prior=prior)
print(carrier_report(params_mt))
for got, want in zip(params_mt.angles, nominal_deg):
    assert angle_error_deg(got.angle_deg, want) < 1.0
    assert abs(got.period_nm / 181 - 1) < 0.03

# this file was rescaled (counts from about 19 000 up): its camera offset is unknown, so the
# offset is left to scope, which takes the 0.5th percentile of the data (offset + background)
auto_offset = ReconstructionSettings(offset_adu=None)
rec_mt = SIMReconstructor(
    setup_mt, params_mt, shape=raw_mt.shape[-2:], otf=otf, settings=auto_offset
)
sim_mt = rec_mt(raw_mt)
wf_mt = rec_mt.widefield(raw_mt)
res_mt = estimate_resolution(raw_mt, setup_mt, params_mt, settings=auto_offset, otf=otf)
print(
    f"resolution: widefield {res_mt.widefield_nm:.0f} nm -> SIM {res_mt.sim_nm:.0f} nm "
    f"({res_mt.improvement:.2f}x finer)"
)
display(Image(filename=str(side_by_side(wf_mt, sim_mt, workdir / "mt_wf_vs_sim.png"))))
assert sim_mt.shape == (512, 512)
assert np.isfinite(sim_mt).all()
assert res_mt.sim_nm < 0.8 * res_mt.widefield_nm
wf_limit, sim_limit = expected_resolution_nm(setup_mt, params_mt)
print(f"optical limits: widefield {wf_limit:.0f} nm, SIM {sim_limit:.0f} nm")
assert res_mt.sim_nm > 0.9 * sim_limit  # no finer than the optics allow

# %% [markdown]
# The measured gain is larger than the factor of about two SIM can give: at this low signal
# the widefield figure is set by the noise (decorrelation analysis reads the finest detail that
# stands above it), well above the optical limit `λ / 2NA`, while the SIM figure stays above
# its own optical limit `1 / (2NA/λ + 1/period)`. Compare measured figures of data sets taken
# at similar signal, and compare each with its limit.

# %% [markdown]
# On the command line the priors are two flags (a preset TOML can hold them too, see
# `docs/batch.md`); the pixel size and the wavelength come from the file's header:
#
# ```bash
# scope reconstruct MT.mrc -o mt_sim.ome.tif --na 1.3 \
#     --otf TIRF488_cam1_0_z30_OTF2d.mrc --prior-angles 84.80,144.80,204.80 --prior-period 181
# ```

# %%
base = [sys.executable, "-m", "scope", "reconstruct", str(mt_dir / "MT.mrc")]
# the pixel size and the wavelength: from the file's header
optics = ["--na", "1.3", "--otf", str(mt_dir / otf.source.split("/")[-1])]
no_prior = subprocess.run(
    [*base, "-o", str(workdir / "cli" / "mt_blind.ome.tif"), *optics],
    capture_output=True,
    text=True,
    timeout=120,
)
said = (no_prior.stderr if no_prior.returncode else no_prior.stdout).strip().splitlines()
print(f"without priors: exit {no_prior.returncode}\n  {said[-1]}")  # the refusal, or what it wrote
with_prior = subprocess.run(
    [
        *base,
        "-o",
        str(workdir / "cli" / "mt_sim.ome.tif"),
        *optics,
        "--prior-angles",
        ",".join(f"{a:.2f}" for a in nominal_deg),
        "--prior-period",
        "181",
    ],
    capture_output=True,
    text=True,
    timeout=120,
)
print(f"with priors: exit {with_prior.returncode}\n  {with_prior.stdout.strip()}")
assert with_prior.returncode == 0, with_prior.stderr
assert (workdir / "cli" / "mt_sim.ome.tif").is_file()
if no_prior.returncode != 0:  # refused: one line that says what to do
    assert "prior" in no_prior.stderr

# %% [markdown]
# ## Your own files
#
# - **Frame order** different from angle-major, phase fastest? Sets stored phase-major (all
#   angles at one phase, then the next) are read with `--frame-order phase-major` by `scope
#   reconstruct` and `scope batch`; in Python, reorder the frames first (`raw[order]`). A wrong
#   order shows up as carriers that are not found or phases that do not step.
# - **Several time points or z**: `scope.sim.pipeline.reconstruct_stack` estimates once and
#   reuses the parameters for the whole stack; `scope batch` does whole folders
#   (`batch_on_dask.py`).
# - **Several colours** (a `C` axis): each channel has its own pattern and emission wavelength.
#   `scope reconstruct` and `scope batch` estimate each channel on its own first set, with the
#   wavelengths from the file's OME `Channel` elements or `--wavelength 525 600`; in Python,
#   reconstruct each channel's stack on its own, each with its own `OpticalSetup`.
# - **Check the spectrum** whenever a result looks wrong: the carriers must sit on clear peaks,
#   inside or near the blue cutoff circle.
