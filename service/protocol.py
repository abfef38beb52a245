"""Wire protocol v1: the bytes between cameras, the daemon and subscribers (docs/protocol.md).

Everything is msgpack. This module is the single definition both sides import: cameras and replay
encode frames with :func:`encode_header` (+ the raw pixel bytes); the daemon decodes them with
:func:`decode_ingest`, publishes :class:`TrackMessage` / :class:`StatusMessage` / :class:`PreviewMessage`
that subscribers decode with :func:`decode_result`, and parses control requests with :func:`parse_command`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any, Literal

import msgpack
import numpy as np
import numpy.typing as npt

from lptem.engine.api import Box, PointPrompt, Prompt, PromptError

Buffer = bytes | bytearray | memoryview
"""Anything holding message bytes (pass ``zmq.Frame.buffer`` for zero-copy frames)."""

PROTOCOL_VERSION = 1
DTYPES: dict[str, np.dtype[Any]] = {
    "uint8": np.dtype("<u1"),
    "uint16": np.dtype("<u2"),
    "float32": np.dtype("<f4"),
}
MAX_SIDE = 16384
"""Largest accepted frame side, px."""
MAX_PIXELS = 8192 * 8192
"""Largest accepted frame, px (64 Mpx)."""

TOPIC_TRACK = b"track"
TOPIC_STATUS = b"status"
TOPIC_PREVIEW = b"preview"
TOPIC_MSD = b"msd"
TOPICS = (TOPIC_TRACK, TOPIC_STATUS, TOPIC_PREVIEW, TOPIC_MSD)


class RejectReason(StrEnum):
    """Why an ingest message was rejected (the ``reason`` label of the rejected-frames metric)."""

    PARTS = "parts"  # wrong number of message parts
    MSGPACK = "msgpack"  # header is not decodable msgpack
    HEADER = "header"  # header is not a map, or a key is missing or has the wrong type
    VERSION = "version"  # unsupported protocol version
    TYPE = "type"  # unknown message type
    DTYPE = "dtype"  # unknown pixel dtype
    SHAPE = "shape"  # shape not [h, w] with 1 <= h, w <= MAX_SIDE and h*w <= MAX_PIXELS
    SIZE = "size"  # pixel byte count differs from h*w*itemsize
    FRAME_NUMBER = "frame_number"  # negative frame number
    FRAME_ORDER = "frame_order"  # repeated or decreasing frame number within an epoch
    NONFINITE = "nonfinite"  # NaN or infinite pixels in a float32 frame
    INTERNAL = "internal"  # the daemon failed while validating (a bug; the log has the traceback)


class FrameRejected(Exception):
    """An ingest message that violates the protocol; carries a metric reason and a readable detail."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


# ---------------------------------------------------------------------------------------------- ingest


@dataclass(frozen=True, slots=True)
class IngestFrame:
    """A decoded, validated frame. ``pixels`` is a read-only view on the received message (no copy)."""

    frame: int
    t_ns: int
    pixels: npt.NDArray[Any]
    pixel_size_nm: float | None = None
    exposure_s: float | None = None
    series: str | int | None = None


@dataclass(frozen=True, slots=True)
class SeriesMarker:
    """A ``start`` or ``end`` message; ``start`` may carry metadata (pixel size, series id, anything)."""

    kind: Literal["start", "end"]
    series: str | int | None
    meta: dict[str, Any] = field(default_factory=dict)


def _pack(obj: Any, use_bin_type: bool = True) -> bytes:
    data: bytes = msgpack.packb(obj, use_bin_type=use_bin_type)
    return data


def encode_header(
    frame: int,
    t_ns: int,
    shape: tuple[int, int],
    dtype: str,
    *,
    pixel_size_nm: float | None = None,
    exposure_s: float | None = None,
    series: str | int | None = None,
) -> bytes:
    header: dict[str, Any] = {
        "v": PROTOCOL_VERSION,
        "type": "frame",
        "frame": frame,
        "t_ns": t_ns,
        "shape": [shape[0], shape[1]],
        "dtype": dtype,
    }
    if pixel_size_nm is not None:
        header["pixel_size_nm"] = float(pixel_size_nm)
    if exposure_s is not None:
        header["exposure_s"] = float(exposure_s)
    if series is not None:
        header["series"] = series
    return _pack(header)


