"""systemd's notify protocol against a real Unix datagram socket, as systemd listens (path and abstract)."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from lptem.service.systemd import Notifier


@pytest.fixture(params=["path", "abstract"])
def listener(request, tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if request.param == "path":
        address = name = str(tmp_path / "notify")
    else:
        name = f"@lptem-test-{os.getpid()}-{id(sock)}"
        address = "\0" + name[1:]
    sock.bind(address)
    sock.settimeout(5)
    yield sock, name
    sock.close()


def test_messages_reach_the_socket(listener) -> None:
    sock, name = listener
    notifier = Notifier({"NOTIFY_SOCKET": name})
    assert notifier.send(ready=1, status="tracking")
    assert sock.recv(4096) == b"READY=1\nSTATUS=tracking"


def test_without_the_variable_nothing_is_sent() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    assert not notifier.send(ready=1)
    assert notifier.watch(lambda: True, threading.Event()) is None


def test_watchdog_pings_while_healthy_and_stops_pinging_when_not(listener) -> None:
    sock, name = listener
    healthy = threading.Event()
    healthy.set()
    stop = threading.Event()
    notifier = Notifier({"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "100000"})
    assert notifier.watchdog_s == 0.1
    thread = notifier.watch(healthy.is_set, stop)
    assert thread is not None
    assert [sock.recv(64) for _ in range(3)] == [b"WATCHDOG=1"] * 3
    healthy.clear()
    sock.settimeout(0.2)
    while True:  # a ping already on its way may still come; then silence
        try:
            sock.recv(64)
        except TimeoutError:
            break
    with pytest.raises(TimeoutError):
        sock.recv(64)
    stop.set()
    thread.join(timeout=2)
    assert not thread.is_alive()


@pytest.mark.parametrize(
    "env", [{"WATCHDOG_USEC": "0"}, {"WATCHDOG_USEC": "x"}, {"WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"}]
)
def test_no_watchdog_unless_systemd_asked_this_process(env: dict[str, str]) -> None:
    if env.get("WATCHDOG_PID") == str(os.getpid()):
        pytest.skip("the test runs as pid 1")
    assert Notifier({"NOTIFY_SOCKET": "/nonexistent", **env}).watchdog_s is None
