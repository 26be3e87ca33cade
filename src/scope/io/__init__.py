"""Readers and writers for raw SIM stacks and reconstructions (TIFF, OME-TIFF, MRC, OME-Zarr)."""
