"""Wire protocol v1, control socket: requests ``{"cmd": ..., ...}`` and replies (docs/protocol.md §5).

:func:`parse_command` turns a request into one typed command (:data:`Command`); each class holds only
its own, validated arguments. Clients encode requests with :func:`command_request`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import msgpack

from lptem.engine.api import Box, PointPrompt, Prompt, PromptError
from lptem.service.protocol.codec import MAX_SIDE, Buffer, is_int, is_number, pack

MAX_REQUEST_BYTES = 64 * 1024
"""Largest control request, bytes: the daemon's control socket drops a peer that sends more (ZeroMQ's
``MAXMSGSIZE``, before anything is decoded) and :func:`parse_command` refuses it."""
MAX_PROMPT_POINTS = 64
"""Most points one prompt may hold."""
MAX_OBJECTS = 256
"""Most objects the daemon tracks at once; ``add_object`` for a new one is refused beyond it."""
QUOTE_CHARS = 60
"""An error message quotes at most this many characters of what it got."""


class CommandError(ValueError):
    """A control request that cannot be executed; its text is the reply's ``error``."""


@dataclass(frozen=True, slots=True)
class AddObject:
    """``add_object``: a new object (``obj_id`` None: the next free id) or a correction of ``obj_id``."""

    NAME: ClassVar[str] = "add_object"
    CHANGES_STATE: ClassVar[bool] = True
    prompt: Prompt
    obj_id: int | None = None

    def arguments(self) -> dict[str, Any]:
        args: dict[str, Any] = {} if self.obj_id is None else {"id": self.obj_id}
        box = self.prompt.box
        if box is not None:
            args["box"] = [box.x0, box.y0, box.x1, box.y1]
        args["points"] = [[p.x, p.y, int(p.positive)] for p in self.prompt.points]
        return args


@dataclass(frozen=True, slots=True)
class RemoveObject:
    """``remove_object``: stop tracking ``obj_id``."""

    NAME: ClassVar[str] = "remove_object"
    CHANGES_STATE: ClassVar[bool] = True
    obj_id: int

    def arguments(self) -> dict[str, Any]:
        return {"id": self.obj_id}


@dataclass(frozen=True, slots=True)
class ListObjects:
    """``list_objects``: the tracked objects with their last positions."""

    NAME: ClassVar[str] = "list_objects"
    CHANGES_STATE: ClassVar[bool] = False

    def arguments(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True, slots=True)
class Reset:
    """``reset``: forget every object."""

    NAME: ClassVar[str] = "reset"
    CHANGES_STATE: ClassVar[bool] = True

    def arguments(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True, slots=True)
class GetStatus:
    """``status``: the daemon's counters, rates and objects (a status message)."""

    NAME: ClassVar[str] = "status"
    CHANGES_STATE: ClassVar[bool] = False

    def arguments(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True, slots=True)
class Ping:
    """``ping``: answered at once by the control thread, with the daemon's clock."""

    NAME: ClassVar[str] = "ping"
    CHANGES_STATE: ClassVar[bool] = False

    def arguments(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True, slots=True)
class SetAutoDetect:
    """``set_auto_detect``: switch automatic detection of new particles on or off."""

    NAME: ClassVar[str] = "set_auto_detect"
    CHANGES_STATE: ClassVar[bool] = True
    enabled: bool

    def arguments(self) -> dict[str, Any]:
        return {"enabled": self.enabled}


MSD_KEYS: dict[str, type] = {
    "window": int,
    "max_lag": int,
    "log_lags": bool,
    "rate_hz": float,
    "fit_lags": int,
}
"""The rolling-MSD settings ``set_msd`` may change, with their types."""


@dataclass(frozen=True, slots=True)
class SetMsd:
    """``set_msd``: change some rolling-MSD settings (their ranges are checked when applied)."""

    NAME: ClassVar[str] = "set_msd"
    CHANGES_STATE: ClassVar[bool] = True
    changes: dict[str, int | float | bool]

    def arguments(self) -> dict[str, Any]:
        return dict(self.changes)


Command = AddObject | RemoveObject | ListObjects | Reset | GetStatus | Ping | SetAutoDetect | SetMsd
COMMAND_TYPES: tuple[type[Command], ...] = (
    AddObject, RemoveObject, ListObjects, Reset, GetStatus, Ping, SetAutoDetect, SetMsd,
)  # fmt: skip
COMMANDS = tuple(kind.NAME for kind in COMMAND_TYPES)


def quote(value: Any) -> str:
    """``repr(value)`` cut to ``QUOTE_CHARS`` characters: an error never repeats a large input (a request
    is at most ``MAX_REQUEST_BYTES``, so the repr itself is cheap)."""
    text = repr(value)
    return text if len(text) <= QUOTE_CHARS else f"{text[: QUOTE_CHARS - 1]}… ({len(text)} characters)"


