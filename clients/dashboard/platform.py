"""Choosing Qt's platform for the dashboard, and naming the system libraries a real X display needs.

Qt's xcb plugin (PySide6 wheels) links libraries that minimal Debian/Ubuntu installs lack; Qt's own
message then names another library. The dashboard asks ``ldd`` which ones are missing and names the
packages instead (docs/install.md).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path


def forced_platform(env: Mapping[str, str], screenshot: bool) -> str | None:
    """The platform to set: ``offscreen`` for a screenshot where there is no display, else None
    (Qt's own choice; a ``QT_QPA_PLATFORM`` the user set always stands)."""
    if env.get("QT_QPA_PLATFORM"):
        return None
    has_display = bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))
    return "offscreen" if screenshot and not has_display else None


def uses_xcb(env: Mapping[str, str]) -> bool:
    """Whether Qt will open an X display: ``QT_QPA_PLATFORM=xcb``, or unset with DISPLAY and no Wayland."""
    platform = env.get("QT_QPA_PLATFORM", "").split(":")[0]
    if platform:
        return platform == "xcb"
    return bool(env.get("DISPLAY")) and not env.get("WAYLAND_DISPLAY")


def not_found(ldd_output: str) -> list[str]:
    """The sonames ``ldd`` reports as ``=> not found``."""
    return sorted({line.split()[0] for line in ldd_output.splitlines() if "=> not found" in line})


def debian_package(soname: str) -> str:
    """Debian's package of a shared library, by its naming policy: libxcb-icccm.so.4 -> libxcb-icccm4,
    libxkbcommon-x11.so.0 -> libxkbcommon-x11-0 (a hyphen when the name ends in a digit)."""
    name, _, version = soname.partition(".so.")
    return f"{name}{'-' if name[-1:].isdigit() else ''}{version}"


def missing_xcb_libraries(plugins: Path) -> list[str]:
    """Sonames Qt's xcb platform plugin under ``plugins`` needs and cannot find ([] if unknowable)."""
    plugin = plugins / "platforms" / "libqxcb.so"
    ldd = shutil.which("ldd")
    if ldd is None or not plugin.exists():
        return []
    result = subprocess.run([ldd, str(plugin)], capture_output=True, text=True, timeout=30, check=False)
    return not_found(result.stdout)
