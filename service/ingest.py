"""Ingest thread: receive frames from the camera, validate them, hand them to the engine's mailbox."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import zmq

from lptem.service.auth import Gatekeeper, user_id_of
from lptem.service.logutil import RateLimitedLog
from lptem.service.mailbox import Mailbox, MailboxClosed, QueuedFrame
from lptem.service.protocol import (
    MAX_FRAME_BYTES,
    FrameRejected,
    IngestFrame,
    RejectReason,
    SeriesMarker,
    ShmFrame,
    decode_ingest,
)
from lptem.service.protocol.ingest import require_finite
from lptem.service.protocol.shm import RingError, RingReader, SlotLease, TornFrame
from lptem.service.stats import Stats

log = logging.getLogger(__name__)
_POLL_MS = 100
_SWEEP_S = 1.0
"""How often the rings of cameras that died are looked for (and unlinked)."""


@dataclass(frozen=True, slots=True)
class Admission:
    epoch: int
    series: str | int | None
    """The frame's series, or the current one when the frame names none."""
    missed: int
    """Frame numbers skipped since the previous frame (lost before they reached us)."""
    new_epoch: str | None
    """Why numbering started again at this frame: ``"series"`` (a new series id) or ``"restart"``
    (the camera's counter went back to 0); None when it continues."""


class FrameSequence:
    """Frame numbering within an epoch: rejects repeats and reversals, notices restarts and gaps.

    An epoch begins with a ``start`` marker, a frame naming a different ``series``, or frame number 0
    after a higher number (a camera whose counter restarted). Any other repeated or decreasing number is
    rejected. A frame that names no series belongs to the current one.
    """

    def __init__(self) -> None:
        self.epoch = 0
        self.series: str | int | None = None
        self.last: int | None = None
        self.meta: dict[str, Any] = {}

    def start(self, marker: SeriesMarker) -> None:
        if self.last is not None:
            self.epoch += 1
        self.series, self.last, self.meta = marker.series, None, dict(marker.meta)

    def end(self) -> None:
        self.meta = {}

    def admit(self, frame: IngestFrame) -> Admission:
        """Place ``frame`` in the numbering; raise FrameRejected for a repeat or reversal."""
        series = self.series if frame.series is None else frame.series
        new_epoch = None
        if self.last is not None and series != self.series:
            new_epoch = "series"
        elif self.last is not None and frame.frame <= self.last:
            if frame.frame != 0 or self.last == 0:
                kind = "repeated" if frame.frame == self.last else "decreasing"
                raise FrameRejected(
                    RejectReason.FRAME_ORDER, f"{kind} frame number {frame.frame} after {self.last}"
                )
            new_epoch = "restart"
        if new_epoch is not None:
            self.epoch, self.last = self.epoch + 1, None
        missed = 0 if self.last is None else frame.frame - self.last - 1
        self.series, self.last = series, frame.frame
        return Admission(self.epoch, series, missed, new_epoch)


