"""CURVE end to end, as users run it: ``lptem keys``, ``lptem serve --keys``, clients with ``--key``, SIGHUP,
and what an eavesdropper between the camera and the daemon sees with and without CURVE."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from lptem.clients.ops.daemon_process import DaemonProcess
from lptem.clients.wire.control import ControlClient
from lptem.clients.wire.sender import FrameSender
from lptem.service.protocol.curve import ClientKeys
from tests.conftest import wait_until

pytestmark = pytest.mark.e2e

HEADER_KEYS = (b"dtype", b"shape", b"t_ns", b"series")
"""Map keys of every frame header (docs/protocol.md §3), in clear msgpack text when not encrypted."""


def lptem(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("lptem")
    environment = {**os.environ, **(env or {})}
    return subprocess.run(
        [str(script), *args], capture_output=True, text=True, timeout=60, env=environment, check=False
    )


@pytest.fixture
def key_dir(tmp_path):
    folder = tmp_path / "keys"
    assert lptem("keys", "init", str(folder)).returncode == 0
    for name, role in (("cam", "camera"), ("alice", "viewer"), ("olga", "operator")):
        made = lptem("keys", "add", str(folder), name, "--role", role)
        assert made.returncode == 0, made.stderr
    return folder


def keys_of(folder: Path, name: str) -> ClientKeys:
    return ClientKeys.load(folder / "clients" / f"{name}.key_secret", folder / "server.key")


class Relay:
    """A TCP relay on a free loopback port that forwards to ``target`` and keeps what clients sent."""

    def __init__(self, target: str) -> None:
        host, port = target.removeprefix("tcp://").rsplit(":", 1)
        self._target = (host, int(port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"tcp://127.0.0.1:{self._listener.getsockname()[1]}"
        self.sent = bytearray()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        self._listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            thread = threading.Thread(target=self._forward, args=(client,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _forward(self, client: socket.socket) -> None:
        with client, socket.create_connection(self._target) as server:
            peers = {client: server, server: client}
            while not self._stop.is_set():
                ready, _, _ = select.select(list(peers), [], [], 0.1)
                for source in ready:
                    data = source.recv(65536)
                    if not data:
                        return
                    if source is client:
                        self.sent += data
                    peers[source].sendall(data)

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        self._listener.close()


def frames_through_relay(
    daemon: DaemonProcess, keys: ClientKeys | None, operator: ClientKeys | None
) -> bytes:
    """What a camera with ``keys`` sent through a relay for three frames (checked arrived, as operator)."""
    relay = Relay(daemon.ingest)
    try:
        with FrameSender(relay.endpoint, keys=keys, series="secret-series") as sender:
            sender.require_receiver(10.0)
            for _ in range(3):
                sender.send(np.full((32, 32), 7, dtype=np.uint16))
        with ControlClient(daemon.control, keys=operator) as control:
            assert wait_until(lambda: control.status().frames_received == 3)
        return bytes(relay.sent)
    finally:
        relay.close()


def test_an_eavesdropper_sees_the_headers_without_curve_and_nothing_readable_with_it(key_dir):
    with DaemonProcess("--policy", "queue") as plain:
        clear = frames_through_relay(plain, None, None)
    with DaemonProcess("--policy", "queue", "--keys", str(key_dir)) as secure:
        sealed = frames_through_relay(secure, keys_of(key_dir, "cam"), keys_of(key_dir, "olga"))
    for key in HEADER_KEYS:
        assert key in clear
    assert b"secret-series" in clear
    for key in HEADER_KEYS:
        assert key not in sealed
    assert b"secret-series" not in sealed
    assert len(sealed) > 3 * 32 * 32 * 2  # the frames went through, encrypted


def test_cli_clients_use_their_keys_and_sighup_revokes(key_dir):
    alice = ("--key", str(key_dir / "clients" / "alice.key_secret"))
    flags = ("--server-key", str(key_dir / "server.key"))
    with DaemonProcess("--keys", str(key_dir)) as daemon:
        viewer = lptem("status", "--control", daemon.control, *alice, *flags, "--timeout", "5")
        assert viewer.returncode == 0, viewer.stderr
        box = ("--box", "1", "1", "9", "9")
        refused = lptem("prompt", "--control", daemon.control, *box, "--timeout", "5", *alice, *flags)
        assert refused.returncode != 0
        assert "viewer role may not add_object" in refused.stderr
        env = {
            "LPTEM_KEY": str(key_dir / "clients" / "olga.key_secret"),
            "LPTEM_SERVER_KEY": str(key_dir / "server.key"),
        }
        added = lptem("prompt", "--control", daemon.control, *box, env=env)
        assert added.returncode == 0, added.stderr
        half = lptem(
            "status", "--control", daemon.control, "--key", str(key_dir / "clients" / "alice.key_secret")
        )
        assert half.returncode == 2
        assert "--server-key" in half.stderr
        # revoke behind the daemon's back, then SIGHUP (the folder watch would also notice within ~1 s)
        (key_dir / "authorized" / "viewer" / "alice.key").unlink()
        os.kill(daemon.pid, signal.SIGHUP)
        assert wait_until(lambda: "revoked alice" in daemon.log_text(), timeout_s=5.0)
        after = lptem("status", "--control", daemon.control, *alice, *flags, "--timeout", "2")
        assert after.returncode != 0


def test_serve_refuses_a_network_bind_without_keys_and_says_how():
    result = lptem("serve", "--ingest", "tcp://0.0.0.0:*")
    assert result.returncode == 2
    assert "--keys" in result.stderr
    assert "--insecure" in result.stderr


def test_sim_refuses_a_network_microscope_without_keys():
    result = lptem("sim", "--microscope", "tcp://0.0.0.0:*", "--frames", "1", "--wait", "1")
    assert result.returncode == 2
    assert "--microscope-keys" in result.stderr
