"""The test clock: off unless ``--test-clock`` asks for it, and then only moved when told."""

from __future__ import annotations

import math

import pytest
from starlette.routing import Route

from simulator.app import build_app
from simulator.cli import build_parser, config_from
from simulator.clock import OffsetClock
from simulator.config import SimConfig


def admin_paths(config: SimConfig) -> set[str]:
    return {route.path for route in build_app(config).routes if isinstance(route, Route)}


def test_the_clock_route_exists_only_with_the_flag() -> None:
    assert config_from(build_parser().parse_args([])).test_clock is False
    assert config_from(build_parser().parse_args(["--test-clock"])).test_clock is True
    assert "/_sim/clock" not in admin_paths(SimConfig())
    assert "/_sim/clock" in admin_paths(SimConfig(test_clock=True))


def test_an_offset_clock_follows_its_base_and_moves_when_told() -> None:
    base = [1000.0]
    clock = OffsetClock(lambda: base[0])
    assert clock() == 1000.0
    base[0] += 1
    assert clock() == 1001.0
    clock.advance(2.5)
    assert (clock(), clock.offset) == (1003.5, 2.5)
    clock.offset = 0
    assert clock() == 1001.0
    for bad in (-1, math.nan):
        with pytest.raises(ValueError, match="non-negative"):
            clock.advance(bad)
    assert clock() == 1001.0
