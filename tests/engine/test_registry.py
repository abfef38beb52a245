"""Engines by name, options from text."""

from __future__ import annotations

import pytest

from lptem.engine.classical import ClassicalTracker
from lptem.engine.passthrough import PassThroughTracker
from lptem.engine.registry import EngineOptionError, create_tracker, engine_options


def test_create_with_typed_options():
    tracker = create_tracker(
        "classical",
        {
            "particle_radius_px": "5.5",
            "polarity": "bright",
            "auto_detect": "yes",
            "confirm_frames": "2",
            "max_area_px": "none",
        },
    )
    assert isinstance(tracker, ClassicalTracker)
    c = tracker.config
    assert (c.particle_radius_px, c.polarity, c.auto_detect, c.confirm_frames, c.max_area_px) == (
        5.5,
        "bright",
        True,
        2,
        None,
    )
    assert tracker.auto_detect
    assert isinstance(create_tracker("passthrough"), PassThroughTracker)


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("nope", {}, "unknown engine 'nope'"),
        ("classical", {"radius": "3"}, "unknown option"),
        ("classical", {"particle_radius_px": "big"}, "must be float"),
        ("classical", {"polarity": "grey"}, "must be one of"),
        ("classical", {"auto_detect": "maybe"}, "true or false"),
        ("classical", {"particle_radius_px": "-2"}, "particle_radius_px"),
        ("passthrough", {"x": "1"}, "takes no options"),
    ],
)
def test_bad_options_are_named(name, options, message):
    with pytest.raises(EngineOptionError, match=message):
        create_tracker(name, options)


def test_engine_options_for_help():
    options = engine_options("classical")
    assert options["polarity"] == ("dark|bright", "dark")
    assert options["gate_px"] == ("float | None", None)  # unset: each object's gate from its own motion
    assert options["initial_gate_px"] == ("float", 40.0)
    assert engine_options("passthrough") == {}
