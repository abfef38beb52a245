"""What a newcomer meets first: help pages with examples and defaults, one-line errors for mistakes,
clear words when an extra is missing or no daemon listens, and a working folder that cannot shadow us."""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from lptem.clients.cli import SUBCOMMANDS, build_parser
from lptem.clients.examples import EXAMPLES
from tests.conftest import free_port

pytestmark = pytest.mark.e2e
LPTEM = str(Path(sys.executable).with_name("lptem"))


def lptem(*args: str, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LPTEM, *args], capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd
    )


def parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ("lptem",)):
    """Every parser of the command line with its path (lptem, lptem serve, lptem control centre, ...)."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from parsers(sub, (*path, name))


def test_every_help_page_ends_with_examples():
    for path, parser in parsers(build_parser()):
        text = parser.format_help()
        assert "\nexamples:\n  lptem" in text, " ".join(path)
        assert text.rstrip().splitlines()[-1].strip().startswith(("lptem", "#")), " ".join(path)


def test_every_example_is_a_command_line_the_parser_accepts():
    parser = build_parser()
    assert set(EXAMPLES) == set(SUBCOMMANDS)
    for command, rows in EXAMPLES.items():
        for line, _why in rows:
            words = shlex.split(line)
            assert words[:2] == ["lptem", command]
            args = parser.parse_args(words[1:])
            assert args.command == command


def test_every_option_with_a_default_shows_it():
    for path, parser in parsers(build_parser()):
        for action in parser._actions:
            if not action.option_strings or isinstance(action.default, list):
                continue
            if action.default in (None, False, argparse.SUPPRESS) or action.help == argparse.SUPPRESS:
                continue
            where = (" ".join(path), action.option_strings)
            assert action.help is not None, where
            assert "default" in action.help, where


def test_an_endpoint_without_a_scheme_is_one_clear_line():
    result = lptem("status", "--control", "127.0.0.1:5557")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "argument --control: '127.0.0.1:5557' is not a ZeroMQ endpoint" in result.stderr
    assert "did you mean tcp://127.0.0.1:5557?" in result.stderr
    serve = lptem("serve", "--ingest", "tcp://127.0.0.1:99999")
    assert serve.returncode == 2
    assert "port 99999 is outside 1..65535" in serve.stderr


@pytest.mark.parametrize("command", ["replay", "sim"])
def test_a_sender_with_no_daemon_there_says_so_and_fails(command, tmp_path):
    nowhere = f"tcp://127.0.0.1:{free_port()}"
    args: tuple[str, ...]
    if command == "replay":
        movie = tmp_path / "movie.npy"
        np.save(movie, np.zeros((3, 16, 16), np.uint8))
        args = ("replay", str(movie), "--ingest", nowhere, "--control", nowhere)
    else:
        args = ("sim", "--ingest", nowhere, "--microscope", "none", "--frames", "3", "--particles", "1")
    result = lptem(*args, "--wait", "0.5", "--no-progress")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"no daemon takes frames at {nowhere} (waited 0.5 s)" in result.stderr
    assert "sent" not in result.stdout
    assert "Traceback" not in result.stderr


BLOCK_IMPORTS = textwrap.dedent(
    """
    import importlib.abc, sys
    class Absent(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {blocked!r}:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None
    sys.meta_path.insert(0, Absent())
    from lptem.clients.cli import main
    sys.exit(main({argv!r}))
    """
)


@pytest.mark.parametrize(
    ("blocked", "argv", "extra"),
    [
        ({"PySide6"}, ["dashboard", "--screenshot", "x.png"], "gui"),
        ({"torch"}, ["serve", "--engine", "sam2", "--random-weights", "--ingest", "tcp://127.0.0.1:*",
                     "--publish", "tcp://127.0.0.1:*", "--control", "tcp://127.0.0.1:*"], "sam2"),
    ],
)  # fmt: skip
def test_a_missing_extra_names_what_to_install(blocked, argv, extra, tmp_path):
    """The optional package is made absent for the import system of a fresh interpreter."""
    code = BLOCK_IMPORTS.format(blocked=blocked, argv=argv)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path
    )
    assert result.returncode == 2, result.stderr
    assert f"pip install 'lptem-live[{extra}]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_working_folder_with_engine_py_cannot_shadow_the_package(tmp_path):
    for name in ("engine", "service", "clients"):
        (tmp_path / f"{name}.py").write_text("raise SystemExit('the user file was imported')\n")
    top = lptem("--help", cwd=tmp_path)
    assert top.returncode == 0, top.stderr
    assert "demo" in top.stdout
    demo = lptem("demo", "--help", cwd=tmp_path)
    assert demo.returncode == 0, demo.stderr
    assert "usage: lptem demo" in demo.stdout
