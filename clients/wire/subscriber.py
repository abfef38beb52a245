"""Subscriber library for control scripts: typed results, latency, reconnection after a daemon restart.

Iterator style::

    with Subscriber("tcp://127.0.0.1:5556") as sub:
        for result in sub:                       # Received objects, topic "track" by default
            track = result.message               # a TrackMessage
            print(track.frame, result.latency().total_s, [o.x for o in track.objects])

Callback style::

    sub = Subscriber("tcp://127.0.0.1:5556", topics=("track", "status"))
    sub.on("track", lambda r: controller.update(r.message))
    sub.start()      # dispatches in a background thread; sub.stop() ends it

ZeroMQ reconnects a SUB socket by itself when the daemon comes back on the same endpoint. On top of
that the subscriber listens to the 1 Hz ``status`` heartbeat: when nothing arrives for
``heartbeat_timeout_s`` it marks itself disconnected and rebuilds its socket, and it counts daemon
restarts (a new ``started_ns``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import zmq

from lptem.service.protocol import StatusMessage, TrackMessage, decode_result
from lptem.service.protocol.curve import ClientKeys

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Latency:
    """Where the time went for one frame, seconds. Camera->daemon needs the two clocks in sync."""

    camera_to_daemon_s: float
    processing_s: float
    daemon_to_client_s: float

    @property
    def total_s(self) -> float:
        return self.camera_to_daemon_s + self.processing_s + self.daemon_to_client_s


def track_latency(track: TrackMessage, t_client_ns: int) -> Latency:
    return Latency(
        camera_to_daemon_s=(track.t_recv_ns - track.t_ns) / 1e9,
        processing_s=(track.t_done_ns - track.t_recv_ns) / 1e9,
        daemon_to_client_s=(t_client_ns - track.t_done_ns) / 1e9,
    )


@dataclass(frozen=True, slots=True)
class Received:
    topic: str
    message: Any
    """TrackMessage, StatusMessage, PreviewMessage or MsdMessage for those topics; a dict for others."""
    t_client_ns: int

    def latency(self) -> Latency:
        if not isinstance(self.message, TrackMessage):
            raise TypeError(f"latency is defined for track messages, not {self.topic}")
        return track_latency(self.message, self.t_client_ns)


Callback = Callable[[Received], None]


class Subscriber:
    def __init__(
        self,
        endpoint: str,
        topics: Sequence[str] = ("track",),
        *,
        heartbeat_timeout_s: float = 3.0,
        rcvhwm: int = 10000,
        context: zmq.Context[zmq.Socket[bytes]] | None = None,
        keys: ClientKeys | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._keys = keys
        self.topics = tuple(topics)
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self._rcvhwm = rcvhwm
        self._own_context = context is None
        self._context = context or zmq.Context()
        self._socket = self._new_socket()
        self._last_seen = time.monotonic()
        self.connected = False
        self.daemon_started_ns: int | None = None
        self.daemon_restarts = 0
        self.last_status: StatusMessage | None = None
        self.undecodable = 0
        """Messages that could not be decoded (dropped, counted)."""
        self._pending: deque[Received] = deque()
        self._callbacks: dict[str, list[Callback]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _new_socket(self) -> zmq.Socket[bytes]:
        socket = self._context.socket(zmq.SUB)
        if self._keys is not None:
            self._keys.apply(socket)
        socket.setsockopt(zmq.RCVHWM, self._rcvhwm)
        socket.setsockopt(zmq.LINGER, 0)
        for topic in {*self.topics, "status"}:  # status is the heartbeat
            socket.setsockopt(zmq.SUBSCRIBE, topic.encode())
        socket.connect(self.endpoint)
        return socket

    # ------------------------------------------------------------------ receiving
    def wait_connected(self, timeout_s: float = 5.0) -> bool:
        """Wait for the daemon's heartbeat (ZeroMQ drops what is published before a SUB has joined).

        Results that arrive meanwhile are kept for :meth:`recv`. Returns whether a heartbeat came.
        """
        deadline = time.monotonic() + timeout_s
        seen = self.last_status
        while self.last_status is seen and time.monotonic() < deadline:
            received = self._recv_one(min(deadline, time.monotonic() + 0.05))
            if received is not None:
                self._pending.append(received)
        return self.last_status is not seen

    def recv(self, timeout_s: float | None = None) -> Received | None:
        """Next message on a subscribed topic, or None when ``timeout_s`` passes (None = wait forever)."""
        if self._pending:
            return self._pending.popleft()
        return self._recv_one(None if timeout_s is None else time.monotonic() + timeout_s)

    def _recv_one(self, deadline: float | None) -> Received | None:
        while not self._stop.is_set():
            wait = 0.1 if deadline is None else min(0.1, deadline - time.monotonic())
            if wait < 0:
                return None
            if self._socket.poll(int(wait * 1000)):
                received = self._read()
                if received is not None:
                    return received
            else:
                self._check_heartbeat()
        return None

    def _read(self) -> Received | None:
        parts = self._socket.recv_multipart()
        if len(parts) != 2:
            self.undecodable += 1
            return None
        topic_raw, payload = parts
        t_client_ns = time.time_ns()
        self._last_seen = time.monotonic()
        if not self.connected:
            self.connected = True
            log.info("receiving from %s", self.endpoint)
        topic = topic_raw.decode(errors="replace")
        try:
            message = decode_result(topic_raw, payload)
        except (ValueError, KeyError, TypeError) as exc:  # a malformed result must not stop the subscriber
            self.undecodable += 1
            if self.undecodable == 1 or self.undecodable % 1000 == 0:
                log.warning("undecodable %s message (%d so far): %s", topic, self.undecodable, exc)
            return None
        if isinstance(message, StatusMessage):
            self._note_status(message)
            if "status" not in self.topics:
                return None
        return Received(topic, message, t_client_ns)

    def _note_status(self, status: StatusMessage) -> None:
        if self.daemon_started_ns is not None and status.started_ns != self.daemon_started_ns:
            self.daemon_restarts += 1
            log.warning("daemon at %s restarted", self.endpoint)
        self.daemon_started_ns = status.started_ns
        self.last_status = status

    def _check_heartbeat(self) -> None:
        if time.monotonic() - self._last_seen < self.heartbeat_timeout_s:
            return
        if self.connected:
            log.warning(
                "no heartbeat from %s for %.1f s; reconnecting", self.endpoint, self.heartbeat_timeout_s
            )
        self.connected = False
        self._socket.close()
        self._socket = self._new_socket()
        self._last_seen = time.monotonic()

    def __iter__(self) -> Iterator[Received]:
        while not self._stop.is_set():
            received = self.recv()
            if received is not None:
                yield received

    # ------------------------------------------------------------------ callbacks
    def on(self, topic: str, callback: Callback) -> None:
        """Call ``callback(received)`` for every message on ``topic`` (which must be subscribed)."""
        if topic not in self.topics:
            raise ValueError(f"topic {topic!r} is not subscribed; subscribed: {self.topics}")
        self._callbacks.setdefault(topic, []).append(callback)

    def run(self) -> None:
        """Dispatch to callbacks until :meth:`stop`."""
        for received in self:
            for callback in self._callbacks.get(received.topic, []):
                callback(received)

    def start(self) -> None:
        """Dispatch in a background thread."""
        self._thread = threading.Thread(target=self.run, name="lptem-subscriber", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def close(self) -> None:
        self.stop()
        self._socket.close()
        if self._own_context:
            self._context.term()

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
