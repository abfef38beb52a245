"""CURVE security on the daemon's sockets: roles, what each may do, and a client's keys (docs/security.md).

Keys are pyzmq's certificate files (``zmq.auth.create_certificates``): ``NAME.key`` holds a public key,
``NAME.key_secret`` the pair. A client needs its own ``.key_secret`` and the daemon's public ``server.key``.
Shared by the daemon and every client: both sides name roles and sockets the same way.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import zmq
import zmq.auth

Role = Literal["camera", "viewer", "operator"]
ROLES: tuple[Role, ...] = ("camera", "viewer", "operator")
ROLE_RIGHTS: dict[Role, str] = {
    "camera": "send frames (ingest)",
    "viewer": "subscribe to results (publish) and read the daemon's state (control: status, list, ping)",
    "operator": "everything: send frames, subscribe, and every control command",
}
SocketName = Literal["ingest", "publish", "control", "microscope"]
SOCKET_ROLES: dict[SocketName, frozenset[Role]] = {
    "ingest": frozenset({"camera", "operator"}),
    "publish": frozenset({"viewer", "operator"}),
    "control": frozenset({"viewer", "operator"}),
    "microscope": frozenset({"operator"}),  # the simulated microscope's stage and beam (lptem sim)
}
"""Who may connect to each socket at all; on control, commands that change state (``CHANGES_STATE`` in
lptem.service.protocol.control) need the operator role."""

KEY_ENV = "LPTEM_KEY"
"""Environment variable naming a client's secret key file (``NAME.key_secret``)."""
SERVER_KEY_ENV = "LPTEM_SERVER_KEY"
"""Environment variable naming the daemon's public key file (``server.key``)."""


class KeyFileError(ValueError):
    """A key file that is missing, unreadable or not what it should be; the message says which."""


@dataclass(frozen=True, slots=True)
class ClientKeys:
    """A client's CURVE key pair and the daemon's public key (Z85 text, 40 characters each)."""

    public: bytes
    secret: bytes
    server: bytes

    @classmethod
    def load(cls, key_file: Path, server_key_file: Path) -> ClientKeys:
        """From the client's ``NAME.key_secret`` and the daemon's ``server.key``."""
        public, secret = read_key_file(key_file)
        if secret is None:
            raise KeyFileError(f"{key_file}: holds no secret key (give the .key_secret file, not the .key)")
        server, _ = read_key_file(server_key_file)
        return cls(public, secret, server)

    def apply(self, socket: zmq.Socket[bytes]) -> None:
        """Make ``socket`` a CURVE client of the daemon (before it connects)."""
        socket.curve_secretkey = self.secret
        socket.curve_publickey = self.public
        socket.curve_serverkey = self.server


def read_key_file(path: Path) -> tuple[bytes, bytes | None]:
    """(public, secret or None) from a pyzmq certificate file, with a one-line error for a bad file."""
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"{path}: not a readable key file ({exc})") from exc
    if len(public) != 40 or (secret is not None and len(secret) != 40):
        raise KeyFileError(f"{path}: a key must be 40 characters of Z85 text")
    return public, secret


def client_keys(key_file: Path | str | None, server_key_file: Path | str | None) -> ClientKeys | None:
    """Keys from the given files, else from ``LPTEM_KEY`` / ``LPTEM_SERVER_KEY``; None when neither names
    any. One without the other is an error (a client cannot use half of CURVE)."""
    key = key_file or os.environ.get(KEY_ENV) or None
    server = server_key_file or os.environ.get(SERVER_KEY_ENV) or None
    if key is None and server is None:
        return None
    if key is None or server is None:
        missing = f"--key (or {KEY_ENV})" if key is None else f"--server-key (or {SERVER_KEY_ENV})"
        raise KeyFileError(f"CURVE needs both a client key and the daemon's public key: {missing} is missing")
    return ClientKeys.load(Path(key), Path(server))


_HOST = re.compile(r"^tcp://(?P<host>.+):(?P<port>\*|\d+)$")


def is_loopback(endpoint: str) -> bool:
    """Whether only this machine can reach ``endpoint``: ipc/inproc, or tcp on a loopback address or
    ``localhost``. ``tcp://*`` and any other address or host name can be reached from the network."""
    if endpoint.startswith(("ipc://", "inproc://")):
        return True
    match = _HOST.match(endpoint)
    if match is None:
        return False
    host = match.group("host").strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # '*', an interface name or a host name
        return False
