"""Assembling the ASGI application: one identity platform, one Graph, one admin API."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.applications import Starlette

from simulator.admin import ADMIN_PREFIX, AdminRoutes
from simulator.authority import Authority
from simulator.clock import Clock, OffsetClock, wall_clock
from simulator.config import SimConfig
from simulator.graph import GraphRoutes
from simulator.identity import IdentityRoutes
from simulator.keys import SigningKey
from simulator.policies import Policy, PolicyChain
from simulator.state import SimState
from simulator.tenantadmin import TenantAdminRoutes
from simulator.tokens import TokenMinter
from simulator.verify import AccessTokenVerifier


def build_app(
    config: SimConfig,
    *,
    policies: Sequence[Policy] = (),
    clock: Clock = wall_clock,
) -> Starlette:
    """The whole simulator; ``policies`` run after its own faults and throttle."""
    test_clock = OffsetClock(clock) if config.test_clock else None
    if test_clock is not None:
        clock = test_clock
    key = SigningKey.generate()
    state = SimState.create(config, clock)
    verifier = AccessTokenVerifier(key, clock, state.directory.consent)
    minter = TokenMinter(key, config.token_lifetime, clock, state.issued)
    authority = Authority(state, minter, verifier)
    # Faults first: a faulted request never reaches the throttle, so it counts in no window.
    chain = PolicyChain([state.faults, state.throttle, *policies])
    graph = GraphRoutes(verifier, state, chain, clock)
    identity = IdentityRoutes(authority, key, clock, config.device_approve_delay)
    # Graph first: it is the hot path, and Starlette tries routes in order.
    admin = [
        *AdminRoutes(state, authority, test_clock).routes(),
        *TenantAdminRoutes(state.directory, ADMIN_PREFIX).routes(),
    ]
    routes = [*graph.routes(), *admin, *identity.routes()]
    return Starlette(routes=routes)
