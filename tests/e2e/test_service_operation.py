"""``lptem serve`` as a service manager runs it: settings from a config file and LPTEM_* variables,
systemd's notify socket (READY, watchdog, STOPPING), JSON log lines, ``lptem health`` as the probe, and
bad settings refused before anything is bound."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lptem.clients.ops.daemon_process import DaemonProcess
from lptem.clients.wire.sender import FrameSender
from lptem.engine.synthetic import BlobMovie, BlobMovieConfig
from lptem.service.exports import read_record
from tests.conftest import free_port

pytestmark = pytest.mark.e2e
LPTEM = str(Path(sys.executable).with_name("lptem"))


def lptem(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LPTEM, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


def config_file(tmp_path: Path, metrics_port: int, extra: str = "") -> Path:
    """A config like deploy's, on free loopback ports; ``extra`` lines end the [engine_options] table."""
    path = tmp_path / "lptem.toml"
    path.write_text(
        f"""# like deploy/systemd/lptem.toml, on free loopback ports
record = "record"
ingest = "tcp://127.0.0.1:*"
publish = "tcp://127.0.0.1:*"
preview = "none"
control = "tcp://127.0.0.1:*"
metrics_port = {metrics_port}
ready_file = "ready.json"
ready_max_silence = 30
log_format = "json"
msd_rate = 5

[engine_options]
particle_radius_px = 6
{extra}"""
    )
    return path


def test_a_configured_daemon_tells_systemd_it_is_ready_pings_the_watchdog_and_answers_probes(tmp_path):
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(30)
    port = free_port()
    path = config_file(tmp_path, port)
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "400000",
           "LPTEM_MSD_RATE": "2"}  # fmt: skip
    log = tmp_path / "daemon.log"
    with log.open("w") as stderr:
        daemon = subprocess.Popen([LPTEM, "serve", "--config", str(path)], env=env, stderr=stderr)
    try:
        assert notify.recv(4096).startswith(b"READY=1\nSTATUS=tracking with classical")
        assert notify.recv(64) == b"WATCHDOG=1"
        ready = json.loads((tmp_path / "ready.json").read_text())  # the relative path, next to the file
        assert ready["metrics_port"] == port
        url = f"http://127.0.0.1:{port}"
        assert lptem("health", "--url", url).returncode == 0
        shown = lptem("config", "show", "--config", str(path), env={"LPTEM_MSD_RATE": "2"}).stdout
        assert "msd_rate = 2.0" in shown
        assert "# env LPTEM_MSD_RATE" in shown
        with FrameSender(ready["ingest"]) as camera:
            camera.send(np.zeros((64, 64), np.uint16))
        assert lptem("health", "--live", "--url", url).returncode == 0
        daemon.send_signal(signal.SIGTERM)
        messages = []
        while (message := notify.recv(64)) == b"WATCHDOG=1":
            messages.append(message)
        assert message == b"STOPPING=1"
        assert daemon.wait(timeout=30) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
        notify.close()
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert {"time", "level", "logger", "message"} <= set(lines[-1])
    assert lines[-1]["message"].startswith("lptem daemon stopped: 1 frames processed")
    assert lptem("health", "--url", f"http://127.0.0.1:{port}").returncode == 2  # gone: no answer


@pytest.mark.parametrize(
    ("extra", "env", "expected"),
    [
        ("bogus = 1\n", {}, "engine_options.bogus from file {path} line 15"),
        ("", {"LPTEM_METRICS_TLS_CERT": "cert.pem"}, "metrics_tls_cert from env LPTEM_METRICS_TLS_CERT"),
        ("", {"LPTEM_POLICY": "fastest"}, "environment variable LPTEM_POLICY: must be one of"),
        ("[other]\nx = 1\n", {}, "{path} line 15: unknown key 'other'"),
    ],
)
def test_bad_settings_are_refused_before_anything_is_bound(tmp_path, extra, env, expected):
    port = free_port()
    path = config_file(tmp_path, port, extra)
    for command in (["serve", "--config", str(path)], ["config", "check", str(path)]):
        refused = lptem(*command, env=env)
        assert refused.returncode == 2, refused.stderr
        assert expected.format(path=path) in refused.stderr
        assert "Traceback" not in refused.stderr
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))  # the metrics port was never taken
    assert not (tmp_path / "record").exists()
    assert not (tmp_path / "ready.json").exists()


def test_config_check_counts_what_came_from_where(tmp_path):
    path = config_file(tmp_path, free_port())
    checked = lptem("config", "check", str(path), env={"LPTEM_MSD_LAGS": "16"})
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.strip() == f"{path}: valid (11 settings from the file, 1 from LPTEM_* variables)"


def test_a_batch_job_replays_a_movie_drains_the_daemon_and_records_every_frame(tmp_path):
    """What deploy/kubernetes/base/job-replay.yaml runs: serve --policy queue, replay --drain, stop."""
    movie = BlobMovie(BlobMovieConfig(shape=(200, 240), n_blobs=2, radius_px=6.0), 60)
    path = tmp_path / "movie.npy"
    np.save(path, np.stack([movie.frame(i) for i in range(60)]))
    record = tmp_path / "rec"
    with DaemonProcess("--policy", "queue", "--record", str(record), "-E", "particle_radius_px=6",
                       "--auto-detect") as daemon:  # fmt: skip
        replay = lptem("replay", str(path), "--ingest", daemon.ingest, "--control", daemon.control,
                       "--drain", "60", "--no-progress")  # fmt: skip
        assert replay.returncode == 0, replay.stderr
        assert "drained: 60 processed, 0 dropped" in replay.stdout
    assert list(read_record(record).frames["frame"]) == list(range(60))


def test_drain_gives_up_with_a_clear_error_when_no_daemon_answers(tmp_path):
    path = tmp_path / "movie.npy"
    np.save(path, np.zeros((2, 32, 32), np.uint16))
    with DaemonProcess() as daemon:
        refused = lptem("replay", str(path), "--ingest", daemon.ingest, "--control",
                        f"tcp://127.0.0.1:{free_port()}", "--drain", "1", "--wait", "5")  # fmt: skip
    assert refused.returncode == 1
    assert "--drain: cannot read the daemon's status" in refused.stderr
