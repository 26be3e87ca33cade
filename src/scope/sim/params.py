"""Pattern parameters of a SIM data set, with the conventions shared by every module.

Convention (README.md, Conventions): the pattern of angle ``a`` and phase step ``n``
is ``I(r) = 1 + m cos(2 pi k.r + phi_n)`` with ``r = (x, y)`` in µm from the centre of pixel
(0, 0), ``x`` along columns, ``y`` along rows; ``angle_deg = atan2(ky, kx)`` and
``period_nm = 1000 / |k|``. Raw frames are angle-major, phase fastest.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from scope.errors import ConfigurationError, DataFormatError


def orientation_deg(angle_deg: float) -> float:
    """A pattern angle as an orientation, modulo 180° in ``[0, 180)`` (the second modulo keeps
    a tiny negative angle, whose first modulo rounds to 180.0, at 0)."""
    return float(angle_deg % 180.0) % 180.0


@dataclass(frozen=True)
class AngleParameters:
    """Illumination parameters of one pattern orientation.

    Attributes
    ----------
    angle_deg : float
        Direction of the wave vector, ``atan2(ky, kx)`` in degrees.
    period_nm : float
        Pattern period at the sample, nm.
    phases_rad : tuple of float
        Phase of each phase step, radians (need not be equidistant).
    modulation : float
        Modulation depth m in ``1 + m cos(...)`` (0..1).
    confidence : float
        Carrier peak-to-noise ratio of the estimate (NaN when not estimated).
    source : str
        ``"estimated"``, ``"prior"`` (fallback to nominal values) or ``"given"``.
    """

    angle_deg: float
    period_nm: float
    phases_rad: tuple[float, ...]
    modulation: float = 1.0
    confidence: float = float("nan")
    source: str = "given"

    def __post_init__(self) -> None:
        if not (self.period_nm > 0 and math.isfinite(self.period_nm)):
            raise ConfigurationError(f"pattern period must be positive, got {self.period_nm} nm")
        if len(self.phases_rad) < 3:
            raise ConfigurationError(
                f"each angle needs at least 3 phase steps, got {len(self.phases_rad)}"
            )
        object.__setattr__(self, "phases_rad", tuple(float(p) for p in self.phases_rad))

    @property
    def n_phases(self) -> int:
        return len(self.phases_rad)

    @property
    def orientation_deg(self) -> float:
        """The pattern's orientation, ``angle_deg`` modulo 180° in ``[0, 180)``: ``k`` and
        ``-k`` (with the phases negated) describe one pattern, and ``angle_deg`` takes the sign
        in which the phases step forward, so one orientation may read 120° or -60°. Reports
        print this; published pattern angles are usually quoted so."""
        return orientation_deg(self.angle_deg)

    @property
    def k_per_um(self) -> tuple[float, float]:
        """Wave vector (kx, ky) in cycles/µm."""
        kmag = 1000.0 / self.period_nm
        a = math.radians(self.angle_deg)
        return kmag * math.cos(a), kmag * math.sin(a)

    @classmethod
    def from_k(cls, kx: float, ky: float, **kwargs: Any) -> AngleParameters:
        """Build from a wave vector in cycles/µm."""
        kmag = math.hypot(kx, ky)
        return cls(angle_deg=math.degrees(math.atan2(ky, kx)), period_nm=1000.0 / kmag, **kwargs)


@dataclass(frozen=True)
class SIMParameters:
    """Parameters of all pattern orientations of a data set.

    Examples
    --------
    >>> p = SIMParameters.equidistant([0, 60, 120], period_nm=250, n_phases=3)
    >>> p.n_angles, p.n_phases
    (3, 3)
    """

    angles: tuple[AngleParameters, ...]
    notes: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if len(self.angles) < 1:
            raise ConfigurationError("SIM parameters need at least one angle")
        n = {a.n_phases for a in self.angles}
        if len(n) != 1:
            raise ConfigurationError(f"all angles need the same number of phases, got {sorted(n)}")
        object.__setattr__(self, "angles", tuple(self.angles))

    @property
    def n_angles(self) -> int:
        return len(self.angles)

    @property
    def n_phases(self) -> int:
        return self.angles[0].n_phases

    @property
    def n_frames(self) -> int:
        return self.n_angles * self.n_phases

    @classmethod
    def equidistant(
        cls,
        angles_deg: Sequence[float],
        *,
        period_nm: float | Sequence[float],
        n_phases: int = 3,
        modulation: float = 1.0,
        phase_offset_rad: float = 0.0,
    ) -> SIMParameters:
        """Nominal parameters: equidistant phase steps ``2 pi n / n_phases``."""
        periods = (
            [float(period_nm)] * len(angles_deg)
            if isinstance(period_nm, int | float)
            else [float(p) for p in period_nm]
        )
        if len(periods) != len(angles_deg):
            raise ConfigurationError(
                f"got {len(periods)} periods for {len(angles_deg)} angles: give one or one each"
            )
        phases = tuple(phase_offset_rad + 2 * math.pi * n / n_phases for n in range(n_phases))
        return cls(
            tuple(
                AngleParameters(float(a), p, phases, modulation)
                for a, p in zip(angles_deg, periods)
            )
        )

    def seen_from(self, origin_um: tuple[float, float]) -> SIMParameters:
        """The same patterns with the phases referred to the point ``origin_um`` = (y, x), in µm
        from the current origin (pixel (0, 0)): what a crop or tile starting there sees."""
        y0, x0 = origin_um
        angles = []
        for a in self.angles:
            kx, ky = a.k_per_um
            shift = 2 * math.pi * (kx * x0 + ky * y0)
            angles.append(replace(a, phases_rad=tuple(p + shift for p in a.phases_rad)))
        return replace(self, angles=tuple(angles))

    def with_angle(self, index: int, **changes: Any) -> SIMParameters:
        """A copy with angle ``index`` changed."""
        angles = list(self.angles)
        angles[index] = replace(angles[index], **changes)
        return replace(self, angles=tuple(angles))

    def to_dict(self) -> dict[str, Any]:
        """The ``.params.json`` layout of the ``scope reconstruct`` contract (plus extras)."""
        out: dict[str, Any] = {"angles": []}
        for a in self.angles:
            d = asdict(a)
            d["phases_rad"] = list(a.phases_rad)
            if math.isnan(d["confidence"]):
                d["confidence"] = None
            out["angles"].append(d)
        if self.notes:
            out["notes"] = self.notes
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SIMParameters:
        layout = (
            "SIM parameters need {'angles': [{'angle_deg', 'period_nm', 'phases_rad', "
            "'modulation'}, ...]}"
        )
        if not isinstance(d, dict) or not isinstance(d.get("angles"), list):
            raise DataFormatError(f"{layout}: no list of angles found")
        angles = []
        for i, a in enumerate(d["angles"]):
            try:
                conf = a.get("confidence")
                angles.append(
                    AngleParameters(
                        angle_deg=float(a["angle_deg"]),
                        period_nm=float(a["period_nm"]),
                        phases_rad=tuple(float(p) for p in a["phases_rad"]),
                        modulation=float(a.get("modulation", 1.0)),
                        confidence=float("nan") if conf is None else float(conf),
                        source=str(a.get("source", "given")),
                    )
                )
            except KeyError as err:
                raise DataFormatError(f"{layout}: angle {i} has no {err.args[0]!r}") from err
            except (AttributeError, TypeError, ValueError) as err:
                raise DataFormatError(f"{layout}: angle {i}: {err}") from err
        return cls(tuple(angles), notes=dict(d.get("notes", {})))

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    @classmethod
    def from_json(cls, path_or_text: str | Path) -> SIMParameters:
        p = Path(path_or_text)
        text = p.read_text() if p.suffix == ".json" and p.exists() else str(path_or_text)
        return cls.from_dict(json.loads(text))
