"""The command-line options naming a daemon's sockets, shared by every command that talks to one.

Each checks its value (:func:`check_endpoint`), so a typo gives one line (``argument --control:
'127.0.0.1:5557' is not a ZeroMQ endpoint: ... (did you mean tcp://127.0.0.1:5557?)``) and exit
status 2, not a ZeroMQ traceback.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lptem.service.protocol.curve import KEY_ENV, SERVER_KEY_ENV, ClientKeys, client_keys, is_loopback
from lptem.service.protocol.endpoints import (
    DEFAULT_CONTROL,
    DEFAULT_INGEST,
    DEFAULT_PREVIEW,
    DEFAULT_PUBLISH,
    check_endpoint,
)


def add_publish_argument(parser: argparse._ActionsContainer) -> None:
    """``--publish ENDPOINT``: the daemon's results (PUB socket)."""
    parser.add_argument(
        "--publish",
        default=DEFAULT_PUBLISH,
        type=check_endpoint,
        metavar="ENDPOINT",
        help="the daemon's results (default %(default)s)",
    )


def add_preview_argument(parser: argparse._ActionsContainer) -> None:
    """``--preview ENDPOINT``: the daemon's preview socket (PUB: downsampled frames and masks)."""
    parser.add_argument(
        "--preview",
        type=lambda text: text if text == "none" else check_endpoint(text),
        metavar="ENDPOINT",
        help="the daemon's previews: frames and masks; 'none' = without them (default: the --publish host, "
        f"port + 2, as the daemon's defaults: {DEFAULT_PREVIEW})",
    )


def preview_from(args: argparse.Namespace) -> str | None:
    """``--preview``, or next to ``--publish`` (same host, port + 2) when not given; None for 'none' or
    a --publish that is not tcp:// with a port number."""
    if args.preview is not None:
        return None if args.preview == "none" else str(args.preview)
    host, _, port = str(args.publish).rpartition(":")
    return f"{host}:{int(port) + 2}" if host.startswith("tcp://") and port.isdigit() else None


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


def add_shm_argument(parser: argparse._ActionsContainer) -> None:
    """``--shm SLOTS``: pixels through a shared-memory ring (a daemon on this host)."""
    parser.add_argument(
        "--shm",
        type=int,
        default=0,
        metavar="SLOTS",
        help="daemon on this host: pixels go through a shared-memory ring of SLOTS slots (e.g. 8), only "
        "headers over ZeroMQ (docs/protocol.md §2.3); default: pixels over the socket",
    )


def shm_slots_from(args: argparse.Namespace) -> int:
    """``--shm`` checked: 0 (off) or 2..256 slots, with a daemon on this host."""
    if args.shm == 0:
        return 0
    if not 2 <= args.shm <= 256:
        raise ValueError(f"--shm takes 2 to 256 slots, got {args.shm}")
    if not is_loopback(args.ingest):
        raise ValueError(f"--shm is for a daemon on this host; --ingest {args.ingest} is not local")
    return int(args.shm)


def add_wait_argument(parser: argparse._ActionsContainer) -> None:
    """``--wait S``: how long a sender waits for a daemon to take frames before it gives up."""
    parser.add_argument(
        "--wait",
        type=float,
        default=5.0,
        metavar="S",
        help="give up (exit status 1) when no daemon takes frames within S seconds (default %(default)s)",
    )


def add_key_arguments(parser: argparse._ActionsContainer) -> None:
    """``--key FILE --server-key FILE``: CURVE for a daemon started with ``--keys`` (docs/security.md)."""
    group = parser.add_argument_group("CURVE (a daemon started with --keys; docs/security.md)")
    group.add_argument(
        "--key",
        type=Path,
        metavar="FILE",
        help=f"this client's secret key file, NAME.key_secret from lptem keys add (default ${KEY_ENV})",
    )
    group.add_argument(
        "--server-key",
        type=Path,
        metavar="FILE",
        help=f"the daemon's public key, server.key from its key folder (default ${SERVER_KEY_ENV})",
    )


def keys_from(args: argparse.Namespace) -> ClientKeys | None:
    """The keys ``--key`` / ``--server-key`` (or their environment variables) name; None for neither.
    Raises KeyFileError for half a pair or a bad file."""
    return client_keys(getattr(args, "key", None), getattr(args, "server_key", None))
