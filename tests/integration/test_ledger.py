"""The ledger on every backend: migrations, idempotent writes, claims and outcomes."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from sqlalchemy import inspect, text

from tests.conftest import PG_ADMIN_URL
from tests.integration import books
from threadcast.contract import Broadcast, ContentType, Target
from threadcast.errors import LedgerError, ValidationError
from threadcast.ledger import Claim, DeliveryState, Ledger, Outcome, Refusal, migrations
from threadcast.ledger.engine import IDLE_PING_SECONDS, make_engine
from threadcast.ledger.schema import metadata

T = "72f988bf-86f1-41af-91ab-2d7cd011db47"
G = "02bd9fd6-8f93-4758-87c3-1fb73740a315"
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=60)


def broadcast(bid: str = "b1", n: int = 3, content: str = "<p>hi</p>") -> Broadcast:
    targets = tuple(Target(T, G, f"19:c{i}@thread.tacv2") for i in range(n))
    return Broadcast(bid, content, ContentType.HTML, targets)


def claimed_one(ledger: Ledger, worker: str = "w1", crid: str = "c1") -> tuple[str, Claim]:
    """A one-delivery broadcast, its delivery claimed at NOW: (delivery id, the claim)."""
    b = broadcast(n=1)
    ledger.broadcasts.add(b, b.deliveries(), NOW)
    did = b.deliveries()[0].id
    claim = books.claim(ledger, did, worker, crid, LEASE, NOW)
    assert isinstance(claim, Claim)
    return did, claim


@pytest.fixture
def ledger(database_url: str) -> Iterator[Ledger]:
    opened = Ledger.open(database_url)
    yield opened
    opened.close()


class SteppedClock:
    """A clock that stands still until the test moves it."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _shape(url: str) -> dict[str, object]:
    engine = make_engine(url)
    try:
        insp = inspect(engine)
        return {
            table: (
                sorted((c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(table)),
                sorted(i["name"] or "" for i in insp.get_indexes(table)),
            )
            for table in sorted(insp.get_table_names())
        }
    finally:
        engine.dispose()


def test_migrations_build_exactly_the_schema_the_code_uses(database_url: str) -> None:
    Ledger.open(database_url).close()
    built = _shape(database_url)
    assert sorted(built) == sorted(metadata.tables)
    for name, table in metadata.tables.items():
        assert sorted(c for c, _, _ in built[name][0]) == sorted(table.columns.keys()), name
        assert sorted(built[name][1]) == sorted(i.name or "" for i in table.indexes), name


def test_existing_ledger_upgrades_in_place(database_url: str) -> None:
    engine = make_engine(database_url)
    with engine.begin() as conn:
        assert migrations.upgrade(conn, target=1) == [1]
        conn.execute(
            text(
                "INSERT INTO broadcasts (id, fingerprint, content, content_type, source, "
                "target_count, created_at) VALUES ('old', 'f', 'x', 'text', 'v1', 0, :now)"
            ),
            {"now": NOW.replace(tzinfo=None)},
        )
    engine.dispose()
    ledger = Ledger.open(database_url)
    try:
        assert ledger.broadcasts.info("old").source == "v1"
        with ledger.engine.connect() as conn:
            assert migrations.current_version(conn) == migrations.HEAD
        assert ledger.migrate() == []  # idempotent
    finally:
        ledger.close()


def test_a_newer_ledger_is_refused(ledger: Ledger) -> None:
    with ledger.engine.begin() as conn:
        conn.execute(
            text("INSERT INTO schema_version VALUES (999, 'from the future', :now)"),
            {"now": NOW.replace(tzinfo=None)},
        )
    with pytest.raises(LedgerError, match="version 999"):
        ledger.migrate()


def test_add_is_idempotent_and_refuses_a_different_broadcast_under_the_same_id(
    ledger: Ledger,
) -> None:
    b = broadcast()
    assert ledger.broadcasts.add(b, b.deliveries(), NOW) is True
    assert ledger.broadcasts.add(b, b.deliveries(), NOW) is False
    assert ledger.broadcasts.counts("b1")["queued"] == 3
    other = broadcast(content="<p>changed</p>")
    with pytest.raises(ValidationError, match="broadcast_id: is already used"):
        ledger.broadcasts.add(other, other.deliveries(), NOW)
    assert ledger.broadcasts.counts("b1")["queued"] == 3
    assert [m.broadcast_id for m in ledger.broadcasts.queued_messages("b1")] == ["b1"] * 3


def test_claim_then_sent_is_never_claimed_again(ledger: Ledger) -> None:
    did, claim = claimed_one(ledger, crid="crid-1")
    assert claim.number == 1 and claim.previous_status is None
    again = books.claim(ledger, did, "w2", "crid-2", LEASE, NOW)
    assert again == Refusal(DeliveryState.SENDING, NOW + LEASE)
    sent = Outcome(DeliveryState.SENT, http_status=204, request_id="rid", latency_ms=3.0)
    assert ledger.deliveries.finish(claim, sent, NOW) is True
    assert books.claim(ledger, did, "w3", "crid-3", LEASE, NOW) == Refusal(DeliveryState.SENT)
    with ledger.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT number, worker, client_request_id, http_status, "
                "request_id, outcome FROM attempts"
            )
        ).all()
    assert [tuple(r) for r in rows] == [(1, "w1", "crid-1", 204, "rid", "sent")]


