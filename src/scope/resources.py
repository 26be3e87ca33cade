"""Repository folders the package reads at run time, found in a checkout or in a wheel.

The controller emulator runs the firmware's own state machine (``hardware/firmware``) and presets
are looked up by name (``reconstruction/presets``). In a source checkout (``pip install -e .``)
they are read where they live, so an edit to the firmware is what the emulator runs; a wheel
carries copies under ``scope/_bundled`` (``force-include`` in ``pyproject.toml``).

Examples
--------
>>> (repository_folder("hardware/firmware") / "pattern_core.py").is_file()
True
"""

from __future__ import annotations

from pathlib import Path

from scope.errors import ConfigurationError

#: the source checkout this package was installed from (meaningless inside a wheel install)
CHECKOUT = Path(__file__).resolve().parents[2]
#: copies shipped inside a wheel: hardware/firmware -> firmware, reconstruction/presets -> presets
BUNDLED = Path(__file__).resolve().parent / "_bundled"
_FOLDERS = {"hardware/firmware": "firmware", "reconstruction/presets": "presets"}


def repository_folder(relative: str) -> Path:
    """The checkout's ``relative`` folder if there is one, else the copy inside the package.

    Raises
    ------
    ConfigurationError
        When neither exists (a broken install).
    """
    if relative not in _FOLDERS:
        raise ValueError(f"unknown repository folder {relative!r}: one of {sorted(_FOLDERS)}")
    for folder in (CHECKOUT / relative, BUNDLED / _FOLDERS[relative]):
        if folder.is_dir():
            return folder
    raise ConfigurationError(
        f"{relative} was found neither in a source checkout ({CHECKOUT / relative}) nor inside "
        f"the installed package ({BUNDLED / _FOLDERS[relative]}): reinstall scope-sim"
    )
