"""The map from an actuator's moves to what the camera sees: a 2 × 2 matrix, fitted by ``lptem calibrate``.

A move of the actuator by ``u`` = (ux, uy) in its own units (nm for a stage or an image shift) moves the
objects in the image by ``Δp = M u`` px. Nothing assumes the actuator's axes are the camera's: stage axes
are usually rotated against the camera by tens of degrees, the image may be mirrored (handedness), and a
stage's nm need not be the camera's nm. The map is written as TOML::

    actuator = "stage"
    px_per_unit = [[m00, m01], [m10, m11]]   # Δp = M u; rows are image x, y
    ...                                      # how it was measured (read back, never needed)
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

ACTUATORS = ("stage", "image-shift")


class CalibrationError(ValueError):
    """A calibration that cannot be fitted, read or used; the message says why."""


@dataclass(frozen=True, slots=True)
class ActuatorMap:
    """``Δp = M u``: image displacement (px) of objects per actuator move (actuator nm)."""

    matrix: tuple[tuple[float, float], tuple[float, float]]
    actuator: str = "stage"
    measured: dict[str, float | int | str] = field(default_factory=dict)
    """How the map was measured (pixel size, residual, moves, magnification...), for the record."""

    def __post_init__(self) -> None:
        m = np.asarray(self.matrix, dtype=float)
        if m.shape != (2, 2) or not np.all(np.isfinite(m)):
            raise CalibrationError(f"the map must be a finite 2 × 2 matrix, got {self.matrix!r}")
        if abs(np.linalg.det(m)) < 1e-12 * max(1.0, float(np.abs(m).max()) ** 2):
            raise CalibrationError("the map is singular: the two moves did not move the image independently")
        if self.actuator not in ACTUATORS:
            raise CalibrationError(f"unknown actuator {self.actuator!r}; known: {', '.join(ACTUATORS)}")

    @classmethod
    def aligned(cls, pixel_size_nm: float, actuator: str = "stage") -> ActuatorMap:
        """The uncalibrated assumption: actuator axes are the camera's, 1 actuator nm = 1 image nm, and a
        move shifts the field of view (objects move the other way)."""
        k = -1.0 / pixel_size_nm
        return cls(((k, 0.0), (0.0, k)), actuator, {"assumed": "axes aligned with the camera"})

    @property
    def array(self) -> npt.NDArray[np.float64]:
        return np.asarray(self.matrix, dtype=float)

    def image_shift_px(self, ux: float, uy: float) -> tuple[float, float]:
        """How far objects move in the image (px) when the actuator moves by (ux, uy)."""
        dx, dy = self.array @ (ux, uy)
        return float(dx), float(dy)

    def move_for(self, dx_px: float, dy_px: float) -> tuple[float, float]:
        """The actuator move (actuator nm) that moves objects in the image by (dx, dy) px."""
        ux, uy = np.linalg.solve(self.array, (dx_px, dy_px))
        return float(ux), float(uy)

    # ------------------------------------------------------------------ what the map says
    @property
    def field_map(self) -> npt.NDArray[np.float64]:
        """How the field of view moves (px) per actuator nm: the map with the sign that the moves have."""
        return -self.array

    @property
    def rotation_deg(self) -> float:
        """Angle of the actuator's x axis in the image (field-of-view moves), degrees in (-180, 180]."""
        g = self.field_map
        return math.degrees(math.atan2(g[1, 0], g[0, 0]))

    @property
    def mirrored(self) -> bool:
        """True when the actuator's axes are a mirror image of the camera's (left-handed against it)."""
        return bool(np.linalg.det(self.field_map) < 0)

    @property
    def px_per_nm(self) -> tuple[float, float]:
        """Image px per actuator nm along the actuator's x and y axes."""
        g = self.field_map
        return float(np.hypot(*g[:, 0])), float(np.hypot(*g[:, 1]))

    @property
    def skew_deg(self) -> float:
        """How far the actuator's axes are from perpendicular in the image, degrees."""
        g = self.field_map
        cosine = float(g[:, 0] @ g[:, 1]) / (self.px_per_nm[0] * self.px_per_nm[1])
        return 90.0 - math.degrees(math.acos(min(1.0, abs(cosine))))

    def describe(self, pixel_size_nm: float | None = None) -> str:
        sx, sy = self.px_per_nm
        text = (
            f"{self.actuator}: x axis at {self.rotation_deg:+.2f}° in the image, "
            f"{'mirrored' if self.mirrored else 'not mirrored'}, {sx:.4g} / {sy:.4g} px per nm along x / y, "
            f"axes {self.skew_deg:.2f}° from perpendicular"
        )
        if pixel_size_nm is not None:
            px = pixel_size_nm
            text += f"; 1 {self.actuator} nm moves the image {sx * px:.4f} / {sy * px:.4f} nm along x / y"
        return text

    # ------------------------------------------------------------------ file
    def save(self, path: Path) -> None:
        lines = [
            "# lptem calibrate: the image moves by M u px when the actuator moves by u (nm)",
            f'actuator = "{self.actuator}"',
            "px_per_unit = [[{!r}, {!r}], [{!r}, {!r}]]".format(*self.matrix[0], *self.matrix[1]),
            "",
            "[measured]",
        ]
        for key, value in self.measured.items():
            lines.append(f"{key} = {_toml_value(value)}")
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> ActuatorMap:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise CalibrationError(f"cannot read the calibration {path}: {exc}") from exc
        matrix = data.get("px_per_unit")
        if not (
            isinstance(matrix, list)
            and len(matrix) == 2
            and all(isinstance(row, list) and len(row) == 2 for row in matrix)
            and all(isinstance(v, int | float) and not isinstance(v, bool) for row in matrix for v in row)
        ):
            raise CalibrationError(f"{path}: px_per_unit must be a 2 × 2 array of numbers, got {matrix!r}")
        measured = data.get("measured", {})
        if not isinstance(measured, dict):
            raise CalibrationError(f"{path}: [measured] must be a table")
        actuator = data.get("actuator", "stage")
        try:
            rows = tuple((float(row[0]), float(row[1])) for row in matrix)
            return cls((rows[0], rows[1]), str(actuator), measured)
        except CalibrationError as exc:
            raise CalibrationError(f"{path}: {exc}") from exc


