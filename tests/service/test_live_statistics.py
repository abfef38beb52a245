"""The daemon's live statistics: the msd topic equals the batch MSD of what it tracked, D and α reach
the status heartbeat, and set_msd reconfigures (a bad request changes nothing)."""

from __future__ import annotations

import io
import time
from typing import Any

import numpy as np
import pytest

from lptem.clients.demo.view import LiveView
from lptem.clients.ops.commands import format_status
from lptem.clients.wire.control import ControlClient, ControlError
from lptem.clients.wire.sender import FrameSender
from lptem.clients.wire.subscriber import Received, Subscriber
from lptem.engine.msd import msd, positions_by_frame
from lptem.engine.synthetic import BlobMovie, BlobMovieConfig
from lptem.service.mailbox import Policy
from lptem.service.protocol import MsdMessage, StatusMessage, TrackMessage
from lptem.service.statistics import MsdSettings

MOVIE = BlobMovie(
    BlobMovieConfig(shape=(256, 256), n_blobs=2, radius_px=6.0, motion="brownian", step_px=1.5), 120
)


def stream(daemon, frames, topics=("track", "msd", "status")):
    ep = daemon.endpoints
    received: dict[str, list[Any]] = {topic: [] for topic in topics}
    with Subscriber(ep["publish"], topics=topics) as sub, ControlClient(ep["control"]) as control:
        assert sub.wait_connected()
        for blob in range(2):
            b = MOVIE.box(0, blob)
            control.add_object(box=[b.x0, b.y0, b.x1, b.y1])
        with FrameSender(ep["ingest"], pixel_size_nm=0.5) as camera:
            for i in range(frames):
                camera.send(MOVIE.frame(i), t_ns=1_000_000_000 + i * 20_000_000)  # 50 fps camera clock
        while len(received["track"]) < frames and (r := sub.recv(5.0)) is not None:
            received[r.topic].append(r.message)
        deadline = time.monotonic() + 1.0  # the last msd and status messages (status never stops)
        while (r := sub.recv(max(0.0, deadline - time.monotonic()))) is not None:
            received[r.topic].append(r.message)
    return received


def test_msd_topic_equals_the_batch_msd_of_the_published_tracks(make_daemon):
    settings = MsdSettings(window=64, max_lag=16, rate_hz=50.0)
    options = {"particle_radius_px": "6"}
    daemon = make_daemon(engine_options=options, policy=Policy.QUEUE, status_interval_s=0.2, msd=settings)
    got = stream(daemon, 120)
    tracks: list[TrackMessage] = got["track"]
    messages: list[MsdMessage] = got["msd"]
    assert len(tracks) == 120
    assert messages
    last = messages[-1]
    assert last.lags == list(range(1, 17))
    assert last.frame_time_s == pytest.approx(0.02)
    assert last.lag_s[3] == pytest.approx(0.08)
    assert last.irregular is False
    for particle in last.particles:
        rows = [
            (t.frame, o.x, o.y)
            for t in tracks
            if last.frame - 64 < t.frame <= last.frame
            for o in t.objects
            if o.id == particle.id and o.visible
        ]
        _, dense = positions_by_frame([r[0] for r in rows], [r[1:] for r in rows])
        batch = msd(dense, 16)
        np.testing.assert_allclose(particle.msd_px2, batch.msd, rtol=1e-9)
        assert particle.msd_nm2 is not None
        np.testing.assert_allclose(np.array(particle.msd_nm2), batch.msd * 0.5**2, rtol=1e-9)  # 0.5 nm/px
        assert particle.pairs == batch.pairs.tolist()
        assert particle.D_px2_per_frame == pytest.approx(1.5**2 / 2, rel=0.35)  # 64 frames: a rough estimate
        assert particle.D_nm2_per_s == pytest.approx(particle.D_px2_per_frame * 0.25 / 0.02**particle.alpha)
    status: StatusMessage = got["status"][-1]
    assert {d["id"] for d in status.diffusion} == {1, 2}
    shown_to_people(status, last, tracks[-1])


def shown_to_people(status: StatusMessage, last: MsdMessage, track: TrackMessage) -> None:
    """`lptem status` and the demo's live view print the published D and α."""
    text = format_status(status)
    assert "msd      window 64 frames  lags 1..16  fit on 10 lags  published at 50 Hz" in text
    for d in status.diffusion:
        assert (
            f"id {d['id']:>5}  D {d['D_px2_per_frame']:.4g} px²/frame^α  {d['D_nm2_per_s']:.4g} nm²/s^α"
            in text
        )
    view = LiveView(pixel_size_nm=0.5, stream=io.StringIO())
    view.on_track(Received("track", track, track.t_done_ns))
    view.on_msd(Received("msd", last, track.t_done_ns))
    lines = view.lines(total=120)
    for p in last.particles:
        assert p.D_nm2_per_s is not None
        shown = f"D {p.D_nm2_per_s:7.1f} nm²/s^α  α {p.alpha:4.2f}"
        assert any(f"particle {p.id:>3}" in line and shown in line for line in lines)


def test_set_msd_reconfigures_and_bad_requests_change_nothing(make_daemon):
    daemon = make_daemon(engine="passthrough")
    with ControlClient(daemon.endpoints["control"]) as control:
        reply = control.request("set_msd", window=128, max_lag=8, log_lags=True)
        assert reply["msd"]["window"] == 128
        assert daemon.engine.statistics.settings == MsdSettings(window=128, max_lag=8, log_lags=True)
        for bad in ({"window": 4}, {"max_lag": 500}, {"rate_hz": -1}, {"windows": 10}, {"window": "big"}, {}):
            with pytest.raises(ControlError, match=r"msd|set_msd"):
                control.request("set_msd", **bad)
        assert daemon.engine.statistics.settings == MsdSettings(window=128, max_lag=8, log_lags=True)


def test_msd_can_be_switched_off(make_daemon):
    daemon = make_daemon(engine_options={"particle_radius_px": "6"}, policy=Policy.QUEUE,
                         msd=MsdSettings(rate_hz=0.0))  # fmt: skip
    got = stream(daemon, 20, topics=("track", "msd"))
    assert len(got["track"]) == 20
    assert got["msd"] == []
