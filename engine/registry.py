"""Engines by name. Modules load lazily (by dotted path) so that naming the SAM 2 engine here does not
import torch for users of the classical engine.
"""

from __future__ import annotations

import dataclasses
import importlib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lptem.engine.api import Tracker


@dataclass(frozen=True, slots=True)
class EngineSpec:
    module: str
    tracker: str
    config: str | None
    summary: str


ENGINES: dict[str, EngineSpec] = {
    "classical": EngineSpec(
        "lptem.engine.classical",
        "ClassicalTracker",
        "ClassicalConfig",
        "weight-free: background flattening, denoising, threshold, components, Hungarian association",
    ),
    "sam2": EngineSpec(
        "lptem.engine.sam2.tracker",
        "Sam2Tracker",
        "Sam2Config",
        "SAM 2 / 2.1 / SAM-EM streaming memory-bank tracker (torch; needs a checkpoint)",
    ),
    "passthrough": EngineSpec(
        "lptem.engine.passthrough",
        "PassThroughTracker",
        None,
        "touches no pixel; reports prompts as given (overhead benchmarks)",
    ),
}


class EngineOptionError(ValueError):
    """An unknown engine, option name or option value."""


def create_tracker(name: str, options: Mapping[str, str] | None = None) -> Tracker:
    """Build the tracker ``name`` with ``options`` (field name -> text, as given on the command line)."""
    spec = ENGINES.get(name)
    if spec is None:
        raise EngineOptionError(f"unknown engine {name!r}; available: {', '.join(ENGINES)}")
    module = importlib.import_module(spec.module)
    tracker_cls = getattr(module, spec.tracker)
    options = dict(options or {})
    if spec.config is None:
        if options:
            raise EngineOptionError(f"engine {name!r} takes no options, got {sorted(options)}")
        tracker: Tracker = tracker_cls()
    else:
        config = parse_config(getattr(module, spec.config), options)
        try:
            tracker = tracker_cls(config)
        except ValueError as exc:  # a bad checkpoint, device or model name: the message says which
            raise EngineOptionError(str(exc)) from exc
    return tracker


def check_options(name: str, options: Mapping[str, str]) -> None:
    """Raise EngineOptionError when ``options`` are not valid for engine ``name`` (builds no tracker,
    loads no model)."""
    spec = ENGINES.get(name)
    if spec is None:
        raise EngineOptionError(f"unknown engine {name!r}; available: {', '.join(ENGINES)}")
    if spec.config is None:
        if options:
            raise EngineOptionError(f"engine {name!r} takes no options, got {sorted(options)}")
        return
    parse_config(getattr(importlib.import_module(spec.module), spec.config), options)


def engine_options(name: str) -> dict[str, tuple[str, Any]]:
    """Option name -> (type, default) of an engine's configuration, for help texts."""
    spec = ENGINES[name]
    if spec.config is None:
        return {}
    config_cls = getattr(importlib.import_module(spec.module), spec.config)
    hints = typing.get_type_hints(config_cls)
    return {f.name: (_type_name(hints[f.name]), f.default) for f in dataclasses.fields(config_cls)}


def parse_config(config_cls: type[Any], options: Mapping[str, str]) -> Any:
    """Instantiate dataclass ``config_cls`` from text values, converting each to its field's type."""
    hints = typing.get_type_hints(config_cls)
    names = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise EngineOptionError(f"unknown option(s) {unknown}; known: {sorted(names)}")
    values = {key: _convert(key, text, hints[key]) for key, text in options.items()}
    try:
        return config_cls(**values)
    except (TypeError, ValueError) as exc:
        raise EngineOptionError(str(exc)) from exc


def _convert(key: str, text: str, hint: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if text.lower() in ("none", "null", "") and type(None) in args:
            return None
        return _convert(key, text, next(a for a in args if a is not type(None)))
    if origin is typing.Literal:
        if text not in args:
            raise EngineOptionError(f"option {key} must be one of {list(args)}, got {text!r}")
        return text
    if hint is bool:
        lowered = text.lower()
        if lowered not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
            raise EngineOptionError(f"option {key} must be true or false, got {text!r}")
        return lowered in ("1", "true", "yes", "on")
    if hint in (int, float, str):
        try:
            return hint(text)
        except ValueError as exc:
            raise EngineOptionError(f"option {key} must be {hint.__name__}, got {text!r}") from exc
    raise EngineOptionError(f"option {key} has a type ({hint}) that cannot be set from text")


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) is typing.Literal:
        return "|".join(map(str, typing.get_args(hint)))
    return getattr(hint, "__name__", str(hint))
