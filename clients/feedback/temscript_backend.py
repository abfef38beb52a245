"""Thermo Fisher / FEI microscopes through the TEM scripting interface, via temscript's HTTP server.

On the microscope PC, ``temscript-server --host ADDRESS -p PORT`` exposes the scripting interface; here
``temscript.RemoteMicroscope`` talks to it (JSON only: never pickle, which would let the server run code
here). ``--microscope temscript+http://HOST:PORT`` selects this backend.

* **Moves** (``Stage``): the stage (x, y; GO moves, refused beyond the stage's own limits or while it is not
  ready) for large moves, or the user image shift for small, fast ones that keep a particle centred without
  mechanical backlash. Both are read back and set as absolute positions, so a move is exactly the
  commanded increment.
* **Beam** (``Beam``): blanking; and the dose rate through the **spot size**. The scripting interface has no
  dose-rate setting: the spot size sets the beam current in fixed steps without moving or spreading the
  illuminated area (the intensity would also change its size and could wander off the field of view), so
  it is the handle that changes the dose rate alone. What each spot size gives, in e-/Å²/s, is measured by
  the facility for its condenser setting and given as a dose table (``DoseTable``); without one, dose
  changes are refused and only blanking is offered.
* Every call has a timeout; a server that answers errors or does not answer raises ``MicroscopeError``
  naming the call, and nothing retries by itself (the control loop decides, and stops after a few).
"""

from __future__ import annotations

import http.client
import logging
import math
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from lptem.clients.feedback.actuators import Applied, MicroscopeError

log = logging.getLogger("lptem.temscript")

SCHEME = "temscript+http"
NM = 1e-9
"""temscript's lengths are metres."""
_Result = TypeVar("_Result")


def parse_address(url: str) -> tuple[str, int]:
    """``temscript+http://HOST:PORT`` → (host, port)."""
    parts = urlsplit(url)
    if parts.scheme != SCHEME or not parts.hostname or parts.path not in ("", "/"):
        raise ValueError(f"a temscript server is {SCHEME}://HOST:PORT, got {url!r}")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"bad port in {url!r}: {exc}") from exc
    if port is None:
        raise ValueError(f"give the temscript server's port: {SCHEME}://{parts.hostname}:PORT")
    return parts.hostname, port


@dataclass(frozen=True, slots=True)
class DoseTable:
    """Dose rate at the specimen (e-/Å²/s) for each spot size, measured at one condenser intensity."""

    dose_rate: dict[int, float]
    intensity: float | None = None
    """The intensity (C2/C3 excitation) the table was measured at; checked before it is used."""

    def __post_init__(self) -> None:
        bad = {k: v for k, v in self.dose_rate.items() if not (math.isfinite(v) and v > 0)}
        if not self.dose_rate or bad:
            raise ValueError(f"a dose table needs dose rates > 0 e-/Å²/s per spot size, got {self.dose_rate}")

    @classmethod
    def load(cls, path: Path) -> DoseTable:
        """TOML: ``intensity = 0.43`` (optional) and ``[dose_rate]`` with ``"<spot>" = e-/Å²/s``."""
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
            rates = {int(spot): float(rate) for spot, rate in data["dose_rate"].items()}
            intensity = data.get("intensity")
            return cls(rates, None if intensity is None else float(intensity))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"cannot read the dose table {path}: {exc!s}") from exc

    def spot_for(self, dose_rate: float) -> int:
        """The spot size giving the highest dose rate that is not above ``dose_rate``."""
        allowed = [(rate, spot) for spot, rate in self.dose_rate.items() if rate <= dose_rate * (1 + 1e-9)]
        if not allowed:
            lowest = min(self.dose_rate.values())
            raise MicroscopeError(
                f"no spot size gives {dose_rate:g} e-/Å²/s or less (the lowest is {lowest:g}); blank instead"
            )
        return max(allowed)[1]


