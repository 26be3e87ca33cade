"""Find the raw stacks a batch should reconstruct: files, folders and glob patterns."""

from __future__ import annotations

import glob
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

from scope.errors import ConfigurationError

log = logging.getLogger(__name__)

RAW_FILE_SUFFIXES = (".tif", ".tiff", ".btf", ".mrc", ".dv")
RAW_FOLDER_SUFFIXES = (".zarr", ".ome.zarr")


def is_raw_candidate(path: Path) -> bool:
    """A file or Zarr folder that looks like raw data (hidden and partial names excluded)."""
    if path.name.startswith(".") or ".partial-" in path.name:
        return False
    if path.is_dir():
        return path.suffix.lower() == ".zarr"
    return path.suffix.lower() in RAW_FILE_SUFFIXES


def _expand_folder(folder: Path, recursive: bool) -> Iterable[Path]:
    for child in sorted(folder.iterdir()):
        if is_raw_candidate(child):
            yield child
        elif recursive and child.is_dir() and not child.name.startswith("."):
            yield from _expand_folder(child, recursive)


def discover_inputs(
    inputs: Sequence[str | Path],
    *,
    recursive: bool = False,
    exclude: Sequence[Path] = (),
) -> list[Path]:
    """Expand files, folders and glob patterns into a sorted list of raw inputs.

    Parameters
    ----------
    inputs : sequence of str or Path
        Files (TIFF/OME-TIFF/MRC), ``.zarr`` folders, plain folders (their raw files are taken,
        sub-folders too with ``recursive``) and glob patterns (``"data/*.tif"``, ``"**/*.mrc"``).
    recursive : bool
        Descend into sub-folders of plain folders.
    exclude : sequence of Path
        Folders whose contents are never taken (the output folder).

    Raises
    ------
    ConfigurationError
        An input that names nothing, or nothing found at all.
    """
    from scope.io.writers import scope_output_kind

    excluded = [p.resolve() for p in exclude]
    found: dict[Path, None] = {}
    ours: list[str] = []  # scope's own results among the inputs: not raw data
    in_output: list[str] = []  # inputs inside the output folder: never taken
    for item in inputs:
        text = str(item)
        if any(ch in text for ch in "*?["):
            matches = [Path(m) for m in sorted(glob.glob(text, recursive=True))]
            paths = [m for m in matches if is_raw_candidate(m)]
            if not paths:
                raise ConfigurationError(f"pattern {text!r} matches no raw TIFF/MRC/Zarr input")
        else:
            p = Path(text)
            if not p.exists():
                raise ConfigurationError(f"{text}: no such file or folder")
            if p.is_dir() and p.suffix.lower() != ".zarr":
                paths = list(_expand_folder(p, recursive))
                if not paths:
                    log.warning("%s: no raw TIFF/MRC/Zarr inputs in this folder", p)
            else:
                paths = [p]
        for path in paths:
            resolved = path.resolve()
            if any(resolved.is_relative_to(e) for e in excluded):
                in_output.append(path.name)
                continue
            kind = scope_output_kind(path)
            if kind is not None:
                ours.append(f"{path.name} ({kind})")
                continue
            found.setdefault(resolved, None)
    if ours:
        log.warning(
            "left out %d image(s) that scope wrote, not raw stacks: %s",
            len(ours),
            ", ".join(ours[:5]) + (" ..." if len(ours) > 5 else ""),
        )
    if not found and (in_output or any(Path(str(i)).resolve() in excluded for i in inputs)):
        raise ConfigurationError(
            f"the inputs lie in the output folder ({', '.join(map(str, exclude))}), whose files "
            "are never taken as inputs: write the outputs elsewhere (e.g. -o INPUT/sim)"
        )
    if not found:
        said = f" (only scope's own results: {', '.join(ours[:3])})" if ours else ""
        raise ConfigurationError(
            f"no raw inputs found in {', '.join(map(str, inputs))}{said}; expected TIFF/OME-TIFF, "
            "MRC files or OME-Zarr folders of raw SIM frames"
        )
    return sorted(found)


def output_stems(paths: Sequence[Path]) -> dict[Path, str]:
    """A distinct output name stem per input (``a.ome.tif`` -> ``a``; clashes get the folder)."""

    def stem(p: Path) -> str:
        name = p.name
        for suffix in (".ome.tiff", ".ome.tif", ".ome.zarr", *RAW_FILE_SUFFIXES, ".zarr"):
            if name.lower().endswith(suffix):
                return name[: -len(suffix)]
        return p.stem

    stems = {p: stem(p) for p in paths}
    counts: dict[str, int] = {}
    for s in stems.values():
        counts[s] = counts.get(s, 0) + 1
    out: dict[Path, str] = {}
    for p, s in stems.items():
        if counts[s] > 1:
            s = f"{p.parent.name}_{s}_{p.suffix.lstrip('.').lower()}"
        out[p] = s
    taken = list(out.values())
    for p, s in list(out.items()):
        if taken.count(s) > 1:  # a.tif beside a.ome.tif: the whole suffix tells them apart
            suffix = p.name[len(stems[p]) :].strip(".").replace(".", "_").lower()
            out[p] = f"{p.parent.name}_{stems[p]}_{suffix}"
    seen: dict[str, Path] = {}
    for p, s in out.items():
        if s in seen:
            raise ConfigurationError(
                f"inputs {seen[s]} and {p} would both be written as {s}: rename one of them"
            )
        seen[s] = p
    return out
