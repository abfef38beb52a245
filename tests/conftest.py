"""Shared fixtures: real sockets on loopback with free ports, the daemon in-process or as `lptem serve`."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from lptem.service.daemon import Daemon, DaemonConfig

ANY_PORT = "tcp://127.0.0.1:*"
REPOSITORY = Path(__file__).resolve().parents[1]
"""The source checkout (docs/, benchmarks/ are read from it)."""


def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0, interval_s: float = 0.02) -> bool:
    """Poll ``predicate`` until it holds or ``timeout_s`` passes; return its last value."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return predicate()
        time.sleep(interval_s)
    return True


def wait_processed(control: str, frames: int, timeout_s: float = 60.0) -> bool:
    """Wait until the daemon at ``control`` has processed ``frames`` frames (SIGTERM discards a queue)."""
    from lptem.clients.wire.control import ControlClient  # noqa: PLC0415 - keeps conftest light

    with ControlClient(control) as client:
        return wait_until(lambda: client.status().frames_processed >= frames, timeout_s, interval_s=0.1)


def free_port() -> int:
    """A TCP port that was free a moment ago (for servers that cannot bind port 0 and report it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def make_daemon() -> Iterator[type[Daemon]]:
    """Build in-process daemons on free ports; all are stopped at the end of the test."""
    started: list[Daemon] = []

    def factory(**overrides: Any) -> Daemon:
        config = DaemonConfig(ingest=ANY_PORT, publish=ANY_PORT, preview=ANY_PORT, control=ANY_PORT)
        daemon = Daemon(dataclasses.replace(config, **overrides))
        daemon.start()
        started.append(daemon)
        return daemon

    yield factory  # type: ignore[misc]
    for daemon in started:
        daemon.stop()


@pytest.fixture
def record_dir(tmp_path: Path) -> Path:
    return tmp_path / "record"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs: a real filesystem that answers ENOSPC when full (needs root, as in CI)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)], capture_output=True, check=False
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (not root?): {done.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(disk: Path, leave_bytes: int) -> Path:
    """Fill ``disk`` with a file until ``leave_bytes`` are free; delete the file to free the space."""
    filler = disk / "filler"
    stat = os.statvfs(disk)
    free = stat.f_bavail * stat.f_frsize
    with open(filler, "wb") as fh:
        fh.write(b"\0" * max(0, free - leave_bytes))
    return filler