class Ingest:
    """Owns the ingest socket (PULL bind, or SUB connect to a camera's PUB) and its thread."""

    def __init__(
        self,
        context: zmq.Context[zmq.Socket[bytes]],
        endpoint: str,
        *,
        connect: bool,
        mailbox: Mailbox,
        stats: Stats,
        default_pixel_size_nm: float | None,
        on_marker: Callable[[SeriesMarker, int], None],
        rcvhwm: int = 16,
        gatekeeper: Gatekeeper | None = None,
    ) -> None:
        self._socket = context.socket(zmq.SUB if connect else zmq.PULL)
        self._socket.setsockopt(zmq.RCVHWM, rcvhwm)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME_BYTES)  # larger parts: the peer is dropped unread
        self._gatekeeper = gatekeeper
        if gatekeeper is not None:
            gatekeeper.secure(self._socket, "ingest")
        if connect:
            self._socket.setsockopt(zmq.SUBSCRIBE, b"")
            self._socket.connect(endpoint)
            self.endpoint = endpoint
        else:
            try:
                self._socket.bind(endpoint)
            except zmq.ZMQError:
                self._socket.close()
                raise
            self.endpoint = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self._mailbox = mailbox
        self._stats = stats
        self._default_pixel_size = default_pixel_size_nm
        self._on_marker = on_marker
        self._sequence = FrameSequence()
        self._rings = RingReader()
        self._rejects = RateLimitedLog(log)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lptem-ingest", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        """Whether the thread runs (after start(), until stopped)."""
        return self._thread.is_alive()

    def request_stop(self) -> None:
        self._stop.set()

    def join(self) -> None:
        self._thread.join()

    def _run(self) -> None:
        swept = 0.0
        try:
            while not self._stop.is_set():
                if self._socket.poll(_POLL_MS):
                    self._receive_guarded()
                if time.monotonic() - swept > _SWEEP_S:
                    swept = time.monotonic()
                    self._sweep_rings()
        except MailboxClosed:
            log.debug("ingest stopped while a frame waited for room in the queue")
        finally:
            self._socket.close()
            self._rings.close()

    def _sweep_rings(self) -> None:
        for name in self._rings.sweep():
            log.info("removed shared-memory ring %s: its camera has gone", name)

    def _receive_guarded(self) -> None:
        try:
            self._receive_one()
        except MailboxClosed:
            raise
        except Exception:  # a bug in validation must not leave the daemon deaf: count, log, go on
            self._stats.frame_rejected(RejectReason.INTERNAL)
            log.exception("internal error while receiving a frame; message discarded")

    def _receive_one(self) -> None:
        parts = self._socket.recv_multipart(copy=False)
        t_recv_ns = time.time_ns()
        if self._gatekeeper is not None and not self._gatekeeper.may(user_id_of(parts[0]), "ingest"):
            self._gatekeeper.refused(
                "ingest", "refused an ingest message: the key is not authorised (any more)"
            )
            return
        lease: SlotLease | None = None
        try:
            message = decode_ingest([p.buffer for p in parts])
            if isinstance(message, SeriesMarker):
                self._mark(message)
                return
            if isinstance(message, ShmFrame):
                message, lease = self._borrow(message)
            self._enqueue(message, t_recv_ns, lease)
        except FrameRejected as exc:
            if lease is not None:
                lease.release()
            self._stats.frame_rejected(exc.reason)
            self._rejects.warning(f"rejected ingest message: {exc}")
        except BaseException:
            if lease is not None:  # the slot must not stay held: the camera would wait for it
                lease.release()
            raise

    def _mark(self, marker: SeriesMarker) -> None:
        if marker.kind == "start":
            self._sequence.start(marker)
        else:
            self._sequence.end()
        self._on_marker(marker, self._sequence.epoch)

    def _enqueue(self, frame: IngestFrame, t_recv_ns: int, lease: SlotLease | None) -> None:
        admitted = self._sequence.admit(frame)
        if admitted.new_epoch == "restart":
            self._stats.series_restarted()
            log.warning("camera frame counter restarted at 0 (epoch %d)", admitted.epoch)
        elif admitted.new_epoch == "series":
            log.info("new series %r (epoch %d)", admitted.series, admitted.epoch)
        if admitted.missed > 0:
            self._stats.upstream_gap(admitted.missed)
        self._stats.frame_received()
        item = QueuedFrame(
            frame, t_recv_ns, admitted.epoch, self._pixel_size(frame), admitted.series, lease=lease
        )
        dropped = self._mailbox.put_frame(item)
        for old in dropped:
            old.release()
        if dropped:
            self._stats.frames_dropped(len(dropped))

    def _borrow(self, header: ShmFrame) -> tuple[IngestFrame, SlotLease]:
        """The frame's pixels in place in its shared-memory slot, and the lease that releases it."""
        try:
            lease = self._rings.borrow(header.ref, header.dtype, header.shape)
        except TornFrame as exc:
            raise FrameRejected(RejectReason.TORN, str(exc)) from exc
        except RingError as exc:
            raise FrameRejected(RejectReason.SHM, str(exc)) from exc
        try:
            require_finite(lease.pixels)
        except FrameRejected:
            lease.release()
            raise
        return header.with_pixels(lease.pixels), lease

    def _pixel_size(self, frame: IngestFrame) -> float | None:
        if frame.pixel_size_nm is not None:
            return frame.pixel_size_nm
        from_start = self._sequence.meta.get("pixel_size_nm")  # validated by decode_ingest
        return float(from_start) if from_start is not None else self._default_pixel_size
