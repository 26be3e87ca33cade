"""Example frames of every video-export layout, from simulated SIM data.

Simulates raw SIM sets (``scope.sim.forward.simulate_raw``) of a virtual sample — rod-shaped
bacteria with stained membranes and nucleoids, as in a gut-flora smear — reconstructs them
(``scope.sim.pipeline.reconstruct_stack``) and renders one frame of each layout with the
presets a user would pick, written as PNG (half size, to keep the repository small) into
``docs/images/``:

* ``export_sim_reel.png``           SIM only, 9:16 reel, time-lapse labels;
* ``export_wipe_reel.png``          the widefield -> SIM wipe half way, 9:16 reel;
* ``export_wipe_strip.png``         the wipe's first, middle and last frames side by side;
* ``export_side_by_side_square.png``  widefield next to SIM, 1:1 feed post;
* ``export_overlay_portrait.png``   two channels (magenta, green), 4:5 feed post.

Usage: ``python docs/make_images.py`` (about 10 s on 2 cores).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from scope.export import build_renderer
from scope.optics import OpticalSetup
from scope.sim.forward import simulate_raw
from scope.sim.params import SIMParameters
from scope.sim.pipeline import reconstruct_stack

OUT = Path(__file__).parent / "images"
SETUP = OpticalSetup(na=1.2, wavelength_nm=525.0, pixel_size_nm=65.0)
PARAMS = SIMParameters.equidistant([0.0, 60.0, 120.0], period_nm=240.0)
CAMERA_PX = 192  # camera frame 192 x 192 -> SIM 384 x 384 (12.5 µm field)


def bacteria(
    shape: tuple[int, int], *, n: int = 22, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Rod-shaped cells on the SIM grid (32.5 nm pixels): membrane rings and nucleoids.

    Each cell is a capsule (a segment with round caps) 1.6-3.6 µm long and 0.7-0.9 µm wide;
    the membrane is a thin shell at its surface, the nucleoid one or two blobs on its axis.
    """
    rng = np.random.default_rng(seed)
    ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float32)
    membrane = np.zeros(shape, np.float32)
    nucleoid = np.zeros(shape, np.float32)
    px_um = 0.0325
    for _ in range(n):
        cy, cx = rng.uniform(0, ny), rng.uniform(0, nx)
        half = rng.uniform(0.4, 1.4) / px_um
        radius = rng.uniform(0.35, 0.45) / px_um
        theta = rng.uniform(0, np.pi)
        uy, ux = np.sin(theta), np.cos(theta)
        along = np.clip((yy - cy) * uy + (xx - cx) * ux, -half, half)
        dist = np.hypot(yy - (cy + along * uy), xx - (cx + along * ux))
        brightness = rng.uniform(0.6, 1.0)
        membrane += brightness * np.exp(-(((dist - radius) / 1.6) ** 2))
        n_nuc = 2 if half > 0.9 / px_um else 1
        for k in range(n_nuc):
            offset = 0.0 if n_nuc == 1 else (-0.5 + k) * half
            d2 = (yy - (cy + offset * uy)) ** 2 + (xx - (cx + offset * ux)) ** 2
            nucleoid += brightness * np.exp(-d2 / (2 * (0.45 * radius) ** 2))
    membrane += 0.04 * gaussian_filter(rng.random(shape).astype(np.float32), 6)
    return membrane / membrane.max(), nucleoid / nucleoid.max()


def time_lapse(channel: int, n_sets: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw-simulate and reconstruct ``n_sets`` time points of a slowly drifting sample."""
    big = bacteria((2 * CAMERA_PX + 4 * n_sets, 2 * CAMERA_PX + 4 * n_sets), seed=seed)[channel]
    raws = []
    for t in range(n_sets):
        truth = big[3 * t : 3 * t + 2 * CAMERA_PX, 4 * t : 4 * t + 2 * CAMERA_PX]
        raws.append(simulate_raw(truth, PARAMS, SETUP, photons_peak=600, rng=seed * 100 + t))
    raw = np.stack(raws)
    sim, _ = reconstruct_stack(raw, SETUP, backend="numpy")
    # trim the reconstruction's apodised edge (and the same field of the widefield image)
    m = CAMERA_PX // 16
    wf = raw.mean(axis=1, dtype=np.float32)[:, m:-m, m:-m]
    return np.asarray(sim, np.float32)[:, 2 * m : -2 * m, 2 * m : -2 * m], wf


def save(frame: np.ndarray, name: str, scale: float = 0.5) -> None:
    image = Image.fromarray(frame)
    if scale != 1:
        size = (round(image.width * scale), round(image.height * scale))
        image = image.resize(size, Image.Resampling.LANCZOS)
    # a 256-colour palette is indistinguishable here and keeps the files ~3x smaller
    image = image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    image.save(OUT / name, optimize=True)
    print(f"wrote {OUT / name} ({image.width}x{image.height})")  # noqa: T201


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    sim_px = SETUP.pixel_size_nm / 2
    sim, wf = time_lapse(0, 4, seed=11)
    lapse = {"pixel_size_nm": sim_px, "frame_interval_s": 30.0}

    r = build_renderer(
        sim,
        preset="reel",
        colormap="magma",
        title="Gut bacteria, live",
        caption="Structured illumination: 1.7x finer detail",
        credit="scope · open-source SIM",
        **lapse,
    )
    save(r.frame(r.n_frames - 1), "export_sim_reel.png")

    r = build_renderer(
        sim,
        widefield=wf,
        layout="wipe",
        preset="reel",
        colormap="inferno",
        title="Before / after",
        caption="Widefield vs. SIM, same cells",
        credit="scope · open-source SIM",
        **lapse,
    )
    mid = round(r.n_frames * 0.45)
    save(r.frame(mid), "export_wipe_reel.png")
    strip = np.concatenate(
        [
            r.frame(0),
            np.zeros((1920, 24, 3), np.uint8),
            r.frame(mid),
            np.zeros((1920, 24, 3), np.uint8),
            r.frame(r.n_frames - 1),
        ],
        axis=1,
    )
    save(strip, "export_wipe_strip.png", scale=1 / 3)

    r = build_renderer(
        sim,
        widefield=wf,
        layout="side-by-side",
        preset="square",
        colormap="green",
        title="Widefield | SIM",
        credit="scope",
        **lapse,
    )
    save(r.frame(r.n_frames // 2), "export_side_by_side_square.png")

    membrane, _ = time_lapse(0, 1, seed=5)
    nucleoid, _ = time_lapse(1, 1, seed=5)
    two = np.stack([membrane[0], nucleoid[0]])[None]  # (T=1, C=2, Y, X)
    r = build_renderer(
        two,
        channel_axis=1,
        channel_names=["membrane", "DNA"],
        preset="portrait",
        pixel_size_nm=sim_px,
        title="Two colours",
        caption="Green and magenta: readable for colour-blind friends too",
        credit="scope · open-source SIM",
        channel_colormaps=["magenta", "green"],
        gamma=0.8,
    )
    save(r.frame(r.n_frames // 2), "export_overlay_portrait.png")


if __name__ == "__main__":
    main()
