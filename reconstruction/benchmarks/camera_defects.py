"""Hot and dead camera pixels: how many are found, what else is flagged, what repair gives.

The simulated acceptance case (``tests/sim_cases.py``, 256 x 256), five seeds at 400 and 60
photons peak, with 65 hot pixels (100, 300, 1000 or 4000 ADU extra in every frame; four on the
edges, two side by side) and 10 dead pixels (at the offset) at random places
(``with_camera_defects``); and the same sets with 0.1 % of the pixels hot by an exponentially
distributed 1000 ADU on average, reconstructed with parameters estimated (a) without repair,
(b) with repair (the default), (c) from the clean set. Columns: defects found among those
injected, dead pixels found among those whose missing light stands out of the noise (> 40 ADU),
pixels flagged that were not injected (in the clean set and in the set with defects), and the
NRMSE against the ideal-SIM target ("nan": the estimation found no carrier). A second table:
eight 2 x 2 blocks of equal hot pixels (100, 300, 1000 and 4000 ADU, two each;
``with_hot_blocks``), found and repaired the same way. Also the time to find them in a
9 x 512 x 512 set.

Run: .venv/bin/python reconstruction/benchmarks/camera_defects.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

from scope.errors import ReconstructionError
from scope.sim import metrics
from scope.sim.defects import find_defect_pixels
from scope.sim.estimate import EstimationSettings, estimate_parameters
from scope.sim.reconstruct import ReconstructionSettings, SIMReconstructor
from sim_cases import (
    MARGIN,
    OFFSET,
    SETUP,
    ideal_target,
    make_case,
    with_camera_defects,
    with_hot_blocks,
)


def nrmse(raw: np.ndarray, case, repair: bool) -> float:
    """The error against the ideal-SIM target (NaN where the estimation finds no carrier)."""
    try:
        est = estimate_parameters(
            raw - OFFSET, SETUP, settings=EstimationSettings(repair_defects=repair)
        )
    except ReconstructionError:
        return float("nan")
    settings = ReconstructionSettings(offset_adu=OFFSET, repair_defects=repair)
    sim = SIMReconstructor(SETUP, est, shape=raw.shape[-2:], settings=settings)(raw)
    target = ideal_target(case.ground_truth, case.truth)
    crop = np.s_[MARGIN:-MARGIN, MARGIN:-MARGIN]
    return metrics.normalized_rms_error(sim[crop], target[crop])


def main() -> None:
    print(
        "| photons | seed | hot found | dead found (visible) | flagged, clean set | flagged, "
        "not injected | NRMSE clean | 0.1 % hot, no repair | repaired |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for photons in (400, 60):
        for seed in range(5):
            case = make_case(seed, photons=photons)
            clean_flags = len(find_defect_pixels(case.raw, SETUP))
            raw, hot, dead = with_camera_defects(case.raw, seed)
            found = set(find_defect_pixels(raw, SETUP).flat.tolist())
            signal = (case.raw.mean(axis=0) - OFFSET).reshape(-1)
            visible = {d for d in dead if signal[d] > 40}
            rng = np.random.default_rng(99)
            many = np.zeros(raw.shape[-2:], np.float32)
            idx = rng.choice(many.size, many.size // 1000, replace=False)
            many.flat[idx] = rng.exponential(1000.0, idx.size)
            errors = [
                nrmse(case.raw, case, True),
                nrmse(case.raw + many, case, False),
                nrmse(case.raw + many, case, True),
            ]
            print(
                f"| {photons} | {seed} | {len(hot & found)}/{len(hot)} | "
                f"{len(dead & found)}/{len(dead)} ({len(visible & found)}/{len(visible)}) | "
                f"{clean_flags} | {len(found - hot - dead)} | "
                + " | ".join(f"{e:.3f}" for e in errors)
                + " |"
            )
    print(
        "\n| photons | seed | 2 x 2 blocks found (of 100 / 300 / 1000 / 4000 ADU) | "
        "flagged, not injected | NRMSE clean | blocks, no repair | repaired |"
    )
    print("|---|---|---|---|---|---|---|")
    amplitudes = (100, 300, 1000, 4000) * 2
    for photons in (400, 60):
        for seed in range(5):
            case = make_case(seed, photons=photons)
            raw, blocks, corners = with_hot_blocks(case.raw, seed, amplitudes)
            found = find_defect_pixels(raw, SETUP)
            pixels = set(zip(found.rows.tolist(), found.cols.tolist()))
            whole = [
                all((r + dy, c + dx) in pixels for dy in (0, 1) for dx in (0, 1))
                for r, c in corners
            ]
            per_level = [
                sum(w for w, a in zip(whole, amplitudes) if a == level) for level in amplitudes[:4]
            ]
            errors = [
                nrmse(case.raw, case, True),
                nrmse(raw, case, False),
                nrmse(raw, case, True),
            ]
            print(
                f"| {photons} | {seed} | {sum(per_level)}/8 ({' / '.join(map(str, per_level))}) "
                f"| {len(pixels - blocks)} | " + " | ".join(f"{e:.3f}" for e in errors) + " |"
            )
    big = make_case(0, size=512)
    find_defect_pixels(big.raw, SETUP)
    times = []
    for _ in range(10):
        t0 = time.perf_counter()
        find_defect_pixels(big.raw, SETUP)
        times.append(time.perf_counter() - t0)
    print(
        f"\nfinding defects in a 9 x 512 x 512 set: {1000 * np.median(times):.1f} ms (median of 10)"
    )


if __name__ == "__main__":
    main()
