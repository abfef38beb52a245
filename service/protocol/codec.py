"""What every direction of wire protocol v1 shares: the version, msgpack packing, value checks."""

from __future__ import annotations

import math
from typing import Any

import msgpack

PROTOCOL_VERSION = 1
MAX_SIDE = 16384
"""Largest accepted frame side, px (also bounds prompt coordinates before the first frame)."""
MAX_PIXELS = 8192 * 8192
"""Largest accepted frame, px (64 Mpx)."""

Buffer = bytes | bytearray | memoryview
"""Anything holding message bytes (pass ``zmq.Frame.buffer`` for zero-copy frames)."""


def pack(obj: Any) -> bytes:
    """msgpack with str and bin kept apart (``use_bin_type``), as every v1 message is packed."""
    data: bytes = msgpack.packb(obj, use_bin_type=True)
    return data


def is_int(value: Any) -> bool:
    """An integer and not a bool (msgpack decodes true/false to bool, a subclass of int)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool)."""
    return (is_int(value) or isinstance(value, float)) and math.isfinite(value)
