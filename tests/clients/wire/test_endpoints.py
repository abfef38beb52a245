"""The shared command-line options for a daemon's sockets and keys."""

from __future__ import annotations

import argparse

import pytest

from lptem.clients.wire.endpoints import add_preview_argument, add_publish_argument, preview_from


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], "tcp://127.0.0.1:5558"),  # the daemon's defaults: results 5556, previews 5558
        (["--publish", "tcp://scope-pc:6000"], "tcp://scope-pc:6002"),  # the same daemon, not a local one
        (["--publish", "tcp://[::1]:5556"], "tcp://[::1]:5558"),
        (["--publish", "ipc:///run/lptem/results"], None),  # no port to count from: no previews
        (["--publish", "tcp://scope-pc:6000", "--preview", "tcp://other:7000"], "tcp://other:7000"),
        (["--preview", "none"], None),
    ],
)
def test_previews_are_looked_for_next_to_the_results(argv, expected):
    parser = argparse.ArgumentParser()
    add_publish_argument(parser)
    add_preview_argument(parser)
    assert preview_from(parser.parse_args(argv)) == expected
