"""Synchronised SIM acquisition: frame tagging, reconciliation, streaming to disk, live sets.

Modules: :mod:`scope.acquisition.writer` (OME-Zarr / OME-TIFF streaming writer and reader),
:mod:`scope.acquisition.engine` (the acquisition engine).
"""