def test_expired_lease_becomes_unknown_not_resent(ledger: Ledger) -> None:
    did, claim = claimed_one(ledger, crid="crid-1")
    later = NOW + LEASE + timedelta(seconds=1)
    assert books.claim(ledger, did, "w2", "crid-2", LEASE, later) == Refusal(DeliveryState.UNKNOWN)
    assert books.state(ledger, did) is DeliveryState.UNKNOWN
    # The late answer of the lost worker still tells the truth when it is a success.
    assert ledger.deliveries.finish(claim, Outcome(DeliveryState.SENT, 204), later) is True
    assert books.state(ledger, did) is DeliveryState.SENT


def test_a_late_answer_replaces_the_lease_sweeps_guess(ledger: Ledger) -> None:
    did, claim = claimed_one(ledger)
    books.claim(ledger, did, "w2", "c2", LEASE, NOW + 2 * LEASE)  # settles it unknown
    assert books.state(ledger, did) is DeliveryState.UNKNOWN
    # Its worker was only frozen: the answer to that very attempt (here: not posted) wins.
    assert ledger.deliveries.finish(claim, Outcome(DeliveryState.RETRYING, 503), NOW) is True
    assert books.state(ledger, did) is DeliveryState.RETRYING


def test_a_lost_claim_cannot_overwrite_a_later_attempt(ledger: Ledger) -> None:
    did, claim = claimed_one(ledger)
    books.claim(ledger, did, "w2", "c2", LEASE, NOW + 2 * LEASE)  # settles it unknown
    assert ledger.broadcasts.requeue("b1", [DeliveryState.UNKNOWN], NOW + 2 * LEASE) != []
    again = books.claim(ledger, did, "w3", "c3", LEASE, NOW + 2 * LEASE)
    assert isinstance(again, Claim) and again.number == 2
    assert ledger.deliveries.finish(claim, Outcome(DeliveryState.FAILED, 400), NOW) is False
    assert books.state(ledger, did) is DeliveryState.SENDING  # the new claim's, untouched


def test_retrying_is_claimable_and_counts_attempts(ledger: Ledger) -> None:
    did, first = claimed_one(ledger, worker="w")
    ledger.deliveries.finish(first, Outcome(DeliveryState.RETRYING, 503), NOW)
    second = books.claim(ledger, did, "w", "c2", LEASE, NOW)
    assert isinstance(second, Claim) and second.number == 2 and second.previous_status == 503


def test_waiting_auth_hold_and_resume(ledger: Ledger) -> None:
    b = broadcast(n=2)
    ledger.broadcasts.add(b, b.deliveries(), NOW)
    reason = Outcome(DeliveryState.WAITING_AUTH, error_code="sign_in_required")
    for d in b.deliveries():
        assert ledger.deliveries.suspend(d.id, reason, NOW) is True
    assert ledger.broadcasts.counts("b1")["waiting_auth"] == 2
    resumed = ledger.deliveries.resume_waiting(T, NOW)
    assert sorted(m.delivery_id for m in resumed) == sorted(d.id for d in b.deliveries())
    assert ledger.broadcasts.counts("b1")["queued"] == 2