def wire_dtype_name(array: npt.NDArray[Any]) -> str:
    """The protocol name of ``array``'s dtype; raise ValueError for dtypes v1 does not carry."""
    for name, dt in DTYPES.items():
        if array.dtype.newbyteorder("<") == dt:  # any byte order; senders convert to little-endian
            return name
    raise ValueError(f"protocol v1 carries uint8, uint16 or float32 frames, not {array.dtype}")


def encode_marker(kind: Literal["start", "end"], series: str | int | None = None, **meta: Any) -> bytes:
    """A one-part ``start`` / ``end`` message."""
    msg: dict[str, Any] = {"v": PROTOCOL_VERSION, "type": kind, **meta}
    if series is not None:
        msg["series"] = series
    return _pack(msg)


def decode_ingest(parts: Sequence[Buffer], *, check_finite: bool = True) -> IngestFrame | SeriesMarker:
    """Decode and validate one ingest message; raise :class:`FrameRejected` with a reason otherwise."""
    if not 1 <= len(parts) <= 2:
        raise FrameRejected(RejectReason.PARTS, f"expected 1 or 2 message parts, got {len(parts)}")
    header = _unpack_header(parts[0])
    _require_version(header)
    kind = header.get("type")
    if kind in ("start", "end"):
        if len(parts) != 1:
            raise FrameRejected(RejectReason.PARTS, f"a '{kind}' message has 1 part, got {len(parts)}")
        meta = {k: v for k, v in header.items() if k not in ("v", "type", "series")}
        if "pixel_size_nm" in meta:
            meta["pixel_size_nm"] = _optional_positive(header, "pixel_size_nm")
        return SeriesMarker(kind=kind, series=_optional_series(header), meta=meta)
    if kind != "frame":
        raise FrameRejected(RejectReason.TYPE, f"unknown message type {kind!r}")
    if len(parts) != 2:
        raise FrameRejected(RejectReason.PARTS, f"a frame has 2 parts [header, pixels], got {len(parts)}")
    return _decode_frame(header, parts[1], check_finite)


