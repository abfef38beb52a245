"""Versions of lptem-live and the packages that shape its results, for status messages and records.

A leaf module (standard library only): clients read it without loading the daemon.
"""

from __future__ import annotations

import functools
import platform
from importlib import metadata

DISTRIBUTION = "lptem-live"
_REPORTED = (DISTRIBUTION, "numpy", "pyzmq", "opencv-python-headless", "torch", "sam2")


def package_version() -> str:
    """lptem-live's installed version, or ``"unknown"`` when run from a tree that was never installed."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown"


@functools.cache
def versions() -> dict[str, str]:
    """Python, the platform and the installed versions of lptem-live and the packages it computes with."""
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for dist in _REPORTED:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out
