"""What feedback controllers act on: a stage and a beam, as small protocols with swappable backends.

``SimMicroscope`` drives the simulated camera's control socket (``lptem sim --microscope``);
``DryRunMicroscope`` only logs and remembers, for trying a control script without hardware. A real
microscope plugs in by implementing ``Stage`` and/or ``Beam`` over its vendor's API.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from lptem.clients.wire.control import ReqClient

log = logging.getLogger("lptem.actuators")


class MicroscopeError(RuntimeError):
    """A microscope refused or failed a command, or did not answer; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Applied:
    """An actuator's answer to a command."""

    effective_frame: int | None = None
    """The first camera frame that shows the change, when the actuator knows it (else None)."""


@runtime_checkable
class Stage(Protocol):
    def move_by(self, dx_nm: float, dy_nm: float) -> Applied:
        """Move by (dx, dy) nm in the actuator's own axes. Where those are the camera's, the field of view
        shifts by (dx, dy) and objects appear to move by (-dx, -dy); ``lptem calibrate`` measures how
        they really move (clients/feedback/calibration.py)."""
        ...


@runtime_checkable
class Beam(Protocol):
    def dose_rate(self) -> float:
        """The current dose rate, e-/Å²/s."""
        ...

    def set_dose_rate(self, dose_rate: float) -> Applied: ...

    def blank(self, on: bool) -> Applied:
        """Blank (True) or unblank the beam."""
        ...


class SimMicroscope(ReqClient):
    """Stage and beam of the simulated microscope, over its control socket."""

    def move_by(self, dx_nm: float, dy_nm: float) -> Applied:
        return _applied(self.request("move_stage", dx_nm=float(dx_nm), dy_nm=float(dy_nm)))

    def dose_rate(self) -> float:
        return float(self.request("state")["dose_rate"])

    def set_dose_rate(self, dose_rate: float) -> Applied:
        return _applied(self.request("set_dose", dose_rate=float(dose_rate)))

    def blank(self, on: bool) -> Applied:
        return _applied(self.request("blank", on=bool(on)))

    def stage_nm(self) -> tuple[float, float]:
        x, y = self.request("state")["stage_nm"]
        return float(x), float(y)


def _applied(reply: dict[str, object]) -> Applied:
    frame = reply.get("frame")
    return Applied(frame if isinstance(frame, int) else None)


class DryRunMicroscope:
    """Logs every command and keeps the state it would have; touches nothing."""

    def __init__(self, dose_rate: float = 100.0) -> None:
        self.stage = (0.0, 0.0)
        self._dose_rate = dose_rate
        self.blanked = False
        self.commands: list[str] = []

    def _note(self, text: str) -> Applied:
        self.commands.append(text)
        log.info("dry run: %s", text)
        return Applied()

    def move_by(self, dx_nm: float, dy_nm: float) -> Applied:
        self.stage = (self.stage[0] + dx_nm, self.stage[1] + dy_nm)
        return self._note(f"move stage by ({dx_nm:+.2f}, {dy_nm:+.2f}) nm")

    def dose_rate(self) -> float:
        return self._dose_rate

    def set_dose_rate(self, dose_rate: float) -> Applied:
        self._dose_rate = dose_rate
        return self._note(f"set dose rate {dose_rate:g} e-/Å²/s")

    def blank(self, on: bool) -> Applied:
        self.blanked = on
        return self._note("blank the beam" if on else "unblank the beam")

    def close(self) -> None:
        """Nothing to release (same interface as SimMicroscope)."""
