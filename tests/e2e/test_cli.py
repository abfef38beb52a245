"""The `lptem` command line, run as users run it (the installed console script)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lptem.clients.ops.daemon_process import DaemonProcess
from lptem.engine.synthetic import BlobMovie, BlobMovieConfig
from lptem.service.exports import read_record
from tests.conftest import free_port

pytestmark = pytest.mark.e2e
LPTEM = str(Path(sys.executable).with_name("lptem"))


def lptem(*args, timeout=60):
    return subprocess.run([LPTEM, *args], capture_output=True, text=True, timeout=timeout, check=False)


def test_help_lists_every_command_and_each_has_help():
    top = lptem("--help")
    assert top.returncode == 0
    commands = ("serve", "config", "health", "replay", "record", "prompt", "status", "msd", "control",
                "bench", "dashboard",
                "sim", "analyze", "export", "demo")  # fmt: skip
    for command in commands:
        assert command in top.stdout
        sub = lptem(command, "--help")
        assert sub.returncode == 0, sub.stderr
        assert "usage: lptem " + command in sub.stdout
    assert "--ingest-connect" in lptem("serve", "--help").stdout
    assert lptem("--version").stdout.startswith("lptem-live ")


def test_serve_lists_engines_and_refuses_bad_options():
    listing = lptem("serve", "--list-engines")
    assert "classical:" in listing.stdout
    assert "-E particle_radius_px=<float>" in listing.stdout
    bad = lptem("serve", "-E", "bogus=1")
    assert bad.returncode == 2
    assert "unknown option" in bad.stderr
    with DaemonProcess() as daemon:
        taken = lptem(
            "serve",
            "--ingest",
            daemon.ingest,
            "--publish",
            "tcp://127.0.0.1:*",
            "--control",
            "tcp://127.0.0.1:*",
        )
    assert taken.returncode == 1
    assert "cannot start the daemon" in taken.stderr


def test_prompt_and_status_commands():
    with DaemonProcess("--pixel-size-nm", "0.4") as daemon:
        c = ("--control", daemon.control)
        added = lptem("prompt", "--box", "10", "10", "30", "30", *c)
        assert added.returncode == 0, added.stderr
        assert added.stdout.strip() == "id 1"
        assert lptem("prompt", "--point", "50", "60", "1", "--id", "4", *c).stdout.strip() == "id 4"
        listing = lptem("prompt", "--list", *c)
        assert [line.split()[0] for line in listing.stdout.splitlines()[1:]] == ["1", "4"]
        refused = lptem("prompt", "--remove", "9", *c)
        assert refused.returncode == 1
        assert "no object with id 9" in refused.stderr
        assert lptem("prompt", "--point", "5", "6", "2", *c).returncode == 1
        assert lptem("prompt", "--auto-detect", "on", *c).returncode == 0
        status = lptem("status", *c)
        assert "engine classical" in status.stdout
        assert "auto-detect on" in status.stdout
        as_json = json.loads(lptem("status", "--json", *c).stdout)
        assert as_json["objects"] == [1, 4]
        assert lptem("prompt", "--reset", *c).returncode == 0
        assert lptem("prompt", "--list", *c).stdout.strip() == "no objects tracked"


def test_msd_command_shows_and_changes_the_live_statistics_settings():
    with DaemonProcess("--msd-window", "128") as daemon:
        c = ("--control", daemon.control)
        shown = json.loads(lptem("msd", "--json", *c).stdout)
        assert shown == {"window": 128, "max_lag": 32, "log_lags": False, "rate_hz": 5.0, "fit_lags": 10}
        changed = lptem(
            "msd", "--window", "512", "--lags", "64", "--log-lags", "on", "--rate", "2", "--json", *c
        )
        assert changed.returncode == 0, changed.stderr
        expected = {"window": 512, "max_lag": 64, "log_lags": True, "rate_hz": 2.0, "fit_lags": 10}
        assert json.loads(changed.stdout) == expected
        refused = lptem("msd", "--lags", "600", *c)
        assert refused.returncode == 1
        assert "max_lag must be 1..window-1" in refused.stderr
        assert json.loads(lptem("msd", "--json", *c).stdout) == expected  # a refused request changed nothing
        status = lptem("status", *c).stdout
        assert (
            "msd      window 512 frames  log-spaced lags 1..64  fit on 10 lags  published at 2 Hz" in status
        )


def test_status_without_a_daemon_says_so():
    result = lptem("status", "--control", f"tcp://127.0.0.1:{free_port()}", "--timeout", "0.5")
    assert result.returncode == 1
    assert "is the daemon running?" in result.stderr


def test_replay_and_record_end_to_end(tmp_path):
    movie = BlobMovie(BlobMovieConfig(shape=(200, 240), n_blobs=2, radius_px=6.0), 30)
    path = tmp_path / "movie.npy"
    np.save(path, np.stack([movie.frame(i) for i in range(30)]))
    with DaemonProcess("--policy", "queue", "-E", "particle_radius_px=6", "--auto-detect") as daemon:
        recorder = subprocess.Popen(
            [LPTEM, "record", str(tmp_path / "rec"), "--publish", daemon.publish, "--frames", "30"],
            stderr=subprocess.PIPE,
            text=True,
        )
        assert recorder.stderr is not None
        for line in recorder.stderr:  # frames must not flow before the recorder hears the daemon
            if "connected" in line:
                break
        replay = lptem(
            "replay",
            str(path),
            "--ingest",
            daemon.ingest,
            "--control",
            daemon.control,
            "--pixel-size-nm",
            "0.5",
        )
        assert recorder.wait(60) == 0
        recorder.stderr.close()
    assert replay.returncode == 0, replay.stderr
    assert "sent 30 frames" in replay.stdout
    rec = read_record(tmp_path / "rec")
    assert list(rec.frames["frame"]) == list(range(30))
    assert rec.tracks["x_nm"].notna().all()
    assert (tmp_path / "rec" / "trajectories.csv").exists()


def test_replay_errors_are_clear(tmp_path):
    missing = lptem("replay", str(tmp_path / "nothing.tif"))
    assert missing.returncode == 2
    assert "no such file" in missing.stderr
    assert lptem("replay", str(tmp_path), "--fps", "-3").returncode == 2


def test_demo_runs_the_whole_loop_and_reports(tmp_path):
    out = tmp_path / "demo"
    result = lptem(
        "demo", "--seconds", "3", "--size", "512", "--particles", "2", "--out", str(out), timeout=180
    )
    assert result.returncode == 0, result.stderr
    assert "== lptem demo report ==" in result.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["frames_sent"] == 150
    assert report["frames_processed"] + report["frames_dropped"] == 150
    assert report["switches_separated"] == 0
    tracked = [o for o in report["objects"] if o["clean_frames"] > 50]
    assert len(tracked) == 2
    assert all(o["rmse_clean_px"] <= 2.0 for o in tracked)
    for name in (
        "record/trajectories.csv",
        "record/trajectories.parquet",
        "truth.csv",
        "trajectories.png",
        "msd.png",
        "frame.png",
    ):
        assert (out / name).exists(), name
