"""deploy/compose/prometheus: promtool checks the config and every rule, the alert unit tests make each
alert fire and clear, the dashboard's expressions are all among the checked rules, and a real Prometheus
started from the shipped config scrapes a real daemon fed by `lptem sim`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from lptem.clients.ops.daemon_process import DaemonProcess
from tests.conftest import free_port, wait_until
from tests.deploy.conftest import DEPLOY, run, tool

pytestmark = pytest.mark.deploy
PROMETHEUS = DEPLOY / "compose" / "prometheus"
DASHBOARD = DEPLOY / "compose" / "grafana" / "dashboards" / "lptem.json"
ALERTS = ("LptemDown", "LptemFramesDropped", "LptemProcessingSlowerThanFrames", "LptemRejectsRising",
          "LptemAuthFailures", "LptemCameraSilent", "LptemRecordFailing", "LptemRecordLosing",
          "LptemEngineErrors")  # fmt: skip


def test_promtool_accepts_the_config_and_every_rule_file() -> None:
    promtool = tool("promtool")
    config = run(promtool, "check", "config", PROMETHEUS / "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr
    assert "SUCCESS: 2 rule files found" in config.stdout
    rules = run(promtool, "check", "rules", PROMETHEUS / "alerts.yml", PROMETHEUS / "dashboard.rules.yml")
    assert rules.returncode == 0, rules.stdout + rules.stderr


def test_each_alert_fires_and_clears_in_promtools_unit_tests() -> None:
    result = run(tool("promtool"), "test", "rules", PROMETHEUS / "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    alerts = [r["alert"] for g in _yaml(PROMETHEUS / "alerts.yml")["groups"] for r in g["rules"]]
    assert sorted(alerts) == sorted(ALERTS)
    tested: dict[str, set[bool]] = {}
    for test in _yaml(PROMETHEUS / "alerts_test.yml")["tests"]:
        for case in test["alert_rule_test"]:
            tested.setdefault(case["alertname"], set()).add(bool(case["exp_alerts"]))
    assert tested == {name: {True, False} for name in ALERTS}  # each one seen firing and seen quiet


def test_every_dashboard_expression_is_a_checked_rule() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    shown = {t["expr"] for panel in dashboard["panels"] for t in panel["targets"]}
    recorded = {r["expr"] for g in _yaml(PROMETHEUS / "dashboard.rules.yml")["groups"] for r in g["rules"]}
    assert shown == recorded
    assert len(shown) >= 10


def test_a_real_prometheus_scrapes_a_daemon_fed_by_the_simulator(tmp_path: Path) -> None:
    prometheus = tool("prometheus")
    metrics_port, web_port = free_port(), free_port()
    config = _yaml(PROMETHEUS / "prometheus.yml")
    config["scrape_configs"][0]["static_configs"][0]["targets"] = [f"127.0.0.1:{metrics_port}"]
    config["global"]["scrape_interval"] = config["global"]["evaluation_interval"] = "1s"
    for name in config["rule_files"]:
        shutil.copy(PROMETHEUS / name, tmp_path / name)
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    with (
        (tmp_path / "prometheus.log").open("w") as log,
        DaemonProcess("--metrics-port", str(metrics_port)) as daemon,
    ):
        camera = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("lptem")),
                "sim",
                "--ingest",
                daemon.ingest,
                "--fps",
                "20",
                "--frames",
                "100000",
                "--size",
                "256",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        server = subprocess.Popen(
            [
                prometheus,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{web_port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        try:
            api = f"http://127.0.0.1:{web_port}/api/v1/query?query="
            assert wait_until(lambda: _value(api, 'up{job="lptem"}') == 1.0, timeout_s=60), _log(tmp_path)
            assert wait_until(lambda: (_value(api, "lptem:dashboard:expr1") or 0) > 5, timeout_s=60)
            fps = _value(api, "rate(lptem_frames_processed_total[5s])")
            assert fps is not None
            assert 10 < fps < 30, fps  # the simulator sends 20 frames/s
            rules = _get(f"http://127.0.0.1:{web_port}/api/v1/rules")["data"]["groups"]
            assert {r["name"] for g in rules for r in g["rules"]} >= set(ALERTS)
            assert _value(api, "lptem_ready") == 1.0
        finally:
            server.terminate()
            camera.terminate()
            server.wait(30)
            camera.wait(30)


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as reply:
        return json.loads(reply.read())


def _value(api: str, query: str) -> float | None:
    """The query's first sample, None when there is none (or Prometheus is not up yet)."""
    try:
        result = _get(api + urllib.parse.quote(query))["data"]["result"]
    except OSError:
        return None
    return float(result[0]["value"][1]) if result else None


def _log(folder: Path) -> str:
    time.sleep(0.1)
    return (folder / "prometheus.log").read_text()[-2000:]