def test_token_cache_rows_hold_ciphertext(ledger: Ledger) -> None:
    ledger.token_caches.save(T, "cipher-1", NOW)
    ledger.token_caches.save(T, "cipher-2", NOW)
    assert ledger.token_caches.load(T) == "cipher-2"
    assert ledger.token_caches.tenants() == [T]
    ledger.token_caches.delete(T)
    assert ledger.token_caches.load(T) is None


def test_unclaim_gives_back_a_claim_that_made_no_request(ledger: Ledger) -> None:
    did, claim = claimed_one(ledger)
    assert ledger.deliveries.unclaim(claim, NOW) is True
    assert books.state(ledger, did) is DeliveryState.QUEUED
    with ledger.engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM attempts")).scalar() == 0
    again = books.claim(ledger, did, "w2", "c2", LEASE, NOW)
    assert isinstance(again, Claim) and again.number == 1


def test_a_batch_is_claimed_and_recorded_in_one_transaction_each(ledger: Ledger) -> None:
    b = broadcast(n=3)
    ledger.broadcasts.add(b, b.deliveries(), NOW)
    first, second, third = (d.id for d in b.deliveries())
    claims = ledger.deliveries.claim_many(
        [(first, "c1"), (second, "c2"), (first, "c3")], "w", LEASE, NOW, "channel-messages"
    )
    one, two, refused = claims
    assert isinstance(one, Claim) and isinstance(two, Claim)
    assert (one.delivery_id, two.delivery_id, one.endpoint) == (first, second, "channel-messages")
    assert refused == Refusal(DeliveryState.SENDING, one.lease_until)  # already claimed above
    sent = Outcome(DeliveryState.SENT, http_status=201, request_id="r1")
    retry = Outcome(DeliveryState.RETRYING, http_status=503)
    assert ledger.deliveries.finish_many([(one, sent, NOW), (two, retry, NOW)]) == [True, True]
    assert books.state(ledger, first) is DeliveryState.SENT
    assert books.state(ledger, second) is DeliveryState.RETRYING
    # An outcome its claim may no longer write is reported as not recorded; the others are.
    [three] = ledger.deliveries.claim_many([(third, "c4")], "w", LEASE, NOW)
    assert isinstance(three, Claim)
    failed = Outcome(DeliveryState.FAILED, http_status=400)
    assert ledger.deliveries.finish_many([(two, failed, NOW), (three, sent, NOW)]) == [False, True]
    assert books.state(ledger, second) is DeliveryState.RETRYING
    with ledger.engine.connect() as conn:
        endpoints = conn.execute(text("SELECT DISTINCT endpoint FROM attempts")).scalars().all()
    assert set(endpoints) == {"channel-messages", None}


def test_deliveries_store_their_timestamps_exactly_as_the_broadcast_row_does(
    ledger: Ledger,
) -> None:
    # The deliveries are written below SQLAlchemy (COPY / executemany): their timestamps must
    # still be stored in the column type's own form (SQLite compares them as text).
    b = broadcast(n=2)
    ledger.broadcasts.add(b, b.deliveries(), NOW)  # NOW has no microseconds: the edge case
    with ledger.engine.connect() as conn:
        same = conn.execute(
            text(
                "SELECT COUNT(*) FROM deliveries d JOIN broadcasts b ON b.id = d.broadcast_id "
                "WHERE d.created_at = b.created_at AND d.updated_at = b.created_at"
            )
        ).scalar()
    assert same == 2


def test_a_delivery_waiting_for_its_retry_time_is_not_claimed_before_it(ledger: Ledger) -> None:
    did, claim = claimed_one(ledger)
    due = NOW + timedelta(seconds=30)
    retry = Outcome(DeliveryState.RETRYING, http_status=503, next_attempt_at=due)
    assert ledger.deliveries.finish(claim, retry, NOW) is True
    # A message that comes back early (a batch redelivered after a kill) is told to wait.
    early = books.claim(ledger, did, "w2", "c2", LEASE, NOW + timedelta(seconds=5))
    assert early == Refusal(DeliveryState.RETRYING, not_before=due)
    # Clocks differ a little between machines: half a second early is on time.
    on_time = books.claim(ledger, did, "w2", "c3", LEASE, due - timedelta(seconds=0.4))
    assert isinstance(on_time, Claim) and on_time.number == 2


