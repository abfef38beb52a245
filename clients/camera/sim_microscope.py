"""The simulated microscope's control socket: stage moves and beam changes, applied between frames.

A REP socket beside the simulated camera (``lptem sim --microscope``), so that a feedback loop runs over
the same kind of socket a real microscope's control server would offer. One request is one msgpack
map ``{"cmd": name, ...}``; the reply is ``{"ok": true, ...state}`` or ``{"ok": false, "error": text}``.

    move_stage  dx_nm, dy_nm (numbers)   shift the field of view; particles appear to move by (-dx, -dy)
    set_dose    dose_rate (e-/Å²/s > 0)   the beam's dose rate from the next frame
    blank       on (bool)                 blank / unblank the beam (blanked frames hold read noise only)
    state       -                         the current state

Every successful reply carries the state: ``stage_nm`` [x, y] (the stage's position in its own axes,
from where it started), ``dose_rate``, ``blanked``, and ``frame``, the index of the next frame to be
acquired (the first one that shows the change).

The stage's axes need not be the camera's: ``StageGeometry`` rotates, mirrors and scales its moves (as a
real stage is, against the camera), so that ``lptem calibrate`` has something to find.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import zmq

from lptem.engine.sim.simulator import Simulator
from lptem.service.auth import Gatekeeper, user_id_of
from lptem.service.keys import KeyFolder
from lptem.service.protocol.curve import KeyFileError
from lptem.service.stats import Stats

log = logging.getLogger("lptem.sim.control")

DEFAULT_SIM_MICROSCOPE = "tcp://127.0.0.1:5560"


@dataclass(frozen=True, slots=True)
class StageGeometry:
    """How the simulated stage's axes sit against the camera's."""

    rotation_deg: float = 0.0
    """Angle of the stage's x axis in the image, from the image's +x towards its +y (rows grow downwards,
    so clockwise on screen), degrees."""
    mirrored: bool = False
    """The stage's y axis is reversed against the camera's (a mirror image)."""
    scale: float = 1.0
    """Image nm per stage nm."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rotation_deg) and math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"stage rotation must be finite and scale > 0, got {self}")

    def field_shift_px(self, dx_nm: float, dy_nm: float, pixel_size_nm: float) -> tuple[float, float]:
        """How far the field of view moves, image px, when the stage moves by (dx, dy) stage nm."""
        if self.mirrored:
            dy_nm = -dy_nm
        c, s = math.cos(math.radians(self.rotation_deg)), math.sin(math.radians(self.rotation_deg))
        k = self.scale / pixel_size_nm
        return k * (c * dx_nm - s * dy_nm), k * (s * dx_nm + c * dy_nm)


class SimCommandError(ValueError):
    """A request the simulated microscope refuses; the message says why."""


@dataclass(frozen=True, slots=True)
class SimCommand:
    name: str
    dx_nm: float = 0.0
    dy_nm: float = 0.0
    dose_rate: float | None = None
    on: bool | None = None


def parse_sim_command(raw: bytes) -> SimCommand:
    try:
        request = msgpack.unpackb(raw, raw=False)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise SimCommandError(f"not a msgpack map: {exc}") from exc
    if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
        raise SimCommandError("a request is a msgpack map with a str 'cmd'")
    name = request["cmd"]
    if name == "move_stage":
        return SimCommand(name, dx_nm=_finite(request, "dx_nm"), dy_nm=_finite(request, "dy_nm"))
    if name == "set_dose":
        dose = _finite(request, "dose_rate")
        if dose <= 0:
            raise SimCommandError(f"dose_rate must be > 0 e-/Å²/s, got {dose}")
        return SimCommand(name, dose_rate=dose)
    if name == "blank":
        if not isinstance(request.get("on"), bool):
            raise SimCommandError("blank needs 'on': true or false")
        return SimCommand(name, on=request["on"])
    if name == "state":
        return SimCommand(name)
    raise SimCommandError(f"unknown command {name!r}; known: move_stage, set_dose, blank, state")


def _finite(request: dict[str, Any], key: str) -> float:
    value = request.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SimCommandError(f"{key!r} must be a finite number, got {value!r}")
    return float(value)


class SimMicroscopeServer:
    """Serves the control socket of one Simulator; call ``serve`` from the camera's thread."""

    def __init__(
        self,
        simulator: Simulator,
        endpoint: str = DEFAULT_SIM_MICROSCOPE,
        *,
        keys: Path | None = None,
        stage: StageGeometry | None = None,
    ) -> None:
        """``keys``: a key folder (lptem keys); then only ``operator`` keys may move the stage or the beam.
        ``stage``: how the stage's axes sit against the camera's (default: aligned, same scale)."""
        self.simulator = simulator
        self.pixel_size_nm = simulator.config.pixel_size_nm
        self.stage = stage or StageGeometry()
        self._stage_nm = [0.0, 0.0]
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.REP)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.MAXMSGSIZE, 4096)  # a command is a few dozen bytes
        self._gatekeeper: Gatekeeper | None = None
        try:
            if keys is not None:
                self._gatekeeper = Gatekeeper(self._context, KeyFolder(keys), Stats())
                self._gatekeeper.secure(self._socket, "microscope")
            self._socket.bind(endpoint)
        except (zmq.ZMQError, KeyFileError):
            self._socket.close()
            if self._gatekeeper is not None:
                self._gatekeeper.close()
            self._context.term()
            raise
        self.endpoint: str = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.applied = 0
        self.refused = 0

    def serve(self, timeout_s: float = 0.0) -> int:
        """Answer every waiting request, waiting up to ``timeout_s`` for the first; returns how many."""
        handled = 0
        wait_ms = max(0, int(timeout_s * 1000))
        while self._socket.poll(wait_ms if handled == 0 else 0):
            request = self._socket.recv(copy=False)
            gate = self._gatekeeper
            if gate is not None and not gate.may(user_id_of(request), "microscope"):
                gate.refused(
                    "microscope", "refused a microscope command: the key is not authorised (any more)"
                )
                reply: dict[str, Any] = {"ok": False, "error": "not permitted: this key is not authorised"}
            else:
                reply = self._answer(request.bytes)
            self._socket.send(msgpack.packb(reply, use_bin_type=True))
            handled += 1
        return handled

    def _answer(self, raw: bytes) -> dict[str, Any]:
        try:
            command = parse_sim_command(raw)
        except SimCommandError as exc:
            self.refused += 1
            log.warning("refused a control request: %s", exc)
            return {"ok": False, "error": str(exc)}
        self._apply(command)
        if command.name != "state":
            self.applied += 1
        return {"ok": True, **self.state()}

    def _apply(self, command: SimCommand) -> None:
        sim = self.simulator
        if command.name == "move_stage":
            sim.move_stage(*self.stage.field_shift_px(command.dx_nm, command.dy_nm, self.pixel_size_nm))
            self._stage_nm[0] += command.dx_nm
            self._stage_nm[1] += command.dy_nm
        elif command.name == "set_dose" and command.dose_rate is not None:
            sim.set_dose_rate(command.dose_rate)
        elif command.name == "blank" and command.on is not None:
            sim.blank_beam(command.on)

    def state(self) -> dict[str, Any]:
        sim = self.simulator
        return {
            "stage_nm": list(self._stage_nm),
            "dose_rate": sim.stack.dose_rate,
            "blanked": sim.beam_blanked,
            "frame": sim.index,
        }

    def close(self) -> None:
        self._socket.close()
        if self._gatekeeper is not None:
            self._gatekeeper.close()
        self._context.term()
