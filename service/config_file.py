"""One TOML file for a command's flags: every flag a key, ``LPTEM_<KEY>`` variables over it, flags over both.

The keys are the flags' names with ``_`` for ``-`` (``--metrics-port`` → ``metrics_port``); repeatable
``-E KEY=VALUE`` options go in an ``[engine_options]`` table (or ``LPTEM_ENGINE_OPTIONS="k=v,k=v"``).
Relative paths in a file are relative to the file's folder. Every refusal names the file, the key and its
line (or the variable), and comes before anything is started.
"""

from __future__ import annotations

import argparse
import difflib
import math
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

ENV_PREFIX = "LPTEM_"
CONFIG_ENV = "LPTEM_CONFIG"
ENGINE_TABLE = "engine_options"
"""The table (and variable) of the repeatable ``-E KEY=VALUE`` options."""
_ENGINE_FLAG_DEST = "engine_opt"
_NOT_SETTINGS = {"help", "config", "list_engines", "version"}
OTHER_COMMANDS_ENV = frozenset({"LPTEM_KEY", "LPTEM_SERVER_KEY", "LPTEM_CACHE", CONFIG_ENV})
"""Variables other commands read: not settings of this one, and not typos."""
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


class ConfigError(ValueError):
    """A file, variable or flag that cannot be used; the message names where it came from."""


@dataclass(frozen=True, slots=True)
class Source:
    """Where a value came from."""

    kind: Literal["default", "file", "env", "flag"]
    where: str = ""
    """``FILE line N``, the variable's name or the flag."""

    def __str__(self) -> str:
        return self.kind if not self.where else f"{self.kind} {self.where}"


@dataclass(slots=True)
class Resolved:
    """A command's namespace after file < env < flags, and each setting's source."""

    namespace: argparse.Namespace
    sources: dict[str, Source] = field(default_factory=dict)
    """Key (``engine_options.NAME`` for engine options) -> where its value came from."""
    file: Path | None = None


