"""MRC files (the format of OMX/Priism/CUDA-SIMrecon and many SIM data sets).

Read with :mod:`mrcfile` in permissive mode: files written by Priism-era tools often lack the
``MAP`` id string and machine stamp that MRC2014 asks for, yet are otherwise well-formed. The
header's voxel size is returned as written: in these files it is in µm (real space) or 1/µm
(OTF files), not the Ångström of MRC2014.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from scope.errors import DataFormatError

#: refuse files whose header claims more than this many voxels (before any allocation)
MAX_VOXELS = 2**31


def read_mrc_header(path: str | Path) -> tuple[tuple[int, ...], np.dtype, float]:
    """Shape (z, y, x), dtype and x voxel size of an MRC file, reading only the header."""
    import mrcfile

    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            with mrcfile.open(path, permissive=True, header_only=True) as m:
                h = m.header
                shape = (int(h.nz), int(h.ny), int(h.nx))
                dtype = mrcfile.utils.data_dtype_from_header(h)
                mx = int(h.mx) or int(h.nx)
                voxel = float(h.cella.x) / mx if mx else 0.0
    except Exception as err:
        raise DataFormatError(f"{path.name} is not a readable MRC file: {err}") from err
    if min(shape) < 1 or int(np.prod(shape, dtype=np.int64)) > MAX_VOXELS:
        raise DataFormatError(
            f"{path.name}: MRC header claims dimensions {shape}; expected positive sizes with at "
            f"most {MAX_VOXELS} voxels — the file is corrupt or not an MRC file"
        )
    return shape, dtype, voxel


def read_mrc(path: str | Path) -> tuple[np.ndarray, float]:
    """Read an MRC file.

    Returns
    -------
    data : ndarray
        Shape (z, y, x) — for raw SIM data, the frames — or (y, x); native dtype.
    voxel_x : float
        Header voxel size along x (µm for images, 1/µm for OTFs written by Priism-era tools).
    """
    import mrcfile

    path = Path(path)
    shape, _, voxel = read_mrc_header(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            with mrcfile.open(path, permissive=True) as m:
                if m.data is None:
                    raise DataFormatError(f"{path.name}: MRC file holds no data")
                data = np.array(m.data)
    except DataFormatError:
        raise
    except Exception as err:
        raise DataFormatError(f"{path.name}: cannot read MRC data ({err})") from err
    expected = int(np.prod(shape))
    if data.size != expected:
        raise DataFormatError(
            f"{path.name}: header promises {shape} but the file holds {data.size} values — "
            "the file is truncated"
        )
    return data, voxel
