"""The daemon's last lines of defence: a failure inside one message never stops a thread.

These inject faults into our own code paths (there is no honest way to make correct validation code
fail otherwise) and check that the daemon counts, logs and carries on.
"""

from __future__ import annotations

import numpy as np
import pytest

import lptem.service.ingest
from lptem.clients.wire.control import ControlClient, ControlError
from lptem.clients.wire.sender import FrameSender
from lptem.clients.wire.subscriber import Subscriber
from lptem.service.control import ControlServer
from lptem.service.mailbox import Policy
from lptem.service.protocol import decode_ingest
from tests.conftest import wait_until

FRAME = np.zeros((8, 8), np.uint16)


def test_ingest_survives_an_internal_error(make_daemon, monkeypatch):
    calls = {"n": 0}

    def flaky_decode(parts):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("injected")
        return decode_ingest(parts)

    monkeypatch.setattr(lptem.service.ingest, "decode_ingest", flaky_decode)
    daemon = make_daemon(engine="passthrough", policy=Policy.QUEUE)
    with FrameSender(daemon.endpoints["ingest"]) as camera:
        for _ in range(3):
            camera.send(FRAME)
    assert wait_until(lambda: daemon.stats.processed == 2)
    assert daemon.stats.rejected["internal"] == 1


def test_control_survives_an_internal_error(make_daemon, monkeypatch):
    original = ControlServer.handle

    def flaky_handle(self, parts, user_id=None):
        if b"list_objects" in parts[0]:
            raise RuntimeError("injected")
        return original(self, parts, user_id)

    monkeypatch.setattr(ControlServer, "handle", flaky_handle)
    daemon = make_daemon(engine="passthrough")
    with ControlClient(daemon.endpoints["control"]) as control:
        with pytest.raises(ControlError, match="internal error"):
            control.list_objects()
        assert control.ping() > 0  # the REP socket still answers


def test_publisher_survives_an_unencodable_message(make_daemon):
    daemon = make_daemon(engine="passthrough", policy=Policy.QUEUE)
    with Subscriber(daemon.endpoints["publish"]) as sub:
        assert sub.wait_connected()
        daemon.publisher.publish(b"track", {"not": object()})  # msgpack cannot encode this
        with FrameSender(daemon.endpoints["ingest"]) as camera:
            camera.send(FRAME)
        received = sub.recv(5.0)
    assert received is not None
    assert received.message.frame == 0
