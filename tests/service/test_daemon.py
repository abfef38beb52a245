"""The daemon in-process on loopback sockets: control commands, topics, metrics, series handling."""

from __future__ import annotations

import threading
import urllib.request

import numpy as np
import pytest

from lptem.clients.ops.commands import format_status
from lptem.clients.wire.control import ControlClient, ControlError
from lptem.clients.wire.sender import FrameSender
from lptem.clients.wire.subscriber import Received, Subscriber
from lptem.engine.synthetic import BlobMovie, BlobMovieConfig
from lptem.service.mailbox import Policy
from lptem.service.protocol import PreviewMessage, StatusMessage, TrackMessage
from tests.conftest import free_port, wait_until

MOVIE = BlobMovie(BlobMovieConfig(shape=(256, 256), n_blobs=2, radius_px=6.0), 40)
CLASSICAL = {"particle_radius_px": "6"}


def box(i, blob):
    b = MOVIE.box(i, blob)
    return [b.x0, b.y0, b.x1, b.y1]


def collect(sub, n, topic="track", timeout_s=10.0):
    out: list[Received] = []
    while len(out) < n:
        r = sub.recv(timeout_s)
        if r is None:
            break
        if r.topic == topic:
            out.append(r)
    return out


def test_control_commands_change_state_only_when_valid(make_daemon):
    daemon = make_daemon(engine_options=CLASSICAL)
    with ControlClient(daemon.endpoints["control"]) as c:
        assert c.ping() > 0
        assert c.add_object(box=box(0, 0)) == 1
        assert c.add_object(points=[[*MOVIE.positions[0, 1], 1]], obj_id=5) == 5
        reply = c.request("add_object", box=box(0, 1), id=5)
        assert reply["corrected"] is True
        assert [o["id"] for o in c.list_objects()] == [1, 5]
        for bad in (
            lambda: c.remove_object(3),
            lambda: c.request("add_object", box=[5, 5, 1, 1]),
            lambda: c.request("explode"),
            lambda: c.request("set_auto_detect", enabled=1),
        ):
            with pytest.raises(ControlError):
                bad()
        assert [o["id"] for o in c.list_objects()] == [1, 5]
        c.set_auto_detect(True)
        assert c.status().auto_detect is True
        c.remove_object(1)
        assert [o["id"] for o in c.list_objects()] == [5]
        c.reset()
        assert c.list_objects() == []
        assert c.status().extra["control_errors"] == 4


def test_queue_policy_publishes_a_track_for_every_frame(make_daemon):
    daemon = make_daemon(engine_options=CLASSICAL, policy=Policy.QUEUE, pixel_size_nm=0.25)
    ep = daemon.endpoints
    with Subscriber(ep["publish"], topics=("track", "preview")) as sub, ControlClient(ep["control"]) as c:
        assert sub.wait_connected()
        c.add_object(box=box(0, 0))
        c.add_object(box=box(0, 1))
        with FrameSender(ep["ingest"]) as cam:
            for _, frame in MOVIE.frames():
                cam.send(frame)
        received = collect(sub, 40)
    tracks = [r.message for r in received]
    assert [t.frame for t in tracks] == list(range(40))
    for t in tracks:
        assert isinstance(t, TrackMessage)
        assert [o.id for o in t.objects] == [1, 2]
        for o in t.objects:
            tx, ty = MOVIE.positions[t.frame, o.id - 1]
            assert np.hypot(o.x - tx, o.y - ty) < 0.5
            assert o.x_nm == pytest.approx(o.x * 0.25)
        assert t.t_ns <= t.t_recv_ns <= t.t_done_ns
        assert t.dropped_total == 0


def test_preview_carries_a_downsampled_frame_and_label_map(make_daemon):
    daemon = make_daemon(engine_options=CLASSICAL, policy=Policy.QUEUE, preview_max_side=64)
    ep = daemon.endpoints
    with Subscriber(ep["preview"], topics=("preview",)) as sub, ControlClient(ep["control"]) as c:
        c.add_object(box=box(0, 0), obj_id=9)
        assert sub.wait_connected()
        with FrameSender(ep["ingest"]) as cam:
            cam.send(MOVIE.frame(0))
        (received,) = collect(sub, 1, topic="preview")
    preview = received.message
    assert isinstance(preview, PreviewMessage)
    assert preview.scale == 4
    assert preview.image.shape == preview.labels.shape == (64, 64)
    assert set(np.unique(preview.labels)) == {0, 9}
    ys, xs = np.nonzero(preview.labels == 9)
    x, y = MOVIE.positions[0, 0]
    assert np.hypot(xs.mean() * 4 - x, ys.mean() * 4 - y) < 4  # within one preview pixel
    assert preview.image.mean() == pytest.approx(MOVIE.frame(0).mean(), rel=0.01)


def test_status_heartbeat(make_daemon):
    daemon = make_daemon(status_interval_s=0.2)
    with Subscriber(daemon.endpoints["publish"], topics=("status",)) as sub:
        statuses = collect(sub, 3, topic="status", timeout_s=5)
    assert len(statuses) == 3
    s = statuses[-1].message
    assert isinstance(s, StatusMessage)
    assert (s.engine, s.policy, s.frames_received) == ("classical", "latest", 0)
    assert s.started_ns == daemon.started_ns


