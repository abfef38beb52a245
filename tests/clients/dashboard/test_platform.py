"""The dashboard's choice of Qt platform, and the packages it names when an X display cannot be opened."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lptem.clients.dashboard.platform import (
    debian_package,
    forced_platform,
    missing_xcb_libraries,
    not_found,
    uses_xcb,
)


def test_a_screenshot_uses_the_real_display_when_there_is_one():
    assert forced_platform({"DISPLAY": ":0"}, screenshot=True) is None
    assert forced_platform({"WAYLAND_DISPLAY": "wayland-0"}, screenshot=True) is None
    assert forced_platform({}, screenshot=True) == "offscreen"
    assert forced_platform({}, screenshot=False) is None  # Qt says itself that there is no display
    assert forced_platform({"QT_QPA_PLATFORM": "xcb"}, screenshot=True) is None  # the user's choice


def test_xcb_is_used_only_where_qt_would_use_it():
    assert uses_xcb({"DISPLAY": ":0"})
    assert uses_xcb({"QT_QPA_PLATFORM": "xcb:nomitshm"})
    assert not uses_xcb({"DISPLAY": ":0", "QT_QPA_PLATFORM": "offscreen"})
    assert not uses_xcb({"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0"})
    assert not uses_xcb({})


def test_sonames_become_debian_package_names():
    assert debian_package("libxcb-icccm.so.4") == "libxcb-icccm4"
    assert debian_package("libxcb-keysyms.so.1") == "libxcb-keysyms1"
    assert debian_package("libxkbcommon-x11.so.0") == "libxkbcommon-x11-0"
    output = "\tlibxcb.so.1 => /lib/libxcb.so.1 (0x1)\n\tlibxcb-icccm.so.4 => not found\n"
    assert not_found(output) == ["libxcb-icccm.so.4"]


def test_the_dashboard_names_the_packages_a_real_display_needs(tmp_path):
    """Where Qt's xcb plugin lacks libraries (minimal Debian), the command says which to install."""
    from PySide6 import QtCore  # noqa: PLC0415

    plugins = Path(QtCore.QLibraryInfo.path(QtCore.QLibraryInfo.LibraryPath.PluginsPath))
    missing = missing_xcb_libraries(plugins)
    if not missing:
        pytest.skip("this machine has every library Qt's xcb plugin links")
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"} | {"DISPLAY": ":99"}
    lptem = str(Path(sys.executable).with_name("lptem"))
    result = subprocess.run([lptem, "dashboard"], capture_output=True, text=True, env=env, timeout=60,
                            check=False, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2
    assert "sudo apt-get install " + " ".join(debian_package(s) for s in missing) in result.stderr