@pytest.mark.backends("postgresql")  # SQLite has no server whose restart drops connections
def test_a_pooled_connection_the_server_dropped_is_replaced_before_use(database_url: str) -> None:
    idle = SteppedClock(time.monotonic())  # how long the pooled connection has been idle
    ledger = Ledger(make_engine(database_url, clock=idle))  # what Ledger.open makes
    try:
        ledger.migrate()
        b = broadcast(n=1)
        ledger.broadcasts.add(b, b.deliveries(), NOW)  # the pool now holds a connection
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:  # as a restart would
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (database_url.rsplit("/", 1)[1],),
            )
        idle.advance(IDLE_PING_SECONDS + 0.2)  # idle long enough to be tested on checkout
        claim = books.claim(ledger, b.deliveries()[0].id, "w", "c", LEASE, NOW)
        assert isinstance(claim, Claim)
    finally:
        ledger.close()


def test_a_claim_given_back_undoes_the_sweeps_unknown_for_its_attempt(ledger: Ledger) -> None:
    # The claim waited on a lock until its lease had run out; the lease sweep called it
    # unknown, but its holder knows no request was made and gives it back.
    did, claim = claimed_one(ledger)
    assert ledger.deliveries.settle_expired_leases(NOW + 2 * LEASE) == (1, [])
    assert books.state(ledger, did) is DeliveryState.UNKNOWN
    assert ledger.deliveries.unclaim(claim, NOW + 2 * LEASE)
    assert books.state(ledger, did) is DeliveryState.QUEUED
    with ledger.engine.connect() as conn:
        row = conn.execute(
            text("SELECT attempts, last_error_code FROM deliveries WHERE id = :d"), {"d": did}
        ).one()
        left = conn.execute(
            text("SELECT COUNT(*) FROM attempts WHERE delivery_id = :d"), {"d": did}
        ).scalar()
    assert tuple(row) == (0, None) and left == 0


def test_a_claim_given_back_after_another_claim_took_it_changes_nothing(ledger: Ledger) -> None:
    did, claim = claimed_one(ledger)
    settled, again = ledger.deliveries.settle_expired_leases(NOW + 2 * LEASE, retry=True)
    assert settled == 1 and [m.delivery_id for m in again] == [did]
    second = books.claim(ledger, did, "w2", "c2", LEASE, NOW + 2 * LEASE)
    assert isinstance(second, Claim)
    assert not ledger.deliveries.unclaim(claim, NOW + 2 * LEASE)
    assert books.state(ledger, did) is DeliveryState.SENDING


@pytest.mark.backends("postgresql")
def test_the_lease_sweep_skips_a_row_another_transaction_holds(ledger: Ledger) -> None:
    did, _ = claimed_one(ledger)
    with ledger.engine.connect() as holder:
        holder.execute(text("SELECT id FROM deliveries WHERE id = :d FOR UPDATE"), {"d": did})
        # Waiting on the lock would never end here (the holder is this thread): a sweep that
        # skips it answers, and the locked row is not settled.
        answer: list[tuple[int, list[object]]] = []
        sweep = threading.Thread(
            target=lambda: answer.append(ledger.deliveries.settle_expired_leases(NOW + 2 * LEASE)),
            daemon=True,
        )
        sweep.start()
        sweep.join(60)
        assert answer == [(0, [])]
        holder.rollback()
    assert ledger.deliveries.settle_expired_leases(NOW + 2 * LEASE) == (1, [])


@pytest.mark.backends("postgresql")
def test_postgresql_sessions_find_dead_peers_and_idle_transactions(ledger: Ledger) -> None:
    with ledger.engine.connect() as conn:
        shown = {
            name: conn.execute(text(f"SHOW {name}")).scalar()
            for name in ("idle_in_transaction_session_timeout", "tcp_user_timeout")
        }
    assert shown == {"idle_in_transaction_session_timeout": "1min", "tcp_user_timeout": "20000"}
