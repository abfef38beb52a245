"""Wire protocol v1, camera -> daemon: frames ``[header, pixels]`` and ``start`` / ``end`` markers
(docs/protocol.md §2). Cameras encode with :func:`encode_header`; the daemon decodes with
:func:`decode_ingest`, which validates everything before any pixel is touched."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

import msgpack
import numpy as np
import numpy.typing as npt

from lptem.service.protocol.codec import (
    MAX_PIXELS,
    MAX_SIDE,
    PROTOCOL_VERSION,
    Buffer,
    is_int,
    is_number,
    pack,
)
from lptem.service.protocol.shm import RingError, ShmRef, parse_ref

DTYPES: dict[str, np.dtype[Any]] = {
    "uint8": np.dtype("<u1"),
    "uint16": np.dtype("<u2"),
    "float32": np.dtype("<f4"),
}
MAX_FRAME_BYTES = MAX_PIXELS * max(d.itemsize for d in DTYPES.values())
"""Largest legal pixel part, bytes; the ingest socket drops a peer whose message part is larger
(ZeroMQ's ``MAXMSGSIZE``) before reading it into memory."""


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
    SHM = "shm"  # a shared-memory frame naming no usable ring or slot
    TORN = "torn"  # a shared-memory slot rewritten before or while it was read
    INTERNAL = "internal"  # the daemon failed while validating (a bug; the log has the traceback)


class FrameRejected(Exception):
    """An ingest message that violates the protocol; carries a metric reason and a readable detail."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


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
class ShmFrame:
    """A decoded, validated header of a frame whose pixels are in a shared-memory ring (not yet read)."""

    frame: int
    t_ns: int
    dtype: np.dtype[Any]
    shape: tuple[int, int]
    ref: ShmRef
    pixel_size_nm: float | None = None
    exposure_s: float | None = None
    series: str | int | None = None

    def with_pixels(self, pixels: npt.NDArray[Any]) -> IngestFrame:
        return IngestFrame(self.frame, self.t_ns, pixels, self.pixel_size_nm, self.exposure_s, self.series)


@dataclass(frozen=True, slots=True)
class SeriesMarker:
    """A ``start`` or ``end`` message; ``start`` may carry metadata (pixel size, series id, anything)."""

    kind: Literal["start", "end"]
    series: str | int | None
    meta: dict[str, Any] = field(default_factory=dict)


def encode_header(
    frame: int,
    t_ns: int,
    shape: tuple[int, int],
    dtype: str,
    *,
    pixel_size_nm: float | None = None,
    exposure_s: float | None = None,
    series: str | int | None = None,
    shm: ShmRef | None = None,
) -> bytes:
    """A frame's header; with ``shm`` the one-part header of a frame whose pixels are in a ring."""
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
    if shm is not None:
        header["shm"] = shm.to_wire()
    return pack(header)


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
    return pack(msg)


def decode_ingest(
    parts: Sequence[Buffer], *, check_finite: bool = True
) -> IngestFrame | ShmFrame | SeriesMarker:
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
    if "shm" in header:
        if len(parts) != 1:
            raise FrameRejected(RejectReason.PARTS, f"a shared-memory frame has 1 part, got {len(parts)}")
        return _decode_shm_frame(header)
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
    if not is_int(header["v"]) or header["v"] != PROTOCOL_VERSION:
        raise FrameRejected(RejectReason.VERSION, f"protocol version {header['v']!r} is not supported (1)")


def _optional_series(header: Mapping[str, Any]) -> str | int | None:
    series = header.get("series")
    if series is not None and not (isinstance(series, str) or is_int(series)):
        raise FrameRejected(RejectReason.HEADER, "'series' must be a string or an integer")
    return series


def _decode_shm_frame(header: Mapping[str, Any]) -> ShmFrame:
    frame, t_ns, dtype, shape = _frame_fields(header)
    try:
        ref = parse_ref(header["shm"])
    except RingError as exc:
        raise FrameRejected(RejectReason.SHM, str(exc)) from exc
    return ShmFrame(
        frame,
        t_ns,
        dtype,
        shape,
        ref,
        _optional_positive(header, "pixel_size_nm"),
        _optional_positive(header, "exposure_s"),
        _optional_series(header),
    )


def _frame_fields(header: Mapping[str, Any]) -> tuple[int, int, np.dtype[Any], tuple[int, int]]:
    """frame number, t_ns, dtype and shape, validated."""
    for key in ("frame", "t_ns", "shape", "dtype"):
        if key not in header:
            raise FrameRejected(RejectReason.HEADER, f"missing key {key!r}")
    frame, t_ns = header["frame"], header["t_ns"]
    if not is_int(frame):
        raise FrameRejected(RejectReason.HEADER, f"'frame' must be an integer, got {frame!r}")
    if frame < 0:
        raise FrameRejected(RejectReason.FRAME_NUMBER, f"frame number {frame} is negative")
    if not is_int(t_ns) or t_ns < 0:
        raise FrameRejected(RejectReason.HEADER, f"'t_ns' must be a non-negative integer, got {t_ns!r}")
    dtype = DTYPES.get(header["dtype"]) if isinstance(header["dtype"], str) else None
    if dtype is None:
        raise FrameRejected(RejectReason.DTYPE, f"dtype {header['dtype']!r} is not one of {list(DTYPES)}")
    return frame, t_ns, dtype, _validated_shape(header["shape"])


def _decode_frame(header: Mapping[str, Any], pixels: Buffer, check_finite: bool) -> IngestFrame:
    frame, t_ns, dtype, (rows, cols) = _frame_fields(header)
    view = memoryview(pixels)
    expected = rows * cols * dtype.itemsize
    if view.nbytes != expected:
        raise FrameRejected(
            RejectReason.SIZE, f"{rows}x{cols} {header['dtype']} needs {expected} bytes, got {view.nbytes}"
        )
    array = np.frombuffer(view, dtype=dtype).reshape(rows, cols)
    if check_finite:
        require_finite(array)
    return IngestFrame(
        frame=frame,
        t_ns=t_ns,
        pixels=array,
        pixel_size_nm=_optional_positive(header, "pixel_size_nm"),
        exposure_s=_optional_positive(header, "exposure_s"),
        series=_optional_series(header),
    )


def require_finite(array: npt.NDArray[Any]) -> None:
    """FrameRejected (nonfinite) when a float frame holds NaN or infinite pixels."""
    if array.dtype.kind == "f" and not math.isfinite(float(array.sum(dtype=np.float64))):
        raise FrameRejected(RejectReason.NONFINITE, "frame contains NaN or infinite pixels")


def _validated_shape(shape: Any) -> tuple[int, int]:
    if not (isinstance(shape, list | tuple) and len(shape) == 2 and all(is_int(s) for s in shape)):
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
    if not is_number(value) or value <= 0:
        raise FrameRejected(RejectReason.HEADER, f"{key!r} must be a positive number, got {value!r}")
    return float(value)
