"""The dashboard's sockets, driven by the Qt event loop without ever blocking it.

``ResultFeed`` reads the daemon's PUB socket through a ``QSocketNotifier`` on ZeroMQ's file descriptor.
That descriptor is edge-triggered: it signals that *something* changed, so every notification (and a
periodic timer, as a safety net) drains the socket until ``ZMQ_EVENTS`` says nothing is left. Silence (no
message, the ``status`` heartbeat included, for ``heartbeat_timeout_s``) rebuilds the socket, so a
restarted daemon is picked up by itself.

``CommandRunner`` sends control requests from a worker thread and reports back through Qt signals.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import zmq
from PySide6 import QtCore

from lptem.clients.wire.control import ControlClient, ControlError
from lptem.service.protocol import MsdMessage, PreviewMessage, StatusMessage, TrackMessage, decode_result
from lptem.service.protocol.curve import ClientKeys

log = logging.getLogger("lptem.dashboard")

TOPICS = ("track", "msd", "status")
"""From the results socket; ``preview`` comes from the daemon's preview socket."""
MAX_DRAIN = 1000
"""Messages read per pass before yielding to the event loop (another pass is scheduled at once)."""


class ResultFeed(QtCore.QObject):
    track = QtCore.Signal(object, object)  # TrackMessage, t_client_ns (int: beyond 32 bits)
    preview = QtCore.Signal(object)
    msd = QtCore.Signal(object)
    status = QtCore.Signal(object)
    connection = QtCore.Signal(bool, str)  # connected, text
    restarted = QtCore.Signal()

    def __init__(
        self,
        endpoint: str,
        heartbeat_timeout_s: float = 3.0,
        parent: QtCore.QObject | None = None,
        keys: ClientKeys | None = None,
        preview_endpoint: str | None = None,
    ):
        super().__init__(parent)
        self.endpoint = endpoint
        self.preview_endpoint = preview_endpoint
        self._keys = keys
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.connected = False
        self.messages = 0
        self.undecodable = 0
        self.reconnects = 0
        self._daemon_started_ns: int | None = None
        self._context = zmq.Context()
        self._inlets: list[tuple[zmq.Socket[bytes], QtCore.QSocketNotifier]] = []
        self._last_seen = time.monotonic()
        self._drain_scheduled = False
        self._timer = QtCore.QTimer(self)
        self._timer.timeout.connect(self._tick)
        self._open()
        self._timer.start(100)

    def _open(self) -> None:
        self._inlets = [self._inlet(self.endpoint, TOPICS, 2000)]
        if self.preview_endpoint is not None:
            self._inlets.append(self._inlet(self.preview_endpoint, ("preview",), 4))
        self._last_seen = time.monotonic()

    def _inlet(
        self, endpoint: str, topics: tuple[str, ...], rcvhwm: int
    ) -> tuple[zmq.Socket[bytes], QtCore.QSocketNotifier]:
        socket = self._context.socket(zmq.SUB)
        if self._keys is not None:
            self._keys.apply(socket)
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.RCVHWM, rcvhwm)
        for topic in topics:
            socket.setsockopt(zmq.SUBSCRIBE, topic.encode())
        socket.connect(endpoint)
        notifier = QtCore.QSocketNotifier(socket.getsockopt(zmq.FD), QtCore.QSocketNotifier.Type.Read, self)
        notifier.activated.connect(self._drain)
        return socket, notifier

    def _close_socket(self) -> None:
        for socket, notifier in self._inlets:
            notifier.setEnabled(False)
            notifier.deleteLater()
            socket.close()
        self._inlets = []

    def _drain(self) -> None:
        """Read everything waiting (the descriptors will not signal again for messages already queued)."""
        self._drain_scheduled = False
        more = False
        for socket, _ in self._inlets:
            for _ in range(MAX_DRAIN):
                if not int(socket.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
                    break
                self._dispatch(socket.recv_multipart(zmq.NOBLOCK), time.time_ns())
            else:
                more = True
        if more and not self._drain_scheduled:  # more is waiting: continue after the GUI had its turn
            self._drain_scheduled = True
            QtCore.QTimer.singleShot(0, self._drain)

    def _dispatch(self, parts: list[bytes], t_client_ns: int) -> None:
        try:
            topic, payload = parts
            message = decode_result(topic, payload)
        except (ValueError, KeyError, TypeError) as exc:  # a malformed result is dropped and counted
            self.undecodable += 1
            if self.undecodable == 1 or self.undecodable % 1000 == 0:
                log.warning("undecodable message (%d so far): %s", self.undecodable, exc)
            return
        self.messages += 1
        self._last_seen = time.monotonic()
        if not self.connected:
            self.connected = True
            self.connection.emit(True, f"receiving from {self.endpoint}")
        if isinstance(message, TrackMessage):
            self.track.emit(message, t_client_ns)
        elif isinstance(message, PreviewMessage):
            self.preview.emit(message)
        elif isinstance(message, MsdMessage):
            self.msd.emit(message)
        elif isinstance(message, StatusMessage):
            self._note_status(message)

    def _note_status(self, status: StatusMessage) -> None:
        if self._daemon_started_ns is not None and status.started_ns != self._daemon_started_ns:
            log.info("the daemon at %s restarted", self.endpoint)
            self.restarted.emit()
        self._daemon_started_ns = status.started_ns
        self.status.emit(status)

    def _tick(self) -> None:
        self._drain()
        if time.monotonic() - self._last_seen < self.heartbeat_timeout_s:
            return
        if self.connected:
            self.connected = False
            self.connection.emit(False, f"no heartbeat from {self.endpoint}: reconnecting")
        self.reconnects += 1
        self._close_socket()
        self._open()

    def close(self) -> None:
        self._timer.stop()
        self._close_socket()
        self._context.term()


class CommandRunner(QtCore.QObject):
    """Control requests on a worker thread, one at a time; results come back as signals."""

    done = QtCore.Signal(str, object)  # description, reply dict
    failed = QtCore.Signal(str, str)  # description, error text

    def __init__(
        self,
        endpoint: str,
        timeout_s: float = 15.0,
        parent: QtCore.QObject | None = None,
        keys: ClientKeys | None = None,
    ):
        """``timeout_s`` exceeds the daemon's own 10 s wait for a busy engine (see ControlClient)."""
        super().__init__(parent)
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self._requests: queue.SimpleQueue[tuple[str, Callable[[ControlClient], Any]] | None] = (
            queue.SimpleQueue()
        )
        self._client = ControlClient(
            endpoint, timeout_s=timeout_s, keys=keys
        )  # a bad endpoint fails here, not later
        self._thread = threading.Thread(target=self._work, name="lptem-dashboard-control", daemon=True)
        self._thread.start()

    def submit(self, description: str, request: Callable[[ControlClient], Any]) -> None:
        self._requests.put((description, request))

    def _work(self) -> None:
        """Owns the REQ socket from here on (a ZeroMQ socket is used by one thread at a time)."""
        with self._client as client:
            while (item := self._requests.get()) is not None:
                description, request = item
                try:
                    self.done.emit(description, request(client))
                except ControlError as exc:
                    self.failed.emit(description, str(exc))
                except TimeoutError as exc:
                    self.failed.emit(description, f"{exc} (the daemon may still apply it)")
                except Exception as exc:  # any failure is reported: the worker must live on
                    log.exception("%s failed", description)
                    self.failed.emit(description, f"{type(exc).__name__}: {exc}")

    def close(self) -> None:
        self._requests.put(None)
        self._thread.join(timeout=self.timeout_s + 1.0)
