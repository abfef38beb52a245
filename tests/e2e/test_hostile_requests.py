"""Requests that would cost more than they are worth: refused fast, with a short reply and log line,
without the daemon's memory moving, and with no state changed (docs/protocol.md §5)."""

from __future__ import annotations

from pathlib import Path

import msgpack
import pytest
import zmq

from lptem.clients.ops.daemon_process import DaemonProcess
from lptem.clients.wire.control import ControlClient, ControlError
from lptem.service.protocol import MAX_OBJECTS, MAX_PROMPT_POINTS, MAX_REQUEST_BYTES, QUOTE_CHARS

pytestmark = pytest.mark.e2e


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def send_raw_unanswered(endpoint: str, payload: bytes, wait_s: float) -> bool:
    """Send ``payload`` on a fresh REQ socket; True if a reply came within ``wait_s``."""
    with zmq.Context() as ctx, ctx.socket(zmq.REQ) as sock:
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(endpoint)
        sock.send(payload)
        return bool(sock.poll(int(wait_s * 1000)))


def test_huge_requests_are_dropped_unread_and_cost_nothing():
    with DaemonProcess() as daemon, ControlClient(daemon.control, timeout_s=5.0) as control:
        control.add_object(box=[10, 10, 30, 30])
        before = rss_kib(daemon.pid)
        ten_million_points = msgpack.packb({"cmd": "add_object", "points": [[1.0, 2.0, 1]] * 10_000_000})
        sixty_mb = msgpack.packb({"cmd": "add_object", "box": [0, 0, 1, 1], "pad": b"x" * 60_000_000})
        for payload in (ten_million_points, sixty_mb):
            assert not send_raw_unanswered(daemon.control, payload, wait_s=1.0)  # the peer is dropped
        del ten_million_points, sixty_mb
        assert control.ping() > 0  # still answering
        assert [o["id"] for o in control.list_objects()] == [1]  # nothing changed
        assert rss_kib(daemon.pid) - before < 20_000  # KiB: the 60 MB never entered the daemon
        with pytest.raises(ControlError, match="exceeds"):  # our client refuses before sending
            control.request("add_object", points=[[1.0, 2.0, 1]] * 20_000)


def test_oversized_prompts_and_too_many_objects_are_refused_with_short_replies():
    with DaemonProcess() as daemon, ControlClient(daemon.control) as control:
        refusals: list[tuple[str, dict[str, object], str]] = [
            ("add_object", {"box": [0, 0, 1e12, 1e12]}, "within a 16384x16384"),
            ("add_object", {"points": [[5.0, 5.0, 1]] * (MAX_PROMPT_POINTS + 1)}, "at most"),
            ("add_object", {"points": [[5.0, 5.0, "y" * 5000]]}, "label"),
            ("x" * 20_000, {}, "unknown command"),
        ]
        for cmd, args, says in refusals:
            payload = msgpack.packb({"cmd": cmd, **args})
            assert len(payload) <= MAX_REQUEST_BYTES
            with pytest.raises(ControlError, match=says) as refused:
                control.send_raw(payload)
            assert len(str(refused.value)) < 2 * QUOTE_CHARS + 80
        for k in range(MAX_OBJECTS):
            control.add_object(box=[k % 64 * 8, k // 64 * 8, k % 64 * 8 + 6, k // 64 * 8 + 6])
        with pytest.raises(ControlError, match=f"most allowed \\({MAX_OBJECTS}\\)"):
            control.add_object(box=[600, 600, 610, 610])
        assert len(control.list_objects()) == MAX_OBJECTS
        control.add_object(box=[600, 600, 610, 610], obj_id=1)  # a correction is not a new object
        assert control.status().extra["control_errors"] == len(refusals) + 1
        log = daemon.log_text()
    assert max(len(line) for line in log.splitlines()) < 400  # no line repeats a huge input