class TemscriptMicroscope:
    """A ``Stage`` (stage or image shift) and a ``Beam`` over temscript's remote client."""

    def __init__(
        self,
        url: str,
        *,
        actuator: str = "stage",
        timeout_s: float = 5.0,
        dose_table: DoseTable | None = None,
    ) -> None:
        if actuator not in ("stage", "image-shift"):
            raise ValueError(f"temscript moves the 'stage' or the 'image-shift', not {actuator!r}")
        self.url = url
        self.address = parse_address(url)
        self.actuator = actuator
        self.timeout_s = timeout_s
        self.dose_table = dose_table
        self._remote: Any = None
        version = self._call("connect", lambda m: m.get_version())
        log.info("temscript server %s (version %s): moving the %s", url, version, actuator)
        if dose_table is not None and dose_table.intensity is not None:
            self._check_intensity(dose_table.intensity)

    # ------------------------------------------------------------------ calls
    def _client(self) -> Any:
        if self._remote is None:
            from temscript import RemoteMicroscope  # noqa: PLC0415 - the optional extra 'temscript'

            # RemoteMicroscope asks for the server's version on construction (one GET).
            self._remote = RemoteMicroscope(self.address, transport="JSON", timeout=self.timeout_s)
        return self._remote

    def _call(self, what: str, call: Callable[[Any], _Result]) -> _Result:
        """One request; any failure becomes a MicroscopeError naming it (and the next call reconnects)."""
        try:
            return call(self._client())
        except (OSError, http.client.HTTPException, KeyError, RuntimeError, ValueError, TypeError) as exc:
            self.close()  # temscript drops its connection after a timeout: start afresh next time
            reason = "no answer" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
            raise MicroscopeError(f"temscript {what} at {self.url} failed: {reason}") from exc

    # ------------------------------------------------------------------ Stage
    def move_by(self, dx_nm: float, dy_nm: float) -> Applied:
        if self.actuator == "image-shift":
            x, y = self._call("get image shift", lambda m: m.get_image_shift())
            target = (x + dx_nm * NM, y + dy_nm * NM)
            self._call("set image shift", lambda m: m.set_image_shift(target))
            return Applied()
        status = self._call("get stage status", lambda m: m.get_stage_status())
        if status != "READY":
            raise MicroscopeError(f"the stage is {status}, not READY: not moving it")
        position = self._call("get stage position", lambda m: m.get_stage_position())
        goal = {"x": position["x"] + dx_nm * NM, "y": position["y"] + dy_nm * NM}
        limits = self._call("get stage limits", lambda m: m.get_stage_limits())
        for axis, value in goal.items():
            low, high = limits[axis]
            if not low <= value <= high:
                raise MicroscopeError(
                    f"the move would take stage {axis} to {value / NM:.1f} nm, beyond its limits "
                    f"[{low / NM:.0f}, {high / NM:.0f}] nm"
                )
        self._call("set stage position", lambda m: m.set_stage_position(goal, method="GO"))
        return Applied()

    def position_nm(self) -> tuple[float, float]:
        """Where the actuator is now (stage x, y or image shift x, y), nm."""
        if self.actuator == "image-shift":
            x, y = self._call("get image shift", lambda m: m.get_image_shift())
            return x / NM, y / NM
        position = self._call("get stage position", lambda m: m.get_stage_position())
        return position["x"] / NM, position["y"] / NM

    # ------------------------------------------------------------------ Beam
    def dose_rate(self) -> float:
        table = self._table()
        spot = int(self._call("get spot size", lambda m: m.get_spot_size_index()))
        if spot not in table.dose_rate:
            raise MicroscopeError(f"spot size {spot} is not in the dose table: its dose rate is unknown")
        return table.dose_rate[spot]

    def set_dose_rate(self, dose_rate: float) -> Applied:
        spot = self._table().spot_for(dose_rate)
        self._call("set spot size", lambda m: m.set_spot_size_index(spot))
        return Applied()

    def blank(self, on: bool) -> Applied:
        self._call("blank" if on else "unblank", lambda m: m.set_beam_blanked(bool(on)))
        return Applied()

    def _table(self) -> DoseTable:
        if self.dose_table is None:
            raise MicroscopeError(
                "the scripting interface has no dose-rate setting: give a dose table (spot size → "
                "e-/Å²/s, docs/instruments.md) to change the dose, or blank the beam instead"
            )
        return self.dose_table

    def _check_intensity(self, expected: float) -> None:
        now = float(self._call("get intensity", lambda m: m.get_intensity()))
        if abs(now - expected) > 1e-6:
            raise MicroscopeError(
                f"the dose table was measured at intensity {expected:g}, the microscope is at {now:g}: "
                "its dose rates do not hold"
            )

    def close(self) -> None:
        remote, self._remote = self._remote, None
        connection = getattr(remote, "_conn", None)  # temscript offers no close(); its HTTPConnection
        if connection is not None:
            connection.close()