def parse_command(raw: Buffer) -> Command:
    """Parse a control request; raise :class:`CommandError` naming what is wrong."""
    if len(raw) > MAX_REQUEST_BYTES:
        raise CommandError(f"request of {len(raw)} bytes exceeds the limit of {MAX_REQUEST_BYTES} bytes")
    try:
        request = msgpack.unpackb(raw, raw=False)
    except Exception as exc:  # garbage bytes raise several unrelated msgpack exception types
        raise CommandError(f"request is not msgpack ({type(exc).__name__})") from exc
    if not isinstance(request, dict):
        raise CommandError("request must be a map {'cmd': ...}")
    name = request.get("cmd")
    if name == "add_object":
        return AddObject(_parse_prompt(request), _optional_id(request))
    if name == "remove_object":
        obj_id = _optional_id(request)
        if obj_id is None:
            raise CommandError("remove_object needs 'id'")
        return RemoveObject(obj_id)
    if name == "set_msd":
        return SetMsd(_parse_msd(request))
    if name == "set_auto_detect":
        enabled = request.get("enabled")
        if not isinstance(enabled, bool):
            raise CommandError("set_auto_detect needs 'enabled': true or false")
        return SetAutoDetect(enabled)
    for kind in (ListObjects, Reset, GetStatus, Ping):
        if name == kind.NAME:
            return kind()
    raise CommandError(f"unknown command {quote(name)}; known: {', '.join(COMMANDS)}")


def _parse_msd(request: Mapping[str, Any]) -> dict[str, int | float | bool]:
    changes = {k: v for k, v in request.items() if k != "cmd"}
    unknown = sorted(set(changes) - set(MSD_KEYS))
    if unknown or not changes:
        raise CommandError(
            f"set_msd takes one or more of {sorted(MSD_KEYS)}, got {quote(sorted(map(str, changes)))}"
        )
    for key, value in changes.items():
        kind = MSD_KEYS[key]
        ok = isinstance(value, bool) if kind is bool else (is_int(value) if kind is int else is_number(value))
        if not ok:
            raise CommandError(f"set_msd: {key!r} must be {kind.__name__}, got {quote(value)}")
    return changes


def _optional_id(request: Mapping[str, Any]) -> int | None:
    obj_id = request.get("id")
    if obj_id is None:
        return None
    if not is_int(obj_id) or not 1 <= obj_id <= 65535:
        raise CommandError(f"'id' must be an integer in 1..65535, got {quote(obj_id)}")
    return int(obj_id)


def _parse_prompt(request: Mapping[str, Any]) -> Prompt:
    box_raw, points_raw = request.get("box"), request.get("points", [])
    try:
        box = None
        if box_raw is not None:
            if not (isinstance(box_raw, list) and len(box_raw) == 4 and all(map(is_number, box_raw))):
                raise CommandError(f"'box' must be [x0, y0, x1, y1] numbers, got {quote(box_raw)}")
            box = Box(*(float(v) for v in box_raw))
        if not isinstance(points_raw, list):
            raise CommandError("'points' must be a list of [x, y, label]")
        if len(points_raw) > MAX_PROMPT_POINTS:
            raise CommandError(f"a prompt holds at most {MAX_PROMPT_POINTS} points, got {len(points_raw)}")
        points = tuple(_parse_point(p) for p in points_raw)
        prompt = Prompt(box=box, points=points)
        prompt.check_within((MAX_SIDE, MAX_SIDE))  # before any frame: the largest legal one
        return prompt
    except PromptError as exc:
        raise CommandError(str(exc)) from exc


def _parse_point(raw: Any) -> PointPrompt:
    if not (isinstance(raw, list) and len(raw) == 3 and is_number(raw[0]) and is_number(raw[1])):
        raise CommandError(f"a point must be [x, y, label], got {quote(raw)}")
    if not is_int(raw[2]) or raw[2] not in (0, 1):
        raise CommandError(f"point label must be 1 (object) or 0 (background), got {quote(raw[2])}")
    return PointPrompt(float(raw[0]), float(raw[1]), positive=raw[2] == 1)


def command_request(name: str, **args: Any) -> bytes:
    """Encode a control request (client side)."""
    return pack({"cmd": name, **args})


def encode_reply(reply: Mapping[str, Any]) -> bytes:
    return pack(dict(reply))


def decode_reply(raw: Buffer) -> dict[str, Any]:
    reply = msgpack.unpackb(raw, raw=False)
    if not isinstance(reply, dict) or "ok" not in reply:
        raise ValueError(f"malformed control reply: {reply!r}")
    return reply