def test_start_marker_pixel_size_and_camera_restart(make_daemon):
    daemon = make_daemon(engine="passthrough", policy=Policy.QUEUE)
    ep = daemon.endpoints
    with Subscriber(ep["publish"]) as sub, ControlClient(ep["control"]) as c:
        c.add_object(box=[10, 10, 20, 20])
        assert sub.wait_connected()
        with FrameSender(ep["ingest"], series="run-1") as cam:
            cam.start(pixel_size_nm=2.0)
            frame = np.zeros((32, 32), np.uint8)
            for n in (0, 1, 2, 0, 1):  # the camera restarts its counter after frame 2
                cam.send(frame, frame_number=n)
        tracks = [r.message for r in collect(sub, 5)]
    assert [(t.frame, t.epoch) for t in tracks] == [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1)]
    assert all(t.series == "run-1" and t.pixel_size_nm == 2.0 for t in tracks)
    assert tracks[0].objects[0].x_nm == pytest.approx(15.0 * 2.0)
    assert daemon.stats.series_restarts == 1


def _metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in metrics")


def test_prometheus_metrics(make_daemon):
    port = free_port()
    daemon = make_daemon(engine="passthrough", policy=Policy.QUEUE, metrics_port=port)
    ep = daemon.endpoints
    with FrameSender(ep["ingest"]) as cam:
        for _ in range(7):
            cam.send(np.zeros((16, 16), np.uint16))
        cam._socket.send_multipart([b"\xc1", b""])  # one undecodable header
    assert wait_until(lambda: daemon.stats.processed == 7 and daemon.stats.rejected["msgpack"] == 1)
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert _metric(text, "lptem_frames_received_total") == 7
    assert _metric(text, "lptem_frames_processed_total") == 7
    assert _metric(text, "lptem_frames_dropped_total") == 0
    assert _metric(text, 'lptem_frames_rejected_total{reason="msgpack"}') == 1
    assert _metric(text, 'lptem_frames_rejected_total{reason="size"}') == 0
    assert _metric(text, "lptem_processing_latency_seconds_count") == 7
    assert _metric(text, "lptem_queue_depth") == 0
    assert _metric(text, "lptem_objects_tracked") == 0
    assert _metric(text, "lptem_last_frame_timestamp_seconds") > 1.6e9
    assert "particle" not in text  # no per-particle labels


def test_ingest_connect_subscribes_to_a_camera_pub(make_daemon):
    with FrameSender("tcp://127.0.0.1:*", mode="pub") as camera:
        daemon = make_daemon(engine="passthrough", ingest=camera.endpoint, ingest_connect=True)
        with Subscriber(daemon.endpoints["publish"]) as sub:
            assert sub.wait_connected()
            frame = np.zeros((16, 16), np.uint8)
            # PUB drops until the daemon's SUB has joined: send until the daemon reports a frame.
            assert wait_until(lambda: camera.send(frame) is not None and daemon.stats.received > 0, 10.0)
            received = sub.recv(5.0)
    assert received is not None
    assert isinstance(received.message, TrackMessage)
    assert daemon.endpoints["ingest"] == camera.endpoint


def test_callback_style_dispatches_in_a_background_thread(make_daemon):
    daemon = make_daemon(engine="passthrough", policy=Policy.QUEUE)
    ep = daemon.endpoints
    got: list[int] = []
    done = threading.Event()

    def on_track(received):
        got.append(received.message.frame)
        if len(got) == 5:
            done.set()

    sub = Subscriber(ep["publish"])
    sub.on("track", on_track)
    with pytest.raises(ValueError, match="not subscribed"):
        sub.on("preview", on_track)
    assert sub.wait_connected()
    sub.start()
    with FrameSender(ep["ingest"]) as cam:
        for _ in range(5):
            cam.send(np.zeros((8, 8), np.uint16))
    assert done.wait(10)
    sub.close()
    assert got == [0, 1, 2, 3, 4]


def test_status_reports_the_particle_radius_the_engine_estimated(make_daemon):
    movie = BlobMovie(BlobMovieConfig(shape=(256, 256), n_blobs=4, radius_px=10.0), 3)
    daemon = make_daemon(auto_detect=True, policy=Policy.QUEUE)  # no particle_radius_px given
    with ControlClient(daemon.endpoints["control"]) as c:
        assert c.status().extra["engine_settings"]["particle_radius_source"] == "default"
        with FrameSender(daemon.endpoints["ingest"]) as cam:
            for _, frame in movie.frames():
                cam.send(frame)
        assert wait_until(lambda: c.status().frames_processed == 3)
        status = c.status()
    settings = status.extra["engine_settings"]
    assert settings["particle_radius_source"] == "estimated"
    assert settings["particle_radius_px"] == pytest.approx(10.0, rel=0.2)
    shown = format_status(status)  # what `lptem status` prints
    assert f"engine   particle radius {settings['particle_radius_px']:g} px (estimated from" in shown