def _toml_value(value: float | int | str) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


@dataclass(frozen=True, slots=True)
class Fit:
    map: ActuatorMap
    residual_px: float
    """RMS of the measured image displacements about the fitted map, px."""


def fit_map(
    moves: npt.ArrayLike, shifts_px: npt.ArrayLike, actuator: str = "stage", **measured: float | int | str
) -> Fit:
    """Least-squares map from actuator moves (n × 2, actuator nm) to image displacements (n × 2, px)."""
    u = np.asarray(moves, dtype=float)
    p = np.asarray(shifts_px, dtype=float)
    if u.ndim != 2 or u.shape[1] != 2 or u.shape != p.shape:
        raise CalibrationError(f"need matching n × 2 moves and shifts, got {u.shape} and {p.shape}")
    if np.linalg.matrix_rank(u) < 2:
        raise CalibrationError("the moves must span two directions (x and y) to fit a 2 × 2 map")
    solution, *_ = np.linalg.lstsq(u, p, rcond=None)  # p ≈ u @ M.T
    m = solution.T
    residual = float(np.sqrt(np.mean(np.sum((p - u @ m.T) ** 2, axis=1))))
    rows = ((float(m[0, 0]), float(m[0, 1])), (float(m[1, 0]), float(m[1, 1])))
    fitted = ActuatorMap(rows, actuator, {**measured, "residual_px": round(residual, 4), "moves": len(u)})
    return Fit(fitted, residual)
