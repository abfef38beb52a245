"""A flood of malformed input: the daemon stays up, processes every good frame, counts every reject by
reason, and bad control requests change no state."""

from __future__ import annotations

from collections import Counter

import msgpack
import numpy as np
import pytest
import zmq

from lptem.clients.ops.daemon_process import DaemonProcess
from lptem.clients.wire.control import ControlClient, ControlError
from lptem.clients.wire.subscriber import Subscriber
from lptem.service.protocol import TrackMessage, encode_header
from tests.conftest import wait_until

pytestmark = pytest.mark.e2e

SHAPE = (64, 64)
GOOD = np.full(SHAPE, 1000, dtype=np.uint16)
GOOD[20:30, 20:30] = 500  # one dark particle


def header(frame, **changes):
    h = msgpack.unpackb(encode_header(frame, 1, SHAPE, "uint16"))
    h.update(changes)
    return msgpack.packb({k: v for k, v in h.items() if v is not ...})


def malformed(kind, last_good):
    """(message parts, expected reject reason) for one kind of bad input."""
    pixels = GOOD.tobytes()
    nan = np.full(SHAPE, np.nan, dtype=np.float32).tobytes()
    return {
        "three parts": ([header(last_good + 1), pixels, b"extra"], "parts"),
        "header only": ([header(last_good + 1)], "parts"),
        "garbage header": ([b"\xc1\x00\xff" * 3, pixels], "msgpack"),
        "header not a map": ([msgpack.packb([1, 2, 3]), pixels], "header"),
        "missing t_ns": ([header(last_good + 1, t_ns=...), pixels], "header"),
        "missing shape": ([header(last_good + 1, shape=...), pixels], "header"),
        "wrong version": ([header(last_good + 1, v=7), pixels], "version"),
        "unknown type": ([header(last_good + 1, type="movie"), pixels], "type"),
        "unknown dtype": ([header(last_good + 1, dtype="complex64"), pixels], "dtype"),
        "absurd shape": ([header(last_good + 1, shape=[10**6, 10**6]), pixels], "shape"),
        "wrong byte count": ([header(last_good + 1), pixels[:-2]], "size"),
        "negative frame": ([header(-3), pixels], "frame_number"),
        "repeated frame": ([header(last_good), pixels], "frame_order"),
        "earlier frame": ([header(max(1, last_good - 1)), pixels], "frame_order"),
        "nan pixels": ([header(last_good + 1, dtype="float32"), nan], "nonfinite"),
    }[kind]


KINDS = [
    "three parts",
    "header only",
    "garbage header",
    "header not a map",
    "missing t_ns",
    "missing shape",
    "wrong version",
    "unknown type",
    "unknown dtype",
    "absurd shape",
    "wrong byte count",
    "negative frame",
    "repeated frame",
    "earlier frame",
    "nan pixels",
]


def test_malformed_frames_are_counted_by_reason_and_good_frames_all_processed():
    n_good, per_good = 200, 6
    expected: Counter[str] = Counter()
    with (
        DaemonProcess("--policy", "queue", "-E", "particle_radius_px=5") as daemon,
        Subscriber(daemon.publish) as sub,
        ControlClient(daemon.control) as control,
    ):
        assert sub.wait_connected()
        control.add_object(box=[18, 18, 31, 31])
        context = zmq.Context()
        camera = context.socket(zmq.PUSH)
        camera.connect(daemon.ingest)
        k = 0
        for frame in range(2, 2 + n_good):  # start at 2 so "earlier frame" is never frame 0
            camera.send_multipart([header(frame), GOOD.tobytes()])
            for _ in range(per_good):
                parts, reason = malformed(KINDS[k % len(KINDS)], frame)
                camera.send_multipart(parts)
                expected[reason] += 1
                k += 1
        camera.close(linger=5000)
        context.term()
        tracks: list[TrackMessage] = []
        while len(tracks) < n_good and (r := sub.recv(5.0)) is not None:
            tracks.append(r.message)
        status = control.status()
        assert control.ping() > 0  # still up and answering
    assert sum(expected.values()) >= 1000
    assert [t.frame for t in tracks] == list(range(2, 2 + n_good))
    assert all(t.objects[0].visible for t in tracks)
    assert status.frames_processed == status.frames_received == n_good
    assert {k: v for k, v in status.frames_rejected.items() if v} == dict(expected)
    assert "rejected ingest message" in daemon.log_text()
    assert daemon.log_text().count("rejected ingest message") < 100  # rate-limited, not 1200 lines


BAD_REQUESTS = [
    [b"\xc1\xc1"],
    [msgpack.packb("add_object")],
    [msgpack.packb({"cmd": "launch"})],
    [msgpack.packb({"cmd": "add_object"})],
    [msgpack.packb({"cmd": "add_object", "box": [0, 0, 10]})],
    [msgpack.packb({"cmd": "add_object", "box": [10, 10, 0, 0]})],
    [msgpack.packb({"cmd": "add_object", "points": [[1, 2, 5]]})],
    [msgpack.packb({"cmd": "add_object", "box": [0, 0, 1e9, 1e9], "id": -4})],
    [msgpack.packb({"cmd": "add_object", "box": [5000, 5000, 5010, 5010]})],  # outside the 64x64 frame
    [msgpack.packb({"cmd": "remove_object", "id": 42})],
    [msgpack.packb({"cmd": "remove_object"})],
    [msgpack.packb({"cmd": "set_auto_detect", "enabled": "please"})],
    [msgpack.packb({"cmd": "ping"}), b"second part"],
]


def test_bad_control_requests_get_errors_and_change_no_state():
    with (
        DaemonProcess("--policy", "queue", "-E", "particle_radius_px=5") as daemon,
        ControlClient(daemon.control) as control,
    ):
        control.add_object(box=[18, 18, 31, 31], obj_id=3)
        with _camera(daemon.ingest) as camera:
            camera.send_multipart([header(0), GOOD.tobytes()])  # the frame size becomes known
        assert wait_until(lambda: control.status().frames_processed == 1)
        before = control.list_objects()
        context = zmq.Context()
        req = context.socket(zmq.REQ)
        req.connect(daemon.control)
        replies = []
        for parts in BAD_REQUESTS:
            req.send_multipart(parts)
            assert req.poll(5000), f"no reply to {parts!r}"
            replies.append(msgpack.unpackb(req.recv()))
        req.close()
        context.term()
        after = control.list_objects()
        status = control.status()
        with pytest.raises(ControlError, match="unknown command"):
            control.request("launch")
    for parts, reply in zip(BAD_REQUESTS, replies, strict=True):
        assert reply["ok"] is False, parts
        assert isinstance(reply["error"], str)
        assert len(reply["error"]) > 10
    assert after == before
    assert status.extra["control_errors"] == len(BAD_REQUESTS)
    assert status.auto_detect is False


class _camera:
    def __init__(self, endpoint):
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.PUSH)
        self.socket.connect(endpoint)

    def __enter__(self):
        return self.socket

    def __exit__(self, *exc):
        self.socket.close(linger=5000)
        self.context.term()
