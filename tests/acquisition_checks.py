"""Checks on a run's frame table shared by the acquisition tests."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np


def assert_every_frame_decided(
    table: Mapping[str, np.ndarray], sets_without_dropped_frames: Iterable[int]
) -> None:
    """Every frame of a run that ended (completed or aborted) carries a verdict.

    1 = part of a verified set, 0 = not, 2 = a verified frame of a set whose only fault is a
    frame the camera dropped; those sets are exactly the ones the run's summary lists
    (``sets_without_dropped_frames``). -1 (undecided) must not be left in the file.
    """
    valid = np.asarray(table["valid"])
    assert set(valid.tolist()) <= {0, 1, 2}, sorted(set(valid.tolist()))
    kept = {int(s) for s in np.unique(np.asarray(table["set"])[valid == 2])}
    assert kept == set(sets_without_dropped_frames)
