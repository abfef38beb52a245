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


class Publisher:
    def __init__(
        self,
        context: zmq.Context[zmq.Socket[bytes]],
        endpoint: str,
        status: Callable[[], StatusMessage],
        recorder: RecordWriter | None,
        *,
        status_interval_s: float = 1.0,
        sndhwm: int = 10000,
        gatekeeper: Gatekeeper | None = None,
    ) -> None:
        self._context = context
        self._sndhwm = sndhwm
        self._gatekeeper = gatekeeper
        self._socket = self._bound(endpoint)
        self.endpoint = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self._rebind = threading.Event()
        self._bound_now = True
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

    def record_to(self, recorder: RecordWriter) -> None:
        """Also write recorded topics and events to ``recorder`` (before :meth:`start`)."""
        self._recorder = recorder

    def _bound(self, endpoint: str) -> zmq.Socket[bytes]:
        socket = self._context.socket(zmq.PUB)
        socket.setsockopt(zmq.SNDHWM, self._sndhwm)
        socket.setsockopt(zmq.LINGER, 500)  # let the last results and status leave on shutdown
        if self._gatekeeper is not None:
            self._gatekeeper.secure(socket, "publish")
        try:
            socket.bind(endpoint)
        except zmq.ZMQError:
            socket.close(linger=0)
            raise
        return socket

    def _renew_socket(self) -> None:
        """A key was revoked: drop every subscriber; the authorised ones reconnect through the handshake."""
        self._rebind.clear()
        if self._bound_now:
            self._socket.unbind(self.endpoint)  # closes every connection made through it
            self._bound_now = False
        deadline = time.monotonic() + _REBIND_WAIT_S
        while True:  # ZeroMQ releases the port in its I/O thread, a moment after unbind returns
            try:
                self._socket.bind(self.endpoint)
            except zmq.ZMQError as exc:
                if exc.errno != zmq.EADDRINUSE or time.monotonic() > deadline:
                    log.error("could not re-bind the publish socket at %s: %s; retrying", self.endpoint, exc)
                    self._rebind.set()
                    return
                time.sleep(0.01)
            else:
                self._bound_now = True
                break
        log.info("publish socket re-bound after a key was revoked; subscribers reconnect")

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
                if self._rebind.is_set():
                    self._renew_socket()
                if time.monotonic() >= next_status:
                    self._send(TOPIC_STATUS, self._status())
                    next_status = time.monotonic() + self._interval
                self._handle(*item)
            self._send(TOPIC_STATUS, self._status())
        finally:
            self._socket.close()

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
        self._socket.send_multipart(parts, copy=False)
        if topic in _RECORDED_TOPICS:
            self._record(topic.decode(), parts[1])

    def _record(self, kind: str, payload: bytes) -> None:
        if self._recorder is not None:
            self._recorder.write(kind, payload)
