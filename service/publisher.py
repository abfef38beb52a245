"""Publisher thread: owns the PUB socket, encodes results once, feeds the same bytes to the record."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import msgpack
import zmq

from lptem.service.auth import Gatekeeper
from lptem.service.protocol import (
    TOPIC_PREVIEW,
    TOPIC_STATUS,
    TOPIC_TRACK,
    StatusMessage,
    encode_result,
)
from lptem.service.record import RecordWriter

log = logging.getLogger(__name__)

_RECORDED_TOPICS = frozenset({TOPIC_TRACK, TOPIC_STATUS, b"msd"})
_EVENT = b""  # queue marker: record-only entry, not published
_REBIND_WAIT_S = 2.0


RESULTS_HWM = 1000
"""Messages the results socket holds for one subscriber that does not read (then drops for it)."""
PREVIEW_HWM = 2
"""The same for the preview socket: previews are large (a 256² image and label map, ~0.2-0.4 MB)."""


class _Outlet:
    """One bound PUB socket (CURVE'd when keys are on), owned by the publisher thread."""

    def __init__(
        self, context: zmq.Context[zmq.Socket[bytes]], endpoint: str, hwm: int, gatekeeper: Gatekeeper | None
    ) -> None:
        self.socket = context.socket(zmq.PUB)
        self.socket.setsockopt(zmq.SNDHWM, hwm)
        self.socket.setsockopt(zmq.LINGER, 500)  # let the last results and status leave on shutdown
        if gatekeeper is not None:
            gatekeeper.secure(self.socket, "publish")
        try:
            self.socket.bind(endpoint)
        except zmq.ZMQError:
            self.socket.close(linger=0)
            raise
        self.endpoint = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self._bound = True
        self.pending = False
        """Its subscribers are to be dropped (a key was revoked) and it has not bound again yet."""

    def renew(self) -> bool:
        """Drop every subscriber (unbind), bind again; the authorised ones reconnect through the
        handshake. False when the port could not be bound again yet (try later)."""
        if self._bound:
            self.socket.unbind(self.endpoint)
            self._bound = False
        deadline = time.monotonic() + _REBIND_WAIT_S
        while True:  # ZeroMQ releases the port in its I/O thread, a moment after unbind returns
            try:
                self.socket.bind(self.endpoint)
            except zmq.ZMQError as exc:
                if exc.errno != zmq.EADDRINUSE or time.monotonic() > deadline:
                    log.error("could not re-bind %s: %s; retrying", self.endpoint, exc)
                    return False
                time.sleep(0.01)
            else:
                self._bound = True
                return True


class Publisher:
    """Results on one PUB socket (``track``, ``msd``, ``status``), previews on their own (``preview``, and
    ``status`` as its heartbeat), so that a subscriber that stops reading holds at most ``RESULTS_HWM``
    small and ``PREVIEW_HWM`` large messages in the daemon, and nothing once it leaves."""

    def __init__(
        self,
        context: zmq.Context[zmq.Socket[bytes]],
        endpoint: str,
        status: Callable[[], StatusMessage],
        recorder: RecordWriter | None,
        *,
        preview_endpoint: str | None = None,
        status_interval_s: float = 1.0,
        gatekeeper: Gatekeeper | None = None,
    ) -> None:
        self._results = _Outlet(context, endpoint, RESULTS_HWM, gatekeeper)
        self._outlets = [self._results]
        try:
            self._previews = (
                _Outlet(context, preview_endpoint, PREVIEW_HWM, gatekeeper) if preview_endpoint else None
            )
        except zmq.ZMQError:
            self._results.socket.close(linger=0)
            raise
        if self._previews is not None:
            self._outlets.append(self._previews)
        self.endpoint = self._results.endpoint
        self.preview_endpoint = self._previews.endpoint if self._previews is not None else None
        self._rebind = threading.Event()
        self._next_renewal = 0.0
        if gatekeeper is not None:
            gatekeeper.on_revoked(self._rebind.set)
        self._status = status
        self._recorder = recorder
        self._interval = status_interval_s
        self._queue: queue.SimpleQueue[tuple[bytes, Any] | None] = queue.SimpleQueue()
        self._errors = 0
        self._thread = threading.Thread(target=self._run, name="lptem-publish", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        """Whether the thread runs (after start(), until stopped)."""
        return self._thread.is_alive()

    def record_to(self, recorder: RecordWriter) -> None:
        """Also write recorded topics and events to ``recorder`` (before :meth:`start`)."""
        self._recorder = recorder

    def _renew_sockets(self) -> None:
        """A key was revoked: every subscriber is dropped and must pass the handshake again. An outlet
        that cannot bind again yet is tried again a second later; the others are not renewed twice."""
        if self._rebind.is_set():  # a (new) revocation: every outlet drops its subscribers
            self._rebind.clear()
            for outlet in self._outlets:
                outlet.pending = True
        if time.monotonic() < self._next_renewal:
            return
        for outlet in self._outlets:
            if outlet.pending:
                try:
                    outlet.pending = not outlet.renew()
                except zmq.ZMQError as exc:  # unbind itself failed: keep publishing, try again later
                    log.error("could not renew %s: %s", outlet.endpoint, exc)
        if any(outlet.pending for outlet in self._outlets):
            self._next_renewal = time.monotonic() + 1.0
        else:
            log.info("publish sockets re-bound after a key was revoked; subscribers reconnect")

    def publish(self, topic: bytes, message: Any) -> None:
        """Queue a result for publication (and the record, for recorded topics)."""
        self._queue.put((topic, message))

    def record_event(self, payload: dict[str, Any]) -> None:
        """Queue a record-only entry, kept in order with the published results."""
        self._queue.put((_EVENT, payload))

    def stop(self) -> None:
        """Send what is queued and a last status, then close the socket."""
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        next_status = time.monotonic()
        try:
            while True:
                try:
                    item = self._queue.get(timeout=max(0.0, next_status - time.monotonic()))
                except queue.Empty:
                    item = (TOPIC_STATUS, None)
                if item is None:
                    break
                if self._rebind.is_set() or any(outlet.pending for outlet in self._outlets):
                    self._renew_sockets()
                if time.monotonic() >= next_status:
                    self._send_status()
                    next_status = time.monotonic() + self._interval
                self._handle(*item)
            self._send_status()
        finally:
            for outlet in self._outlets:
                outlet.socket.close()

    def _send_status(self) -> None:
        try:
            self._send(TOPIC_STATUS, self._status())
        except Exception:  # a bug in status must not silence the results
            self._errors += 1
            log.exception("could not publish a status message; skipped")

    def _handle(self, topic: bytes, message: Any) -> None:
        try:
            if topic == _EVENT:
                self._record("event", msgpack.packb(message, use_bin_type=True))
            elif message is not None:
                self._send(topic, message)
        except Exception:  # one unencodable message must not silence every later result
            self._errors += 1
            log.exception("could not publish a %r message; dropped", topic)

    def _send(self, topic: bytes, message: Any) -> None:
        parts = encode_result(topic, message)
        if topic == TOPIC_PREVIEW:
            if self._previews is not None:
                self._previews.socket.send_multipart(parts, copy=False)
            return
        self._results.socket.send_multipart(parts, copy=False)
        if topic == TOPIC_STATUS and self._previews is not None:  # the preview socket's heartbeat
            self._previews.socket.send_multipart(parts, copy=False)
        if topic in _RECORDED_TOPICS:
            self._record(topic.decode(), parts[1])

    def _record(self, kind: str, payload: bytes) -> None:
        if self._recorder is not None:
            self._recorder.write(kind, payload)
