"""What one worker process holds: its ledger connection, Redis client, HTTPS clients, tokens.

Built lazily inside each Celery child, after the fork, so no socket is shared between
processes.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import timedelta

import redis

from threadcast import identity
from threadcast.dispatch import Limits
from threadcast.endpoints import EndpointRecord
from threadcast.ledger import Ledger
from threadcast.lifecycle import Handling, gates
from threadcast.settings import Settings
from threadcast.tokencache import TokenCacheStore
from threadcast.tokens import TokenProvider
from worker.changes import ChangeRunner
from worker.deliver import Deliverer
from worker.endpoint import EndpointChooser
from worker.flight import FlightControl
from worker.graph import GraphClient
from worker.policy import RetryPolicy


@dataclass
class WorkerContext:
    ledger: Ledger
    redis: redis.Redis
    store: TokenCacheStore
    tokens: TokenProvider
    graph: GraphClient
    deliverer: Deliverer
    flight: FlightControl
    changes: ChangeRunner

    @classmethod
    def build(cls, settings: Settings) -> WorkerContext:
        ledger = Ledger.open(settings.database_url)
        client = redis.Redis.from_url(settings.redis_url)
        store = TokenCacheStore.for_settings(settings, client, ledger.token_caches)
        tokens = TokenProvider(
            settings, store, client, identity.http_client(settings), settings.token_refresh_margin
        )
        graph = GraphClient(
            settings.graph_url,
            identity.ssl_context(settings),
            settings.http_timeout,
            connections=settings.worker_threads * settings.batch_size,
        )
        lease = timedelta(seconds=settings.http_timeout + settings.lease_margin)
        policy = RetryPolicy(
            max_attempts=settings.max_attempts,
            retry_after_cap=settings.retry_after_cap,
            retry_ambiguous=settings.ambiguous == "retry",
        )
        name = f"{socket.gethostname()}/{os.getpid()}"
        limits = Limits.from_settings(settings)
        handling = Handling(
            ledger,
            gates.keeper(client, settings, limits),
            name,
            lease,
            timedelta(seconds=settings.http_timeout),
        )
        chooser = EndpointChooser(
            settings.endpoint, EndpointRecord(client, ledger.deployment), name
        )
        deliverer = Deliverer(handling, tokens, graph, chooser, policy)
        # The permits the gate can give this process at most: the app's whole ceiling.
        flight = FlightControl(
            limits.app / limits.window, settings.max_in_flight, settings.batch_size
        )
        changes = ChangeRunner(
            ledger,
            gates.changes(client, settings),
            tokens,
            graph,
            policy,
            name,
            http_timeout=settings.http_timeout,
        )
        return cls(ledger, client, store, tokens, graph, deliverer, flight, changes)

    def close(self) -> None:
        self.graph.close()
        self.redis.close()
        self.ledger.close()
