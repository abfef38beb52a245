"""Control-socket clients: a REQ client with a timeout, and the daemon's typed commands."""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self

import zmq

from lptem.service.protocol import MAX_REQUEST_BYTES, StatusMessage, command_request, decode_reply
from lptem.service.protocol.curve import ClientKeys


class ControlError(RuntimeError):
    """The server refused a request; the message is the server's ``error``."""


class ReqClient:
    """REQ client with a timeout for msgpack ``{"cmd": ...}`` servers that answer ``{"ok": ...}``.

    After a timeout the socket is rebuilt so the next request works.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        timeout_s: float = 15.0,
        context: zmq.Context[zmq.Socket[bytes]] | None = None,
        keys: ClientKeys | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self._keys = keys
        self._own_context = context is None
        self._context = context or zmq.Context()
        self._socket = self._new_socket()

    def _new_socket(self) -> zmq.Socket[bytes]:
        socket = self._context.socket(zmq.REQ)
        socket.setsockopt(zmq.LINGER, 0)
        if self._keys is not None:
            self._keys.apply(socket)
        socket.connect(self.endpoint)
        return socket

    def request(self, cmd: str, **args: Any) -> dict[str, Any]:
        """Send one command; return the reply; raise ControlError if refused (a request over
        ``MAX_REQUEST_BYTES`` before it is sent: the daemon would drop it unread), TimeoutError if silent."""
        payload = command_request(cmd, **args)
        if len(payload) > MAX_REQUEST_BYTES:
            raise ControlError(
                f"{cmd} request of {len(payload)} bytes exceeds the {MAX_REQUEST_BYTES} byte limit"
            )
        return self.send_raw(payload)

    def send_raw(self, payload: bytes) -> dict[str, Any]:
        """Send pre-encoded bytes (also used by tests to send malformed requests)."""
        self._socket.send(payload)
        if not self._socket.poll(int(self.timeout_s * 1000)):
            self._socket.close()
            self._socket = self._new_socket()
            raise TimeoutError(f"no reply from {self.endpoint} within {self.timeout_s} s")
        reply = decode_reply(self._socket.recv())
        if not reply["ok"]:
            raise ControlError(reply.get("error", "request refused"))
        return reply

    def close(self) -> None:
        self._socket.close()
        if self._own_context:
            self._context.term()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class ControlClient(ReqClient):
    """The daemon's control socket: prompts, removal, listing, status, settings.

    The default timeout (15 s) exceeds the daemon's own wait for a busy engine (10 s), after which the
    daemon refuses a queued command rather than applying it late, so a client that times out has not
    had its command applied behind its back.
    """

    def ping(self) -> int:
        """Daemon clock, ns since the Unix epoch."""
        return int(self.request("ping")["t_ns"])

    def status(self) -> StatusMessage:
        reply = self.request("status")
        return StatusMessage.from_wire({k: v for k, v in reply.items() if k != "ok"})

    def add_object(
        self,
        box: Sequence[float] | None = None,
        points: Sequence[Sequence[float]] | None = None,
        obj_id: int | None = None,
    ) -> int:
        """Prompt an object with a box [x0, y0, x1, y1] px and/or points [[x, y, 1|0], ...]; return its id.

        Prompting an existing id corrects that object.
        """
        args: dict[str, Any] = {}
        if box is not None:
            args["box"] = [float(v) for v in box]
        if points is not None:
            args["points"] = [[float(p[0]), float(p[1]), int(p[2])] for p in points]
        if obj_id is not None:
            args["id"] = obj_id
        return int(self.request("add_object", **args)["id"])

    def remove_object(self, obj_id: int) -> None:
        self.request("remove_object", id=obj_id)

    def list_objects(self) -> list[dict[str, Any]]:
        return list(self.request("list_objects")["objects"])

    def reset(self) -> None:
        self.request("reset")

    def set_auto_detect(self, enabled: bool) -> None:
        self.request("set_auto_detect", enabled=enabled)

    def set_msd(self, **settings: Any) -> dict[str, Any]:
        """Change the live-statistics settings (``window``, ``max_lag``, ``log_lags``, ``rate_hz``,
        ``fit_lags``); returns all of them as now applied. The rolling window starts empty."""
        return dict(self.request("set_msd", **settings)["msd"])
