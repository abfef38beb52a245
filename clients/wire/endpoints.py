"""The command-line option naming a running daemon's result socket, shared by the commands that read it."""

from __future__ import annotations

import argparse

from lptem.service.daemon import DEFAULT_PUBLISH


def add_publish_argument(parser: argparse._ActionsContainer) -> None:
    """``--publish ENDPOINT`` on ``parser`` or an argument group of it."""
    parser.add_argument(
        "--publish",
        default=DEFAULT_PUBLISH,
        metavar="ENDPOINT",
        help="the daemon's results (default %(default)s)",
    )
