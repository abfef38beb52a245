"""The daemon's side of CURVE: who may connect to which socket, checked at the handshake (ZAP) and again on
every message, so that a key revoked while its client is connected stops working at once.

pyzmq's ``ThreadAuthenticator`` answers the ZAP requests libzmq makes for each new CURVE connection; it
asks :meth:`Gatekeeper.callback`, which looks the client's public key up in the key folder's
``authorized/<role>/`` (lptem.service.keys) and the role up in ``SOCKET_ROLES``. Accepted connections
carry the client's public key as their ZeroMQ ``User-Id``: ingest and control check it per message
(:meth:`Gatekeeper.role_of`). Failed handshakes (a refused key, a client without CURVE, a wrong server
key) are counted from each socket's monitor events, since a client that cannot even start the handshake
never reaches ZAP. A PUB socket cannot refuse one subscriber's messages, so a revocation asks
the publisher to re-bind (:meth:`Gatekeeper.on_revoked`): every subscriber reconnects and only the still
authorised ones pass the handshake again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import zmq
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils.monitor import recv_monitor_message

from lptem.service.keys import AuthorisedKey, KeyFolder
from lptem.service.logutil import RateLimitedLog
from lptem.service.protocol.curve import SOCKET_ROLES, Role, SocketName
from lptem.service.stats import Stats

log = logging.getLogger(__name__)

WATCH_INTERVAL_S = 1.0
"""How often the key folder is checked for added or revoked keys."""
_HANDSHAKE_FAILURES = (
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)


class Gatekeeper:
    """CURVE for one daemon's sockets (module docstring). ``close()`` when done."""

    def __init__(self, context: zmq.Context[zmq.Socket[bytes]], folder: KeyFolder, stats: Stats) -> None:
        self.folder = folder
        self._public, self._secret = folder.server_keys()
        self._stats = stats
        self._lock = threading.Lock()
        self._keys: dict[bytes, AuthorisedKey] = {}
        self._signature: tuple[tuple[str, int, int], ...] = ()
        self._revoked_listeners: list[Callable[[], None]] = []
        self._refusals = RateLimitedLog(log)
        self._monitors: dict[zmq.Socket[bytes], str] = {}
        self._reload_lock = threading.Lock()
        self.reload()
        self._authenticator = ThreadAuthenticator(context, log=logging.getLogger("lptem.service.zap"))
        self._authenticator.start()
        for name in SOCKET_ROLES:
            self._authenticator.configure_curve_callback(name, credentials_provider=self)
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="lptem-keys", daemon=True)
        self._watcher.start()

    @property
    def public_key(self) -> bytes:
        return self._public

    def secure(self, socket: zmq.Socket[bytes], name: SocketName) -> None:
        """Make ``socket`` a CURVE server whose clients ZAP checks against ``name``'s roles (before bind)."""
        socket.curve_server = True
        socket.curve_secretkey = self._secret
        socket.curve_publickey = self._public
        socket.zap_domain = name.encode()
        self._monitors[socket.get_monitor_socket(_HANDSHAKE_FAILURES)] = name

    def callback(self, domain: str, key: bytes) -> bool:
        """ZAP: may the client with public ``key`` (Z85) connect to socket ``domain``?"""
        with self._lock:
            entry = self._keys.get(key)
        roles = SOCKET_ROLES.get(domain, frozenset())  # type: ignore[call-overload]
        if entry is not None and entry.role in roles:
            return True
        why = (
            "an unknown key" if entry is None else f"{entry.name!r}, whose role {entry.role} may not connect"
        )
        key_start = key[:8].decode(errors="replace")
        self._refusals.warning(f"refused {why} on the {domain} socket (key {key_start}...)")
        return False  # counted when the handshake fails (the socket's monitor)

    def role_of(self, user_id: str | None) -> Role | None:
        """The role of the client whose ``User-Id`` (its public key) a message carries, None when that key
        is not authorised (any more)."""
        if user_id is None:
            return None
        with self._lock:
            entry = self._keys.get(user_id.encode())
        return None if entry is None else entry.role

    def may(self, user_id: str | None, socket: SocketName, *, changes_state: bool = False) -> bool:
        """Whether a message from ``user_id`` may be taken on ``socket``; on control, a command that
        ``changes_state`` needs the operator role."""
        role = self.role_of(user_id)
        if role is None or role not in SOCKET_ROLES[socket]:
            return False
        return not changes_state or role == "operator"

    def refused(self, socket: str, message: str) -> None:
        """Count and log (rate-limited) one refused connection or message."""
        self._stats.auth_failed(socket)
        self._refusals.warning(message)

    def on_revoked(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (from the watcher thread) after a reload that took a key away."""
        self._revoked_listeners.append(listener)

    def reload(self) -> list[str]:
        """Read ``authorized/`` again; returns the names of keys no longer authorised. A folder that is
        not there (moved, unmounted) keeps the keys already read, with a warning: revoking is explicit."""
        with self._reload_lock:  # SIGHUP and the watcher: one reads and swaps at a time, in order
            if not self.folder.authorized.is_dir():
                self._refusals.warning(
                    f"key folder {self.folder.authorized} is missing: keeping the keys read"
                )
                return []
            signature = self.folder.signature()
            keys: dict[bytes, AuthorisedKey] = {}
            for key in self.folder.authorised():
                keys.setdefault(
                    key.public, key
                )  # a key authorised twice: the first role (problems() says so)
            for problem in self.folder.problems():
                log.warning("key folder: %s (ignored)", problem)
            with self._lock:
                before = self._keys
                self._keys, self._signature = keys, signature
            gone = [k.name for public, k in before.items() if keys.get(public) != k]
            if before or keys:
                log.info("keys: %d authorised (%s)%s", len(keys), self._summary(keys),
                         f"; revoked {', '.join(gone)}" if gone else "")  # fmt: skip
            if gone:
                for listener in self._revoked_listeners:
                    listener()
            return gone

    def close(self) -> None:
        """After the secured sockets are closed."""
        self._stop.set()
        self._watcher.join()
        for monitor in self._monitors:
            monitor.close(linger=0)
        self._authenticator.stop()

    def _watch(self) -> None:
        """Count failed handshakes as they happen; re-read the key folder when it changes."""
        next_look = time.monotonic() + WATCH_INTERVAL_S
        while not self._stop.is_set():
            poller = zmq.Poller()  # afresh: sockets secured after the start are watched too
            for monitor in list(self._monitors):
                poller.register(monitor, zmq.POLLIN)
            for monitor, _ in poller.poll(timeout=100):
                self._handshake_failed(self._monitors[monitor], recv_monitor_message(monitor))
            if time.monotonic() >= next_look:
                next_look = time.monotonic() + WATCH_INTERVAL_S
                self._look_at_folder()
                if not self._authenticator.is_alive():  # without ZAP, libzmq would let any CURVE client in
                    self._refusals.warning(
                        "the ZAP authenticator thread has stopped: new connections are not checked"
                    )

    def _handshake_failed(self, socket: str, event: dict[str, Any]) -> None:
        kind = {
            zmq.EVENT_HANDSHAKE_FAILED_AUTH: "its key was refused",
            zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "no CURVE, or not with this daemon's server key",
        }.get(event["event"], "the handshake failed")
        peer = event["endpoint"].decode(errors="replace") if isinstance(event["endpoint"], bytes) else ""
        self.refused(socket, f"a client of the {socket} socket ({peer}) was not let in: {kind}")

    def _look_at_folder(self) -> None:
        try:
            if self.folder.signature() != self._signature:
                self.reload()
        except OSError as exc:  # the folder went away: keep the keys we have, say so
            self._refusals.warning(f"cannot read the key folder {self.folder.path}: {exc}")

    @staticmethod
    def _summary(keys: dict[bytes, AuthorisedKey]) -> str:
        counts: dict[str, int] = {}
        for k in keys.values():
            counts[k.role] = counts.get(k.role, 0) + 1
        return ", ".join(f"{n} {role}" for role, n in sorted(counts.items())) or "none"


def user_id_of(frame: zmq.Frame) -> str | None:
    """The ``User-Id`` ZAP gave the connection a message came on (the client's public key), if any."""
    try:
        user_id = frame.get("User-Id")
    except zmq.ZMQError:  # a socket without ZAP
        return None
    return user_id if isinstance(user_id, str) else None
