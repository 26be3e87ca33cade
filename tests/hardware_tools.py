"""Load the maker's scripts under ``hardware/tools`` (not part of the package) in tests."""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

HARDWARE = Path(__file__).resolve().parents[1] / "hardware"


@contextlib.contextmanager
def load_tool(name: str) -> Iterator[ModuleType]:
    """``hardware/tools/<name>.py`` as a module while the block runs (in ``sys.modules``: its
    dataclasses look their module up while the file runs), taken out again afterwards."""
    spec = importlib.util.spec_from_file_location(name, HARDWARE / "tools" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(name, None)
