"""deploy/systemd: systemd-analyze accepts the unit without a warning, its hardening rates "OK", and the
daemon accepts the config it points at. (The notify protocol itself: tests/e2e/test_service_operation.py.)"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.deploy.conftest import DEPLOY, run, tool

pytestmark = pytest.mark.deploy
UNIT = DEPLOY / "systemd" / "lptem.service"
TEMPLATE = DEPLOY / "systemd" / "lptem@.service"
LPTEM = Path(sys.executable).with_name("lptem")


def installed_unit(tmp_path: Path, unit: Path = UNIT, name: str = "lptem.service") -> Path:
    """The unit as installed here: ExecStart names this environment's lptem, not /opt/lptem's."""
    installed = tmp_path / unit.name
    installed.write_text(unit.read_text().replace("/opt/lptem/bin/lptem", str(LPTEM)))
    if name != unit.name:  # an instance of a template: a link named after it
        (tmp_path / name).symlink_to(installed)
    return tmp_path / name


@pytest.mark.parametrize(("unit", "name"), [(UNIT, "lptem.service"), (TEMPLATE, "lptem@tem-1.service")])
def test_systemd_analyze_verifies_the_unit_without_warnings(tmp_path: Path, unit: Path, name: str) -> None:
    verified = run(tool("systemd-analyze"), "verify", installed_unit(tmp_path, unit, name))
    assert verified.returncode == 0, verified.stderr
    assert verified.stderr == "", verified.stderr  # unknown or misspelt settings are warnings only


def test_a_misspelt_setting_would_be_caught(tmp_path: Path) -> None:
    unit = installed_unit(tmp_path)
    unit.write_text(unit.read_text().replace("ProtectSystem=strict", "ProtectSystem=strickt"))
    assert "Failed to parse protect system value" in run(tool("systemd-analyze"), "verify", unit).stderr


def test_the_hardening_rates_ok(tmp_path: Path) -> None:
    rated = run(
        tool("systemd-analyze"), "security", "--offline=yes", "--threshold=20", installed_unit(tmp_path)
    )
    assert rated.returncode == 0, rated.stdout[-2000:]
    assert "Overall exposure level for lptem.service: 1." in rated.stdout


@pytest.mark.parametrize("unit", [UNIT, TEMPLATE])
def test_the_unit_is_a_notify_service_with_a_watchdog_and_its_config_is_valid(unit: Path) -> None:
    text = unit.read_text().replace("/%i", "")
    for setting in ("Type=notify", "WatchdogSec=", "NoNewPrivileges=yes", "ProtectSystem=strict",
                    "ReadWritePaths=/var/lib/lptem", "User=lptem", "Restart=on-failure"):  # fmt: skip
        assert setting in text, setting
    checked = run(LPTEM, "config", "check", DEPLOY / "systemd" / "lptem.toml")
    assert checked.returncode == 0, checked.stderr
