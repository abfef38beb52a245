"""``lptem config``: the effective settings of ``lptem serve`` with their sources, and file checks."""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path
from typing import Any

from lptem.engine.registry import check_options
from lptem.service.cli import (
    SETTINGS_ERRORS,
    config_from_args,
    resolve_serve,
    serve_parser,
)
from lptem.service.config_file import ENGINE_TABLE, Resolved, settings_of, with_sources
from lptem.service.daemon import check_exposure
from lptem.service.serve_options import add_serve_arguments

log = logging.getLogger("lptem.config")


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = sub.add_parser(
        "show",
        help="print the settings lptem serve would run with (TOML), each with its source",
        description="Takes the same flags as lptem serve (and --config FILE); prints valid TOML, so "
        "`lptem config show > lptem.toml` starts a config file.",
    )
    add_serve_arguments(show)
    check = sub.add_parser(
        "check", help="validate a config file (with the LPTEM_* variables) without starting anything"
    )
    check.add_argument("file", type=Path, metavar="FILE", help="the TOML file")


def run_config(args: argparse.Namespace) -> int:
    argv: list[str] = list(getattr(args, "command_argv", []))
    resolved: Resolved | None = None
    try:
        if args.action == "show":
            resolved = resolve_serve(argv[1:], os.environ)
            print(render(resolved))
            return 0
        resolved = resolve_serve(["--config", str(args.file)], os.environ)
        validate(resolved)
    except SETTINGS_ERRORS as exc:
        log.error("%s", with_sources(str(exc), resolved))
        return 2
    from_file = sum(1 for s in resolved.sources.values() if s.kind == "file")
    from_env = sum(1 for s in resolved.sources.values() if s.kind == "env")
    print(f"{args.file}: valid ({from_file} settings from the file, {from_env} from LPTEM_* variables)")
    return 0


def validate(resolved: Resolved) -> None:
    """Everything lptem serve checks before it binds: option combinations, engine options, exposure."""
    config = config_from_args(resolved.namespace)
    check_options(config.engine, config.engine_options)
    check_exposure(config)


def render(resolved: Resolved) -> str:
    """The settings as TOML, each line commented with its source; unset ones commented out."""
    namespace = resolved.namespace
    lines = [f"# lptem serve settings{f' (config file {resolved.file})' if resolved.file else ''}"]
    width = 44
    for key in settings_of(serve_parser()):
        value, source = getattr(namespace, key), resolved.sources.get(key)
        text = f"{key} = {toml_value(value)}" if value is not None else f"# {key} =   (not set)"
        lines.append(f"{text:<{width}} # {source}")
    lines.append(f"\n[{ENGINE_TABLE}]")
    for pair in namespace.engine_opt:
        option, _, value = pair.partition("=")
        text = f"{option} = {toml_value(value)}"
        lines.append(f"{text:<{width}} # {resolved.sources.get(f'{ENGINE_TABLE}.{option}')}")
    return "\n".join(lines)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False)  # a TOML basic string