def _unpack_header(raw: Buffer) -> dict[str, Any]:
    try:
        header = msgpack.unpackb(raw, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types for garbage input
        raise FrameRejected(RejectReason.MSGPACK, f"header is not msgpack ({type(exc).__name__})") from exc
    if not isinstance(header, dict):
        raise FrameRejected(RejectReason.HEADER, f"header must be a map, got {type(header).__name__}")
    if any(isinstance(key, bytes) for key in header):
        raise FrameRejected(RejectReason.HEADER, "header keys must be msgpack str, not bin")
    return header


def _require_version(header: Mapping[str, Any]) -> None:
    if "v" not in header:
        raise FrameRejected(RejectReason.HEADER, "missing key 'v'")
    if not _is_int(header["v"]) or header["v"] != PROTOCOL_VERSION:
        raise FrameRejected(RejectReason.VERSION, f"protocol version {header['v']!r} is not supported (1)")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def _optional_series(header: Mapping[str, Any]) -> str | int | None:
    series = header.get("series")
    if series is not None and not (isinstance(series, str) or _is_int(series)):
        raise FrameRejected(RejectReason.HEADER, "'series' must be a string or an integer")
    return series


def _decode_frame(header: Mapping[str, Any], pixels: Buffer, check_finite: bool) -> IngestFrame:
    for key in ("frame", "t_ns", "shape", "dtype"):
        if key not in header:
            raise FrameRejected(RejectReason.HEADER, f"missing key {key!r}")
    frame, t_ns = header["frame"], header["t_ns"]
    if not _is_int(frame):
        raise FrameRejected(RejectReason.HEADER, f"'frame' must be an integer, got {frame!r}")
    if frame < 0:
        raise FrameRejected(RejectReason.FRAME_NUMBER, f"frame number {frame} is negative")
    if not _is_int(t_ns) or t_ns < 0:
        raise FrameRejected(RejectReason.HEADER, f"'t_ns' must be a non-negative integer, got {t_ns!r}")
    dtype = DTYPES.get(header["dtype"]) if isinstance(header["dtype"], str) else None
    if dtype is None:
        raise FrameRejected(RejectReason.DTYPE, f"dtype {header['dtype']!r} is not one of {list(DTYPES)}")
    rows, cols = _validated_shape(header["shape"])
    view = memoryview(pixels)
    expected = rows * cols * dtype.itemsize
    if view.nbytes != expected:
        raise FrameRejected(
            RejectReason.SIZE, f"{rows}x{cols} {header['dtype']} needs {expected} bytes, got {view.nbytes}"
        )
    array = np.frombuffer(view, dtype=dtype).reshape(rows, cols)
    if check_finite and dtype.kind == "f" and not math.isfinite(float(array.sum(dtype=np.float64))):
        raise FrameRejected(RejectReason.NONFINITE, "frame contains NaN or infinite pixels")
    return IngestFrame(
        frame=frame,
        t_ns=t_ns,
        pixels=array,
        pixel_size_nm=_optional_positive(header, "pixel_size_nm"),
        exposure_s=_optional_positive(header, "exposure_s"),
        series=_optional_series(header),
    )


def _validated_shape(shape: Any) -> tuple[int, int]:
    if not (isinstance(shape, list | tuple) and len(shape) == 2 and all(_is_int(s) for s in shape)):
        raise FrameRejected(RejectReason.SHAPE, f"shape must be [h, w] integers, got {shape!r}")
    rows, cols = shape
    if not (1 <= rows <= MAX_SIDE and 1 <= cols <= MAX_SIDE and rows * cols <= MAX_PIXELS):
        raise FrameRejected(
            RejectReason.SHAPE, f"shape {rows}x{cols} outside 1..{MAX_SIDE} per side, {MAX_PIXELS} px total"
        )
    return rows, cols


def _optional_positive(header: Mapping[str, Any], key: str) -> float | None:
    value = header.get(key)
    if value is None:
        return None
    if not _is_number(value) or value <= 0:
        raise FrameRejected(RejectReason.HEADER, f"{key!r} must be a positive number, got {value!r}")
    return float(value)


# ---------------------------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class TrackedObject:
    """One object in a ``track`` message. Positions in px (and nm when the pixel size is known)."""

    id: int
    x: float
    y: float
    theta_deg: float
    area_px: float
    score: float
    visible: bool
    bbox: tuple[int, int, int, int]
    x_nm: float | None = None
    y_nm: float | None = None


@dataclass(frozen=True, slots=True)
class TrackMessage:
    """Topic ``track``: one per processed frame. Times are ns since the Unix epoch.

    ``t_ns`` is the camera's acquisition time (its clock), ``t_recv_ns`` when the daemon received the
    frame, ``t_done_ns`` when the engine finished it (daemon clock). ``dropped_total`` counts frames the
    daemon's backpressure policy discarded since it started; ``epoch`` increments whenever the camera's
    frame numbering starts again (a ``start`` marker, a new ``series``, or the counter going back to 0).
    """

    frame: int
    epoch: int
    t_ns: int
    t_recv_ns: int
    t_done_ns: int
    engine: str
    dropped_total: int
    objects: tuple[TrackedObject, ...]
    pixel_size_nm: float | None = None
    series: str | int | None = None
    shape: tuple[int, int] | None = None
    """The frame's [rows, cols], px."""

    def to_wire(self) -> dict[str, Any]:
        msg = asdict(self)
        msg["objects"] = [_object_to_wire(o) for o in self.objects]
        return {"v": PROTOCOL_VERSION, **msg}

    @classmethod
    def from_wire(cls, msg: Mapping[str, Any]) -> TrackMessage:
        objects = tuple(
            TrackedObject(**{**_known(TrackedObject, o), "bbox": tuple(o["bbox"])})  # msgpack gives lists
            for o in msg["objects"]
        )
        shape = tuple(msg["shape"]) if msg.get("shape") is not None else None
        return cls(**{**_known(cls, msg), "objects": objects, "shape": shape})


def _object_to_wire(obj: TrackedObject) -> dict[str, Any]:
    out = asdict(obj)
    if obj.x_nm is None:
        del out["x_nm"], out["y_nm"]
    out["bbox"] = list(obj.bbox)
    return out


@dataclass(frozen=True, slots=True)
class StatusMessage:
    """Topic ``status`` (1 Hz heartbeat) and the reply to the ``status`` command. Rates in frames/s."""

    t_ns: int
    started_ns: int
    engine: str
    policy: str
    frames_received: int
    frames_processed: int
    frames_dropped: int
    frames_rejected: dict[str, int]
    frames_missed_upstream: int
    series_restarts: int
    queue_depth: int
    fps_in: float
    fps_out: float
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    objects: list[int]
    auto_detect: bool
    last_frame: int | None
    pixel_size_nm: float | None
    version: str
    extra: dict[str, Any] = field(default_factory=dict)
    diffusion: list[dict[str, Any]] = field(default_factory=list)
    """Per object from the rolling MSD: ``id``, ``D_px2_per_frame``, ``D_nm2_per_s`` (None without a
    pixel size), ``alpha`` (NaN without a fit)."""

    def to_wire(self) -> dict[str, Any]:
        return {"v": PROTOCOL_VERSION, **asdict(self)}

    @classmethod
    def from_wire(cls, msg: Mapping[str, Any]) -> StatusMessage:
        return cls(**_known(cls, msg))


@dataclass(frozen=True, slots=True)
class ParticleMsd:
    """One object's rolling MSD and its fit MSD = 4 D τ^α (see docs/statistics.md)."""

    id: int
    msd_px2: list[float]
    """Time-averaged MSD at each lag, px² (NaN where no pair)."""
    pairs: list[int]
    D_px2_per_frame: float
    D_nm2_per_s: float | None
    alpha: float
    fit_lags: list[int]
    """[first, last] lag used by the fit; [0, 0] without a fit."""
    r_squared: float
    note: str | None = None
    """Why there is no fit, if there is none."""
    msd_nm2: list[float] | None = None
    """``msd_px2`` in nm² (None without a pixel size)."""


@dataclass(frozen=True, slots=True)
class MsdMessage:
    """Topic ``msd`` (default 5 Hz): every object's MSD over the last ``window`` frames."""

    frame: int
    epoch: int
    t_ns: int
    window: int
    lags: list[int]
    """Lags, frames."""
    lag_s: list[float]
    """Lags, seconds (lags x the frame time measured from the window's timestamps)."""
    frame_time_s: float
    irregular: bool
    """Some frame interval in the window differs from the median by more than 10 %."""
    pixel_size_nm: float | None
    particles: tuple[ParticleMsd, ...]

    def to_wire(self) -> dict[str, Any]:
        msg = asdict(self)
        msg["particles"] = [asdict(p) for p in self.particles]
        return {"v": PROTOCOL_VERSION, **msg}

    @classmethod
    def from_wire(cls, msg: Mapping[str, Any]) -> MsdMessage:
        particles = tuple(ParticleMsd(**_known(ParticleMsd, p)) for p in msg["particles"])
        return cls(**{**_known(cls, msg), "particles": particles})


@dataclass(frozen=True, slots=True)
class PreviewMessage:
    """Topic ``preview`` (≤ 10 Hz): a block-averaged frame and the nearest-sampled label map.

    ``scale`` is the downsampling factor: preview pixel (r, c) covers frame pixels
    ``[r*scale, (r+1)*scale) x [c*scale, (c+1)*scale)``.
    """

    frame: int
    t_ns: int
    scale: int
    image: npt.NDArray[np.float32]
    labels: npt.NDArray[np.uint16]

    def to_wire(self) -> dict[str, Any]:
        return {
            "v": PROTOCOL_VERSION,
            "frame": self.frame,
            "t_ns": self.t_ns,
            "scale": self.scale,
            "shape": list(self.image.shape),
            "image": np.ascontiguousarray(self.image, dtype="<f4").tobytes(),
            "labels": np.ascontiguousarray(self.labels, dtype="<u2").tobytes(),
        }

    @classmethod
    def from_wire(cls, msg: Mapping[str, Any]) -> PreviewMessage:
        rows, cols = msg["shape"]
        return cls(
            frame=msg["frame"],
            t_ns=msg["t_ns"],
            scale=msg["scale"],
            image=np.frombuffer(msg["image"], dtype="<f4").reshape(rows, cols),
            labels=np.frombuffer(msg["labels"], dtype="<u2").reshape(rows, cols),
        )


ResultMessage = TrackMessage | StatusMessage | PreviewMessage | MsdMessage
_RESULT_TYPES: dict[
    bytes, type[TrackMessage] | type[StatusMessage] | type[PreviewMessage] | type[MsdMessage]
] = {
    TOPIC_TRACK: TrackMessage,
    TOPIC_STATUS: StatusMessage,
    TOPIC_PREVIEW: PreviewMessage,
    TOPIC_MSD: MsdMessage,
}


def _known(cls: type, msg: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of ``msg`` that are fields of ``cls``: within v1, consumers ignore keys they do not know."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in msg.items() if k in names}


def encode_result(topic: bytes, message: ResultMessage | Mapping[str, Any]) -> list[bytes]:
    """The two parts ``[topic, msgpack payload]`` of a published result."""
    payload = message if isinstance(message, Mapping) else message.to_wire()
    return [topic, _pack(payload, use_bin_type=True)]


def decode_result(topic: bytes, payload: Buffer) -> ResultMessage | dict[str, Any]:
    """Decode a published result; topics without a typed message come back as dicts."""
    msg = msgpack.unpackb(payload, raw=False)
    kind = _RESULT_TYPES.get(bytes(topic))
    return msg if kind is None else kind.from_wire(msg)


# ---------------------------------------------------------------------------------------------- control


class CommandError(ValueError):
    """A control request that cannot be executed; its text is the reply's ``error``."""


@dataclass(frozen=True, slots=True)
class MsdSettings:
    """Rolling-MSD settings: ``window`` frames, lags 1..``max_lag`` (or up to 16 log-spaced ones up to
    it), published ``rate_hz`` times a second (0 = never), fitted on the first ``fit_lags`` lags."""

    window: int = 256
    max_lag: int = 32
    log_lags: bool = False
    rate_hz: float = 5.0
    fit_lags: int = 10

    def __post_init__(self) -> None:
        if not 8 <= self.window <= 100_000:
            raise CommandError(f"msd window must be 8..100000 frames, got {self.window}")
        if not 1 <= self.max_lag < self.window:
            raise CommandError(f"msd max_lag must be 1..window-1, got {self.max_lag}")
        if not 0 <= self.rate_hz <= 50:
            raise CommandError(f"msd rate_hz must be 0..50, got {self.rate_hz}")
        if not self.fit_lags >= 3:
            raise CommandError(
                f"msd fit_lags must be at least 3 (a power law has 2 parameters), got {self.fit_lags}"
            )


@dataclass(frozen=True, slots=True)
class Command:
    """A parsed control request. ``name`` is the command; the other fields are its arguments."""

    name: str
    prompt: Prompt | None = None
    obj_id: int | None = None
    enabled: bool | None = None
    msd: dict[str, Any] | None = None
    """``set_msd``: the settings to change (validated against MsdSettings when applied)."""


COMMANDS = (
    "add_object", "remove_object", "list_objects", "reset", "status", "ping", "set_auto_detect", "set_msd",
)  # fmt: skip
_MSD_KEYS = {"window": int, "max_lag": int, "log_lags": bool, "rate_hz": float, "fit_lags": int}


def parse_command(raw: Buffer) -> Command:
    """Parse a control request; raise :class:`CommandError` naming what is wrong."""
    try:
        request = msgpack.unpackb(raw, raw=False)
    except Exception as exc:  # garbage bytes raise several unrelated msgpack exception types
        raise CommandError(f"request is not msgpack ({type(exc).__name__})") from exc
    if not isinstance(request, dict):
        raise CommandError("request must be a map {'cmd': ...}")
    name = request.get("cmd")
    if name not in COMMANDS:
        raise CommandError(f"unknown command {name!r}; known: {', '.join(COMMANDS)}")
    if name == "add_object":
        return Command(name, prompt=_parse_prompt(request), obj_id=_optional_id(request))
    if name == "remove_object":
        obj_id = _optional_id(request)
        if obj_id is None:
            raise CommandError("remove_object needs 'id'")
        return Command(name, obj_id=obj_id)
    if name == "set_msd":
        return Command(name, msd=_parse_msd(request))
    if name == "set_auto_detect":
        enabled = request.get("enabled")
        if not isinstance(enabled, bool):
            raise CommandError("set_auto_detect needs 'enabled': true or false")
        return Command(name, enabled=enabled)
    return Command(name)


def _parse_msd(request: Mapping[str, Any]) -> dict[str, Any]:
    changes = {k: v for k, v in request.items() if k != "cmd"}
    unknown = sorted(set(changes) - set(_MSD_KEYS))
    if unknown or not changes:
        raise CommandError(f"set_msd takes one or more of {sorted(_MSD_KEYS)}, got {sorted(changes)}")
    for key, value in changes.items():
        kind = _MSD_KEYS[key]
        ok = (
            isinstance(value, bool)
            if kind is bool
            else (_is_int(value) if kind is int else _is_number(value))
        )
        if not ok:
            raise CommandError(f"set_msd: {key!r} must be {kind.__name__}, got {value!r}")
    return changes


def _optional_id(request: Mapping[str, Any]) -> int | None:
    obj_id = request.get("id")
    if obj_id is None:
        return None
    if not _is_int(obj_id) or not 1 <= obj_id <= 65535:
        raise CommandError(f"'id' must be an integer in 1..65535, got {obj_id!r}")
    return int(obj_id)


def _parse_prompt(request: Mapping[str, Any]) -> Prompt:
    box_raw, points_raw = request.get("box"), request.get("points", [])
    try:
        box = None
        if box_raw is not None:
            if not (isinstance(box_raw, list) and len(box_raw) == 4 and all(map(_is_number, box_raw))):
                raise CommandError(f"'box' must be [x0, y0, x1, y1] numbers, got {box_raw!r}")
            box = Box(*(float(v) for v in box_raw))
        if not isinstance(points_raw, list):
            raise CommandError("'points' must be a list of [x, y, label]")
        points = tuple(_parse_point(p) for p in points_raw)
        return Prompt(box=box, points=points)
    except PromptError as exc:
        raise CommandError(str(exc)) from exc


def _parse_point(raw: Any) -> PointPrompt:
    if not (isinstance(raw, list) and len(raw) == 3 and _is_number(raw[0]) and _is_number(raw[1])):
        raise CommandError(f"a point must be [x, y, label], got {raw!r}")
    if not _is_int(raw[2]) or raw[2] not in (0, 1):
        raise CommandError(f"point label must be 1 (object) or 0 (background), got {raw[2]!r}")
    return PointPrompt(float(raw[0]), float(raw[1]), positive=raw[2] == 1)


def command_request(name: str, **args: Any) -> bytes:
    """Encode a control request (client side)."""
    return _pack({"cmd": name, **args})


def encode_reply(reply: Mapping[str, Any]) -> bytes:
    return _pack(dict(reply), use_bin_type=True)


def decode_reply(raw: Buffer) -> dict[str, Any]:
    reply = msgpack.unpackb(raw, raw=False)
    if not isinstance(reply, dict) or "ok" not in reply:
        raise ValueError(f"malformed control reply: {reply!r}")
    return reply
