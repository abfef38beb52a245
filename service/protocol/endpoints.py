"""The daemon's default endpoints, and the check that an endpoint is one ZeroMQ understands.

A leaf module (no third-party import): commands that only talk to a daemon read their defaults here
without loading the daemon.
"""

from __future__ import annotations

import argparse
import re

DEFAULT_INGEST = "tcp://127.0.0.1:5555"
DEFAULT_PUBLISH = "tcp://127.0.0.1:5556"
DEFAULT_CONTROL = "tcp://127.0.0.1:5557"
DEFAULT_PREVIEW = "tcp://127.0.0.1:5558"
"""The preview topic's own PUB socket (large messages, kept apart from the results)."""

_TCP = re.compile(r"^tcp://(?P<host>\*|\[[0-9A-Fa-f:.]+\]|[^\s:/\[\];]+):(?P<port>\*|\d{1,5})$")
_OTHER = re.compile(r"^(ipc|inproc)://\S+$")


class EndpointError(argparse.ArgumentTypeError, ValueError):
    """Text that is not a ZeroMQ endpoint; the message says what one looks like (argparse prints it as
    one line when :func:`check_endpoint` is an option's ``type``)."""


def check_endpoint(text: str) -> str:
    """Return ``text`` if it is a ``tcp://HOST:PORT``, ``ipc://PATH`` or ``inproc://NAME`` endpoint."""
    match = _TCP.match(text)
    if match is not None:
        port = match.group("port")
        if port == "*" or 1 <= int(port) <= 65535:
            return text
        raise EndpointError(f"{text!r}: port {port} is outside 1..65535")
    if _OTHER.match(text):
        return text
    hint = f" (did you mean tcp://{text}?)" if re.match(r"^[^\s:/]+:\d{1,5}$", text) else ""
    raise EndpointError(
        f"{text!r} is not a ZeroMQ endpoint: write tcp://HOST:PORT, ipc://PATH or inproc://NAME{hint}"
    )
