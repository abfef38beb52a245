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
    ) -> None:
        self._socket = context.socket(zmq.PUB)
        self._socket.setsockopt(zmq.SNDHWM, sndhwm)
        self._socket.setsockopt(zmq.LINGER, 500)  # let the last results and status leave on shutdown
        self._socket.bind(endpoint)
        self.endpoint = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self._status = status
        self._recorder = recorder
        self._interval = status_interval_s
        self._queue: queue.SimpleQueue[tuple[bytes, Any] | None] = queue.SimpleQueue()
        self._errors = 0
        self._thread = threading.Thread(target=self._run, name="lptem-publish", daemon=True)

    def start(self) -> None:
        self._thread.start()

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
