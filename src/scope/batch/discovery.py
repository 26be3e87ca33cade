"""Find the raw stacks a batch should reconstruct: files, folders and glob patterns."""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
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


def _in_subfolders(folder: Path) -> Iterable[Path]:
    """The raw candidates in the sub-folders of ``folder``: what ``recursive`` would add, for
    a count only (so links to folders are not followed, unreadable folders passed over)."""
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        below = []
        for name in sorted(dirs):
            if name.startswith("."):
                continue
            if not is_raw_candidate(here / name):
                below.append(name)
            elif here != folder:  # a Zarr store; those of ``folder`` itself are taken
                yield here / name
        dirs[:] = below
        if here != folder:
            yield from (here / name for name in sorted(files) if is_raw_candidate(here / name))


def _files(n: int) -> str:
    return f"{n} raw file{'s' if n != 1 else ''}"


@dataclass
class Discovery:
    """What :func:`find_inputs` found.

    Attributes
    ----------
    paths : list of Path
        The raw inputs, resolved and sorted.
    not_taken : dict
        Input folder (as given) -> number of raw files in its sub-folders that were left out
        because ``recursive`` was not asked for.
    """

    paths: list[Path]
    not_taken: dict[Path, int] = field(default_factory=dict)

    @property
    def notes(self) -> list[str]:
        """One sentence per folder whose sub-folders hold raw files that were not taken."""
        return [
            f"{_files(n)} in sub-folders of {folder} {'were' if n != 1 else 'was'} not taken: "
            "add --recursive"
            for folder, n in self.not_taken.items()
        ]


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

    Returns
    -------
    list of Path
        ``find_inputs(...).paths``.

    Raises
    ------
    ConfigurationError
        An input that names nothing, or nothing found at all.
    """
    return find_inputs(inputs, recursive=recursive, exclude=exclude).paths


def find_inputs(
    inputs: Sequence[str | Path],
    *,
    recursive: bool = False,
    exclude: Sequence[Path] = (),
) -> Discovery:
    """:func:`discover_inputs`, also counting the raw files left in sub-folders.

    Without ``recursive``, the raw files in the sub-folders of a folder given as input are
    counted (the output folder and scope's own results left out, as they would be with
    ``recursive``): a warning says how many were not taken, and the error when nothing was
    found says so too.

    Parameters
    ----------
    inputs, recursive, exclude
        As for :func:`discover_inputs`.

    Returns
    -------
    Discovery
        The inputs and, per folder, the raw files its sub-folders hold that were not taken.

    Raises
    ------
    ConfigurationError
        An input that names nothing, or nothing found at all.
    """
    from scope.io.writers import scope_output_kind

    excluded = [p.resolve() for p in exclude]

    def is_excluded(resolved: Path) -> bool:
        """Whether the resolved path lies in an excluded folder (the output folder)."""
        return any(resolved.is_relative_to(e) for e in excluded)

    found: dict[Path, None] = {}
    below: dict[Path, list[Path]] = {}  # input folder -> raw candidates in its sub-folders
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
                raise ConfigurationError(f"{p}: no such file or folder")
            if p.is_dir() and p.suffix.lower() != ".zarr":
                paths = list(_expand_folder(p, recursive))
                if not recursive and not is_excluded(p.resolve()):
                    below[p] = [
                        q for q in map(Path.resolve, _in_subfolders(p)) if not is_excluded(q)
                    ]
                if not paths:
                    also = " (only in its sub-folders)" if below.get(p) else ""
                    log.warning("%s: no raw TIFF/MRC/Zarr inputs in this folder%s", p, also)
            else:
                paths = [p]
        for path in paths:
            resolved = path.resolve()
            if is_excluded(resolved):
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
    not_taken: dict[Path, int] = {}
    for folder, candidates in below.items():
        # neither taken otherwise (named too) nor scope's own results, which --recursive leaves
        left = [q for q in candidates if q not in found and scope_output_kind(q) is None]
        if left:
            not_taken[folder] = len(left)
    discovery = Discovery(sorted(found), not_taken)
    if not found:
        shown = ", ".join(_shown(i) for i in inputs)
        if discovery.notes:
            raise ConfigurationError(
                f"no raw inputs found in {shown}, but {'; '.join(discovery.notes)}"
            )
        said = f" (only scope's own results: {', '.join(ours[:3])})" if ours else ""
        raise ConfigurationError(
            f"no raw inputs found in {shown}{said}; expected TIFF/OME-TIFF, "
            "MRC files or OME-Zarr folders of raw SIM frames"
        )
    for note in discovery.notes:
        log.warning("%s", note)
    return discovery


def _shown(item: str | Path) -> str:
    """An input as messages show it: a path normalised (``data/`` -> ``data``), a glob as is."""
    text = str(item)
    return text if any(ch in text for ch in "*?[") else str(Path(text))


def _stem(path: Path) -> str:
    """The name without its raw-data suffix (``a.ome.tif`` -> ``a``)."""
    name = path.name
    for suffix in (".ome.tiff", ".ome.tif", ".ome.zarr", *RAW_FILE_SUFFIXES, ".zarr"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def output_stems(paths: Sequence[Path]) -> dict[Path, str]:
    """A distinct output name stem per input, stable whatever else is found.

    An input's stem is its name without the raw suffix (``a.ome.tif`` -> ``a``). Inputs whose
    stems clash are told apart as little as needed:

    - in different folders: the one in the folder that holds all the others (the top of a
      ``recursive`` search) keeps its stem, the others get their folder's name in front
      (``data/cell.tif`` -> ``cell``, ``data/sub/cell.tif`` -> ``sub_cell``), so adding
      ``recursive`` never renames what a run without it wrote;
    - in the same folder (``a.tif`` beside ``a.ome.tif``): each gets its suffix (``a_tif``,
      ``a_ome_tif``).

    Parameters
    ----------
    paths : sequence of Path
        The inputs (as :func:`discover_inputs` returns them).

    Returns
    -------
    dict
        Input -> stem.

    Raises
    ------
    ConfigurationError
        Two inputs that would still get the same name (``x/d/c.tif`` and ``y/d/c.tif``).
    """
    stems = {p: _stem(p) for p in paths}
    groups: dict[str, list[Path]] = {}
    for p, s in stems.items():
        groups.setdefault(s, []).append(p)
    out: dict[Path, str] = {}
    for s, group in groups.items():
        if len(group) == 1:
            out[group[0]] = s
            continue
        top = Path(os.path.commonpath([str(p.parent) for p in group]))
        for p in group:
            name = s if p.parent == top else f"{p.parent.name}_{s}"
            if sum(q.parent == p.parent for q in group) > 1:  # a.tif beside a.ome.tif
                name += "_" + p.name[len(s) :].strip(".").replace(".", "_").lower()
            out[p] = name
    seen: dict[str, Path] = {}
    for p, s in out.items():
        if s in seen:
            raise ConfigurationError(
                f"inputs {seen[s]} and {p} would both be written as {s}: rename one of them"
            )
        seen[s] = p
    return out
