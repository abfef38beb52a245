"""``lptem dashboard``: command-line entry of the live dashboard."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

import zmq

from lptem.clients.dashboard.platform import debian_package, forced_platform, missing_xcb_libraries, uses_xcb
from lptem.clients.wire.endpoints import (
    add_control_argument,
    add_key_arguments,
    add_preview_argument,
    add_publish_argument,
    keys_from,
    preview_from,
)

log = logging.getLogger("lptem.dashboard")


def add_dashboard_arguments(parser: argparse.ArgumentParser) -> None:
    add_publish_argument(parser)
    add_preview_argument(parser)
    add_control_argument(parser, "for prompts by mouse")
    add_key_arguments(parser)
    parser.add_argument(
        "--refresh-hz", type=float, default=15.0, help="redraws per second (default %(default)s)"
    )
    parser.add_argument(
        "--trail-frames",
        type=int,
        default=100,
        help="length of the centroid trails, frames (default %(default)s)",
    )
    shot = parser.add_argument_group("headless use")
    shot.add_argument(
        "--screenshot",
        type=Path,
        metavar="PNG",
        help="save the window to PNG after --after seconds, then exit",
    )
    shot.add_argument(
        "--after",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds before the screenshot (default %(default)s)",
    )


def run_dashboard(args: argparse.Namespace) -> int:
    if args.refresh_hz <= 0 or args.trail_frames < 1:
        log.error("--refresh-hz must be > 0 and --trail-frames >= 1")
        return 2
    platform = forced_platform(os.environ, screenshot=args.screenshot is not None)
    if platform is not None:
        os.environ["QT_QPA_PLATFORM"] = platform
    from PySide6 import QtCore, QtWidgets  # noqa: PLC0415 - Qt only for this command

    if uses_xcb(os.environ):
        plugins = Path(QtCore.QLibraryInfo.path(QtCore.QLibraryInfo.LibraryPath.PluginsPath))
        missing = missing_xcb_libraries(plugins)
        if missing:
            packages = " ".join(debian_package(soname) for soname in missing)
            log.error(
                "Qt cannot open the X display: %s not installed. On Debian/Ubuntu: sudo apt-get install %s "
                "(docs/install.md)",
                ", ".join(missing),
                packages,
            )
            return 2
    from lptem.clients.dashboard.window import DashboardWindow  # noqa: PLC0415

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    try:
        window = DashboardWindow(
            args.publish,
            args.control,
            args.refresh_hz,
            args.trail_frames,
            keys=keys_from(args),
            preview=preview_from(args),
        )
    except zmq.ZMQError as exc:
        log.error("cannot connect to %s / %s: %s", args.publish, args.control, exc)
        return 2
    window.show()
    signal.signal(signal.SIGINT, lambda *_: window.close())  # Ctrl-C in the terminal closes the window
    wake = QtCore.QTimer()  # lets the Python signal handler run while Qt waits for events
    wake.timeout.connect(lambda: None)
    wake.start(200)
    if args.screenshot is not None:

        def save_and_quit() -> None:
            window.refresh()
            ok = window.grab().save(str(args.screenshot))
            print(f"screenshot {'saved to' if ok else 'could not be written to'} {args.screenshot}")
            window.close()
            app.quit()

        QtCore.QTimer.singleShot(int(args.after * 1000), save_and_quit)
    app.exec()
    return 0