def settings_of(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Key -> the flag's action, for every flag that takes a setting (not --help, --config, ...)."""
    return {
        a.dest: a
        for a in parser._actions
        if a.option_strings and a.dest not in _NOT_SETTINGS and a.dest != _ENGINE_FLAG_DEST
    }


def resolve(
    build: Callable[[], argparse.ArgumentParser],
    argv: Sequence[str],
    environ: Mapping[str, str],
    *,
    config_file: Path | None = None,
) -> Resolved:
    """Parse ``argv`` with the parser ``build()`` makes, defaults < ``config_file`` < ``environ`` < flags."""
    parser = build()
    actions = settings_of(parser)
    given = explicit_flags(build(), argv)
    file = given.__dict__.get("config", config_file)
    if file is None and environ.get(CONFIG_ENV):
        file = Path(environ[CONFIG_ENV])
    layers: list[dict[str, tuple[Any, Source]]] = []
    if file is not None:
        layers.append(read_file(Path(file), actions, exclusive_keys(parser)))
    layers.append(read_env(environ, actions))
    layers.append({k: (v, Source("flag", _flag(actions, k))) for k, v in vars(given).items() if k in actions})
    namespace = parser.parse_args(argv)
    resolved = Resolved(namespace, {k: Source("default") for k in actions}, Path(file) if file else None)
    for layer in layers:
        for key, (value, source) in layer.items():
            if key.startswith(ENGINE_TABLE + "."):
                continue
            setattr(namespace, key, value)
            resolved.sources[key] = source
    engine = _merge_engine_options(layers, list(getattr(given, _ENGINE_FLAG_DEST, [])))
    if hasattr(namespace, _ENGINE_FLAG_DEST):
        namespace.engine_opt = [f"{k}={v}" for k, (v, _) in engine.items()]
        resolved.sources.update({f"{ENGINE_TABLE}.{k}": s for k, (_, s) in engine.items()})
    return resolved


def explicit_flags(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """Only the flags ``argv`` gives (every default suppressed)."""
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    return parser.parse_args(argv)


def read_file(
    path: Path, actions: Mapping[str, argparse.Action], exclusive: Sequence[Sequence[str]] = ()
) -> dict[str, tuple[Any, Source]]:
    """The settings in TOML file ``path``, converted and checked against ``actions``; no two keys of one
    ``exclusive`` group."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc}") from exc
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    lines = key_lines(text)
    out: dict[str, tuple[Any, Source]] = {}
    for key, value in table.items():
        where = f"{path} line {lines.get(key, '?')}"
        if key == ENGINE_TABLE:
            out.update(_engine_table(path, value, lines))
            continue
        action = actions.get(key)
        if action is None:
            raise ConfigError(f"{where}: unknown key {key!r}{_suggestion(key, actions)}")
        try:
            converted = from_toml(action, value, base=path.parent)
        except (ValueError, TypeError, argparse.ArgumentTypeError) as exc:
            raise ConfigError(f"{where}: {key}: {exc}") from exc
        out[key] = (converted, Source("file", where))
    _refuse_conflicts(path, out, exclusive)
    return out


def read_env(
    environ: Mapping[str, str], actions: Mapping[str, argparse.Action]
) -> dict[str, tuple[Any, Source]]:
    """The ``LPTEM_<KEY>`` variables in ``environ``; an unknown ``LPTEM_`` variable is refused (a typo)."""
    out: dict[str, tuple[Any, Source]] = {}
    for name, text in environ.items():
        if not name.startswith(ENV_PREFIX) or name in OTHER_COMMANDS_ENV:
            continue
        key = name[len(ENV_PREFIX) :].lower()
        if key == ENGINE_TABLE:
            for option, value in _engine_pairs(text, name):
                out[f"{ENGINE_TABLE}.{option}"] = (value, Source("env", name))
            continue
        action = actions.get(key)
        if action is None:
            raise ConfigError(f"environment variable {name}: no such setting{_suggestion(key, actions)}")
        try:
            out[key] = (from_text(action, text), Source("env", name))
        except (ValueError, TypeError, argparse.ArgumentTypeError) as exc:
            raise ConfigError(f"environment variable {name}: {exc}") from exc
    return out


def from_toml(action: argparse.Action, value: Any, *, base: Path) -> Any:
    """A TOML value for ``action``'s flag, converted as the flag would be (paths relative to ``base``)."""
    if _is_switch(action):
        if not isinstance(value, bool):
            raise TypeError(f"must be true or false, got {_toml_type(value)} {value!r}")
        return value
    kind = action.type
    wrong = TypeError(f"must be {_expected(action)}, got {_toml_type(value)} {value!r}")
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise wrong
    if kind is int:
        if not isinstance(value, int):
            raise wrong
        return _checked(action, value)
    if kind is float:
        if isinstance(value, str):
            raise wrong
        return _checked(action, float(value))
    if not isinstance(value, str):  # text, paths and endpoints are strings in the file
        raise wrong
    if kind is Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else base / path
    return _checked(action, kind(value) if callable(kind) else value)


def from_text(action: argparse.Action, text: str) -> Any:
    """A variable's text for ``action``'s flag, converted as the flag would be."""
    if _is_switch(action):
        lowered = text.strip().lower()
        if lowered not in _TRUE + _FALSE:
            raise ValueError(f"must be true or false, got {text!r}")
        return lowered in _TRUE
    kind = action.type
    try:
        value = kind(text) if callable(kind) else text
    except ValueError as exc:
        raise ValueError(f"must be {_expected(action)}, got {text!r}") from exc
    return _checked(action, value)


def key_lines(text: str) -> dict[str, int]:
    """``key`` and ``table.key`` -> the line (from 1) that sets it; a table -> its header's line."""
    lines: dict[str, int] = {}
    table = ""
    header = re.compile(r"^\s*\[\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]")
    assignment = re.compile(r"^\s*(\"[^\"]*\"|'[^']*'|[A-Za-z0-9_\-]+)\s*=")
    for number, line in enumerate(text.splitlines(), start=1):
        if match := header.match(line):
            table = match.group(1).strip("\"'")
            lines.setdefault(table, number)
        elif match := assignment.match(line):
            key = match.group(1).strip("\"'")
            lines.setdefault(f"{table}.{key}" if table else key, number)
    return lines


def _engine_table(path: Path, value: Any, lines: Mapping[str, int]) -> dict[str, tuple[Any, Source]]:
    if not isinstance(value, dict):
        where = f"{path} line {lines.get(ENGINE_TABLE, '?')}"
        raise ConfigError(f"{where}: {ENGINE_TABLE} must be a table of NAME = value")
    out: dict[str, tuple[Any, Source]] = {}
    for option, item in value.items():
        line = lines.get(f"{ENGINE_TABLE}.{option}", lines.get(ENGINE_TABLE, "?"))
        where = f"{path} line {line}"
        if isinstance(item, bool):
            text = "true" if item else "false"
        elif isinstance(item, (int, float, str)):
            text = str(item)
        else:
            raise ConfigError(f"{where}: {ENGINE_TABLE}.{option}: must be a number, text or true/false")
        out[f"{ENGINE_TABLE}.{option}"] = (text, Source("file", where))
    return out


def _engine_pairs(text: str, name: str) -> list[tuple[str, str]]:
    pairs = []
    for item in filter(None, (p.strip() for p in re.split(r"[,\s]+", text))):
        option, sep, value = item.partition("=")
        if not sep or not option:
            raise ConfigError(f"environment variable {name}: expected KEY=VALUE[,KEY=VALUE], got {item!r}")
        pairs.append((option, value))
    return pairs


def _merge_engine_options(
    layers: list[dict[str, tuple[Any, Source]]], flags: list[str]
) -> dict[str, tuple[str, Source]]:
    merged: dict[str, tuple[str, Source]] = {}
    for layer in layers[:-1]:  # the file and the environment; the flags' layer has no engine options
        for key, (value, source) in layer.items():
            if key.startswith(ENGINE_TABLE + "."):
                merged[key[len(ENGINE_TABLE) + 1 :]] = (value, source)
    for pair in flags:
        option, _, value = pair.partition("=")
        merged[option.strip()] = (value.strip(), Source("flag", f"-E {pair}"))
    return merged


def _refuse_conflicts(
    path: Path, values: Mapping[str, tuple[Any, Source]], exclusive: Sequence[Sequence[str]]
) -> None:
    for group in exclusive:
        present = [k for k in group if k in values]
        if len(present) > 1:
            where = ", ".join(f"{k} ({values[k][1].where})" for k in present)
            raise ConfigError(f"{path}: {' and '.join(present)} cannot both be set: {where}")


def exclusive_keys(parser: argparse.ArgumentParser) -> list[list[str]]:
    """The keys of each of the parser's mutually exclusive groups."""
    return [[a.dest for a in group._group_actions] for group in parser._mutually_exclusive_groups]


def _checked(action: argparse.Action, value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"must be a finite number, got {value!r}")
    if action.choices is not None and value not in action.choices:
        raise ValueError(f"must be one of {sorted(map(str, action.choices))}, got {value!r}")
    return value


def _is_switch(action: argparse.Action) -> bool:
    return action.nargs == 0 or isinstance(action, argparse.BooleanOptionalAction)


def _expected(action: argparse.Action) -> str:
    if action.choices is not None:
        return f"one of {sorted(map(str, action.choices))}"
    names: dict[Any, str] = {int: "an integer", float: "a number", Path: "a path"}
    return names.get(action.type, "text")


def _toml_type(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "float", str: "string", list: "array", dict: "table"}.get(
        type(value), type(value).__name__
    )


def _flag(actions: Mapping[str, argparse.Action], key: str) -> str:
    return max(actions[key].option_strings, key=len)


def _suggestion(key: str, actions: Mapping[str, argparse.Action]) -> str:
    close = difflib.get_close_matches(key, [*actions, ENGINE_TABLE], n=1)
    return f" (did you mean {close[0]!r}?)" if close else f"; known keys: {', '.join(sorted(actions))}"


def with_sources(message: str, resolved: Resolved | None) -> str:
    """``message`` plus where the settings it names (``--flag``, key or engine option) came from, when a
    file or variable set them."""
    if resolved is None:
        return message
    notes = []
    for key, source in resolved.sources.items():
        name = key.rpartition(".")[2]  # engine_options.NAME: messages name the option
        if source.kind in ("file", "env") and re.search(
            rf"(?<![\w-])(--{name.replace('_', '-')}|{name})(?![\w-])", message
        ):
            notes.append(f"{key} from {source}")
    return message + (f" [{'; '.join(notes)}]" if notes else "")
