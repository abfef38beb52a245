"""Camera side: send numpy frames to the daemon over wire protocol v1.

from lptem.clients.wire.sender import FrameSender
with FrameSender("tcp://127.0.0.1:5555", pixel_size_nm=0.5) as camera:
    camera.send(frame)            # numbers and timestamps the frame itself

With ``shm_slots=N`` (a camera on the daemon's host) the pixels go into a ring of N shared-memory slots and
only the header travels over ZeroMQ (lptem.service.protocol.shm, docs/protocol.md §2.3).
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import zmq

from lptem.service.protocol import encode_header, encode_marker, wire_dtype_name
from lptem.service.protocol.curve import ClientKeys, is_loopback
from lptem.service.protocol.shm import RingWriter


class NoReceiverError(ConnectionError):
    """Nothing takes frames at the endpoint: no daemon listens there, or it cannot accept one."""


class FrameSender:
    """PUSH frames to a daemon's ingest socket (or, with ``mode="pub"``, bind a PUB for SUB daemons).

    ``send`` blocks when the daemon runs ``--policy queue`` and its queue is full (lossless replay); use
    ``timeout_s`` to give up instead. Frames are copied into the message unless ``zero_copy=True``, in
    which case the caller must not modify the array until ZeroMQ has sent it. ``shm_slots``: frames go
    through a shared-memory ring of that many slots (same host only), each ``shm_slot_bytes`` long
    (default: the first frame's size).
    """

    def __init__(
        self,
        endpoint: str,
        *,
        mode: Literal["push", "pub"] = "push",
        pixel_size_nm: float | None = None,
        series: str | int | None = None,
        exposure_s: float | None = None,
        first_frame: int = 0,
        sndhwm: int = 8,
        zero_copy: bool = False,
        context: zmq.Context[zmq.Socket[bytes]] | None = None,
        keys: ClientKeys | None = None,
        shm_slots: int = 0,
        shm_slot_bytes: int | None = None,
    ) -> None:
        if shm_slots and not is_loopback(endpoint):
            raise ValueError(f"shared-memory frames are for a daemon on this host, not {endpoint}")
        if keys is not None and mode == "pub":
            raise ValueError(
                "CURVE keys are for a sender that connects to a daemon (mode='push'), not a PUB it binds"
            )
        self._own_context = context is None
        self._context = context or zmq.Context()
        self._keys = keys
        self._socket = self._context.socket(zmq.PUSH if mode == "push" else zmq.PUB)
        if keys is not None:
            keys.apply(self._socket)
        self._socket.setsockopt(zmq.SNDHWM, sndhwm)
        self._socket.setsockopt(zmq.LINGER, 2000)  # give queued frames 2 s to leave on close
        if mode == "push":
            self._socket.connect(endpoint)
            self.endpoint = endpoint
        else:
            self._socket.bind(endpoint)
            self.endpoint = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.pixel_size_nm = pixel_size_nm
        self.series = series
        self.exposure_s = exposure_s
        self.next_frame = first_frame
        self.zero_copy = zero_copy
        self.shm_slots = shm_slots
        self.shm_slot_bytes = shm_slot_bytes
        self.ring: RingWriter | None = None

    def wait_for_receiver(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for something to accept a connection at the endpoint (push mode).

        A PUSH socket queues frames for an endpoint where nothing listens, so without this check they
        would be "sent" and never arrive. A probe socket that queues only on completed connections
        (``IMMEDIATE``) asks, leaving this sender's own queueing as it is. A PUB sender cannot know its
        subscribers and always answers True.
        """
        if self._socket.type == zmq.PUB:
            return True
        probe = self._context.socket(zmq.PUSH)
        try:
            if self._keys is not None:  # a connection counts once the CURVE handshake has passed
                self._keys.apply(probe)
            probe.setsockopt(zmq.IMMEDIATE, 1)
            probe.setsockopt(zmq.LINGER, 0)
            probe.connect(self.endpoint)
            return bool(probe.poll(int(timeout_s * 1000), zmq.POLLOUT))
        finally:
            probe.close()

    def require_receiver(self, timeout_s: float) -> None:
        """:meth:`wait_for_receiver`, raising :class:`NoReceiverError` with a message for people."""
        if not self.wait_for_receiver(timeout_s):
            raise NoReceiverError(
                f"no daemon takes frames at {self.endpoint} (waited {timeout_s:g} s): start one with "
                "`lptem serve`, or point --ingest at the one that runs"
                + (
                    "; with CURVE, also check that the daemon authorised this key as camera or operator "
                    "and that --server-key is its server.key"
                    if self._keys is not None
                    else ""
                )
            )

    def start(self, **meta: Any) -> None:
        """Send a ``start`` marker: frame numbering may begin again; ``meta`` is recorded."""
        if self.pixel_size_nm is not None:
            meta.setdefault("pixel_size_nm", self.pixel_size_nm)
        self._socket.send(encode_marker("start", self.series, **meta))

    def end(self) -> None:
        self._socket.send(encode_marker("end", self.series))

    def send(
        self,
        frame: npt.NDArray[Any],
        *,
        frame_number: int | None = None,
        t_ns: int | None = None,
        timeout_s: float | None = None,
    ) -> int:
        """Send one 2-D uint8 / uint16 / float32 frame; return its frame number.

        Raises ``TimeoutError`` if ``timeout_s`` passes while the daemon applies backpressure.
        """
        if frame.ndim != 2:
            raise ValueError(f"frames are 2-D (rows, cols), got shape {frame.shape}")
        dtype = wire_dtype_name(frame)
        number = self.next_frame if frame_number is None else frame_number
        t_ns = time.time_ns() if t_ns is None else t_ns
        pixels = np.ascontiguousarray(frame, dtype=frame.dtype.newbyteorder("<"))
        if timeout_s is not None and not self._socket.poll(int(timeout_s * 1000), zmq.POLLOUT):
            raise TimeoutError(f"daemon did not accept frame {number} within {timeout_s} s")
        shape = (int(frame.shape[0]), int(frame.shape[1]))
        ref = self._ring(pixels).write(pixels) if self.shm_slots else None
        header = encode_header(
            number,
            t_ns,
            shape,
            dtype,
            pixel_size_nm=self.pixel_size_nm,
            exposure_s=self.exposure_s,
            series=self.series,
            shm=ref,
        )
        if ref is not None:
            self._socket.send(header)
        else:
            self._socket.send_multipart([header, pixels.data], copy=not self.zero_copy)
        self.next_frame = number + 1
        return number

    def _ring(self, first: npt.NDArray[Any]) -> RingWriter:
        if self.ring is None:
            self.ring = RingWriter(self.shm_slots, self.shm_slot_bytes or first.nbytes)
        return self.ring

    def close(self) -> None:
        self._socket.close()
        if self._own_context:
            self._context.term()
        if self.ring is not None:
            self.ring.close(wait_s=2.0)  # the daemon may still be reading the last frames

    def __enter__(self) -> FrameSender:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
