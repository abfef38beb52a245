"""The command-line options naming a daemon's sockets, shared by every command that talks to one.

Each checks its value (:func:`check_endpoint`), so a typo gives one line (``argument --control:
'127.0.0.1:5557' is not a ZeroMQ endpoint: ... (did you mean tcp://127.0.0.1:5557?)``) and exit
status 2, not a ZeroMQ traceback.
"""

from __future__ import annotations

import argparse

from lptem.service.protocol.endpoints import DEFAULT_CONTROL, DEFAULT_INGEST, DEFAULT_PUBLISH, check_endpoint


def add_publish_argument(parser: argparse._ActionsContainer) -> None:
    """``--publish ENDPOINT``: the daemon's results (PUB socket)."""
    parser.add_argument(
        "--publish",
        default=DEFAULT_PUBLISH,
        type=check_endpoint,
        metavar="ENDPOINT",
        help="the daemon's results (default %(default)s)",
    )


def add_control_argument(parser: argparse._ActionsContainer, purpose: str = "") -> None:
    """``--control ENDPOINT``: the daemon's control socket (REP); ``purpose`` says what it is used for."""
    parser.add_argument(
        "--control",
        default=DEFAULT_CONTROL,
        type=check_endpoint,
        metavar="ENDPOINT",
        help=f"the daemon's control socket{', ' + purpose if purpose else ''} (default %(default)s)",
    )


def add_ingest_argument(parser: argparse._ActionsContainer) -> None:
    """``--ingest ENDPOINT``: where the daemon receives frames (its PULL socket)."""
    parser.add_argument(
        "--ingest",
        default=DEFAULT_INGEST,
        type=check_endpoint,
        metavar="ENDPOINT",
        help="the daemon's frame input (default %(default)s)",
    )


def add_wait_argument(parser: argparse._ActionsContainer) -> None:
    """``--wait S``: how long a sender waits for a daemon to take frames before it gives up."""
    parser.add_argument(
        "--wait",
        type=float,
        default=5.0,
        metavar="S",
        help="give up (exit status 1) when no daemon takes frames within S seconds (default %(default)s)",
    )
