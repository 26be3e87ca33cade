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
# # Plan your build
#
# Before buying parts, ask what a camera, an objective and a pattern illuminator will do
# together: pixel size at the sample, where the pattern sits relative to the detection OTF
# cutoff, the expected resolution, and how fast raw frames and SIM images come. This is what
# `scope plan` prints; here the same functions (`scope.planning`) are used to compare variants.
# The two reference builds of `hardware/` are the starting points.

# %%
from pathlib import Path

from scope.planning import (
    format_plan,
    frame_timing,
    load_preset,
    parts_from_preset,
    plan_setup,
)

# the repository holds the files used here; run from anywhere inside it (or as a script)
here = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
root = next((p for p in [here, *here.parents] if (p / "hardware" / "presets").is_dir()), None)
if root is None:
    raise FileNotFoundError(
        "open this notebook inside the scope repository: it reads hardware/presets/"
    )
builds = {
    name: parts_from_preset(load_preset(root / "hardware" / "presets" / f"{name}.toml"))
    for name in ("budget", "better")
}
for name, parts in builds.items():
    print(f"=== {name} build ===")
    print(format_plan(plan_setup(*parts)))
    print()

# %% [markdown]
# ## The pattern period: resolution against contrast
#
# A finer grating (fewer device pixels per period) puts the pattern closer to the detection
# cutoff: more resolution, but beyond the cutoff the reconstruction has a gap, and with
# incoherent projection (the budget build) the excitation optics pass less of the pattern's
# contrast. The sweet spot is a pattern at 0.75-0.9 of the cutoff with usable contrast.

# %%
camera, objective, illuminator, acquisition = builds["budget"]
print(" px/period  period(nm)  p/fc   inside  contrast  SIM(nm)")
for px in (2, 3, 4, 5, 6, 8):
    ill = illuminator.model_copy(update={"pattern_period_px": float(px)})
    plan = plan_setup(camera, objective, ill, acquisition)
    print(
        f"{px:10d} {plan.pattern_period_nm:11.1f} {plan.pattern_fraction_of_cutoff:6.2f}"
        f" {'yes' if plan.pattern_inside_otf else 'NO':>7} {plan.pattern_contrast:9.2f}"
        f" {plan.sim_resolution_nm:8.1f}"
    )

# %% [markdown]
# ## Frame rates: what limits them
#
# In leader mode the controller switches the pattern, waits for it to settle, then triggers the
# camera. The budget projector needs two video frames (33 ms) per switch, so it dominates; the
# better build's DMD switches in 0.1 ms, so its camera's maximum frame rate (160 frames/s) sets
# the pace at short exposures, and beyond about 6 ms the exposure itself does.

# %%
for name, (camera, _objective, illuminator, acquisition) in builds.items():
    print(f"=== {name} ===")
    for exposure_ms in (2, 5, 10, 20, 50):
        acq = acquisition.model_copy(update={"exposure_ms": float(exposure_ms)})
        t = frame_timing(camera, illuminator, acq, "leader")
        print(
            f"exposure {exposure_ms:3d} ms: {t.raw_fps:6.1f} raw fps, {t.sim_fps:5.2f} SIM fps"
            f" (limited by {t.limited_by})"
        )

# %% [markdown]
# ## A variant: the better build with a 60x/1.40 objective
#
# Swapping the objective changes the demagnification of the DMD too (it is imaged through the
# objective), so the grating has to be re-chosen: 3 device pixels per period put the pattern
# back at about three quarters of the cutoff.

# %%
camera, objective, illuminator, acquisition = builds["better"]
nikon = objective.model_copy(
    update={
        "name": "Nikon 60x/1.40 oil",
        "magnification": 60.0,
        "na": 1.4,
        "design_tube_lens_mm": 200.0,
    }
)
for px in (5, 3):
    ill = illuminator.model_copy(update={"pattern_period_px": float(px)})
    plan = plan_setup(camera, nikon, ill, acquisition)
    print(
        f"{px} px grating: pixel {plan.pixel_size_nm:.1f} nm, pattern {plan.pattern_period_nm:.0f}"
        f" nm at {plan.pattern_fraction_of_cutoff:.2f} of the cutoff, SIM "
        f"{plan.sim_resolution_nm:.0f} nm (widefield {plan.widefield_resolution_nm:.0f} nm)"
    )
assert plan.pattern_inside_otf
