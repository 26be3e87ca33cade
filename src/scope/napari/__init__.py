"""The scope napari plugin (npe2 manifest ``napari.yaml``).

Widgets: live SIM imaging (:mod:`.live_widget`), interactive reconstruction
(:mod:`.reconstruction_widget`), video export (:mod:`.export_widget`); a reader for raw SIM
stacks and SIM results (:mod:`._reader`), writers for SIM results (:mod:`._writer`), sample
data (:mod:`._sample_data`). Nothing here imports Qt at import time.
"""

from __future__ import annotations
