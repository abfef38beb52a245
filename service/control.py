"""Control thread: a REP socket answering commands. Parsing happens here; state changes happen on the
engine thread (the mailbox serves commands between frames), so a bad request never touches state.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import zmq

from lptem.service.auth import Gatekeeper, user_id_of
from lptem.service.logutil import RateLimitedLog
from lptem.service.mailbox import Mailbox, MailboxClosed
from lptem.service.protocol import (
    MAX_REQUEST_BYTES,
    CommandError,
    GetStatus,
    Ping,
    StatusMessage,
    encode_reply,
    parse_command,
)
from lptem.service.stats import Stats

log = logging.getLogger(__name__)
_POLL_MS = 100


class ControlServer:
    def __init__(
        self,
        context: zmq.Context[zmq.Socket[bytes]],
        endpoint: str,
        mailbox: Mailbox,
        stats: Stats,
        status: Callable[[], StatusMessage],
        *,
        reply_timeout_s: float = 10.0,
        gatekeeper: Gatekeeper | None = None,
    ) -> None:
        self._socket = context.socket(zmq.REP)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.MAXMSGSIZE, MAX_REQUEST_BYTES)  # larger: the peer is dropped unread
        self._gatekeeper = gatekeeper
        if gatekeeper is not None:
            gatekeeper.secure(self._socket, "control")
        try:
            self._socket.bind(endpoint)
        except zmq.ZMQError:
            self._socket.close()
            raise
        self.endpoint = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self._mailbox = mailbox
        self._stats = stats
        self._status = status
        self._timeout = reply_timeout_s
        self._errors = RateLimitedLog(log)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lptem-control", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        """Whether the thread runs (after start(), until stopped)."""
        return self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if self._socket.poll(_POLL_MS):
                    frames = self._socket.recv_multipart(copy=False)
                    reply = self._handle_guarded([f.bytes for f in frames], user_id_of(frames[0]))
                    if not reply["ok"]:
                        self._stats.control_error()
                        self._errors.warning(f"control request refused: {reply['error']}")
                    self._socket.send(encode_reply(reply))
        finally:
            self._socket.close()

    def _handle_guarded(self, parts: list[bytes], user_id: str | None = None) -> dict[str, Any]:
        try:
            return self.handle(parts, user_id)
        except Exception as exc:  # a REP socket must answer every request, or it stops working
            log.exception("internal error while handling a control request")
            return {"ok": False, "error": f"internal error: {exc!r}"}

    def handle(self, parts: list[bytes], user_id: str | None = None) -> dict[str, Any]:
        """The reply to one request; ``user_id`` is the client's public key when CURVE is on."""
        gate = self._gatekeeper
        if gate is not None and not gate.may(user_id, "control"):  # before any parsing
            gate.refused("control", "refused a control request: the key is not authorised (any more)")
            return {"ok": False, "error": "not permitted: this key is not authorised", "denied": True}
        if len(parts) != 1:
            return {"ok": False, "error": f"a request is one message part, got {len(parts)}"}
        try:
            command = parse_command(parts[0])
        except CommandError as exc:
            return {"ok": False, "error": str(exc)}
        if gate is not None and not gate.may(user_id, "control", changes_state=command.CHANGES_STATE):
            why = f"the {gate.role_of(user_id)} role may not {command.NAME}"
            gate.refused("control", f"refused a control request: {why}")
            return {"ok": False, "error": f"not permitted: {why} (an operator key may)", "denied": True}
        if isinstance(command, Ping):
            return {"ok": True, "t_ns": time.time_ns()}
        if isinstance(command, GetStatus):
            return {"ok": True, **self._status().to_wire()}
        try:
            future = self._mailbox.put_command(command)
        except MailboxClosed:
            return {"ok": False, "error": "the daemon is shutting down"}
        try:
            return future.result(timeout=self._timeout)
        except FutureTimeout:
            if future.cancel():  # still queued: it will never be applied, so refusing it is truthful
                return {"ok": False, "error": f"the engine was busy for {self._timeout:g} s; not applied"}
            return future.result()  # already being applied: its outcome is the answer
