"""Wire protocol v1, daemon -> subscribers: ``[topic, payload]`` on the PUB socket (docs/protocol.md §4).

The daemon publishes :class:`TrackMessage`, :class:`StatusMessage`, :class:`MsdMessage` and
:class:`PreviewMessage` with :func:`encode_result`; subscribers decode them with :func:`decode_result`.
Within v1, consumers ignore keys they do not know, so producers may add keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import msgpack
import numpy as np
import numpy.typing as npt

from lptem.service.protocol.codec import PROTOCOL_VERSION, Buffer, pack

TOPIC_TRACK = b"track"
TOPIC_STATUS = b"status"
TOPIC_PREVIEW = b"preview"
TOPIC_MSD = b"msd"
TOPICS = (TOPIC_TRACK, TOPIC_STATUS, TOPIC_PREVIEW, TOPIC_MSD)


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
        # Field by field, not dataclasses.asdict: asdict deep-copies every object (2.3 ms for 49 objects
        # against 0.2 ms this way), and the engine thread pays for it on every frame.
        msg: dict[str, Any] = {"v": PROTOCOL_VERSION}
        msg.update((f.name, getattr(self, f.name)) for f in _TRACK_FIELDS)
        msg["objects"] = [_object_to_wire(o) for o in self.objects]
        msg["shape"] = list(self.shape) if self.shape is not None else None
        return msg

    @classmethod
    def from_wire(cls, msg: Mapping[str, Any]) -> TrackMessage:
        objects = tuple(
            TrackedObject(**{**_known(TrackedObject, o), "bbox": tuple(o["bbox"])})  # msgpack gives lists
            for o in msg["objects"]
        )
        shape = tuple(msg["shape"]) if msg.get("shape") is not None else None
        return cls(**{**_known(cls, msg), "objects": objects, "shape": shape})


_TRACK_FIELDS = fields(TrackMessage)


def _object_to_wire(obj: TrackedObject) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": obj.id,
        "x": obj.x,
        "y": obj.y,
        "theta_deg": obj.theta_deg,
        "area_px": obj.area_px,
        "score": obj.score,
        "visible": obj.visible,
        "bbox": list(obj.bbox),
    }
    if obj.x_nm is not None:
        out["x_nm"], out["y_nm"] = obj.x_nm, obj.y_nm
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
    return [topic, pack(payload)]


def decode_result(topic: bytes, payload: Buffer) -> ResultMessage | dict[str, Any]:
    """Decode a published result; topics without a typed message come back as dicts."""
    msg = msgpack.unpackb(payload, raw=False)
    kind = _RESULT_TYPES.get(bytes(topic))
    return msg if kind is None else kind.from_wire(msg)
