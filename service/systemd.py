"""systemd's notify protocol (sd_notify(3)): readiness, status, stopping, and watchdog pings.

A datagram of ``KEY=VALUE`` lines to the Unix socket in ``$NOTIFY_SOCKET`` (``@`` = abstract namespace).
Without the variable every call is a no-op, so the daemon runs the same outside systemd.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)


class Notifier:
    """Sends notify messages to the socket named in ``environ`` (none: does nothing)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        path = env.get("NOTIFY_SOCKET", "")
        self.address = "\0" + path[1:] if path.startswith("@") else path
        self.watchdog_s = _watchdog_interval(env)

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def send(self, **fields: str | int) -> bool:
        """One message of ``FIELD=value`` lines; False (and a debug line) when it could not be sent."""
        if not self.enabled:
            return False
        text = "\n".join(f"{key.upper()}={value}" for key, value in fields.items())
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(self.address)
                sock.sendall(text.encode())
        except OSError as exc:
            log.warning("systemd notify to %r failed: %s", self.address, exc)
            return False
        return True

    def watch(self, healthy: Callable[[], bool], stop: threading.Event) -> threading.Thread | None:
        """Ping ``WATCHDOG=1`` every half interval while ``healthy()``; an unhealthy daemon is not pinged, so
        systemd restarts it. None when systemd asked for no watchdog."""
        if not self.enabled or self.watchdog_s is None:
            return None
        interval = self.watchdog_s / 2

        def run() -> None:
            while not stop.wait(interval):
                if healthy():
                    self.send(watchdog=1)
                else:
                    log.error("unhealthy: the systemd watchdog is not pinged")

        thread = threading.Thread(target=run, name="lptem-watchdog", daemon=True)
        thread.start()
        return thread


def _watchdog_interval(environ: Mapping[str, str]) -> float | None:
    """``$WATCHDOG_USEC`` in seconds when it is meant for this process (``$WATCHDOG_PID`` unset or ours)."""
    usec = environ.get("WATCHDOG_USEC")
    pid = environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        value = int(usec)
    except ValueError:
        log.warning("WATCHDOG_USEC=%r is not a number of microseconds; no watchdog pings", usec)
        return None
    return value / 1e6 if value > 0 else None
