"""``threadcast list`` on every ledger backend: order, filters, paging, --json, bad input."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from producer.cli import main
from producer.reports import BroadcastSummary
from tests.integration import books
from threadcast.contract import Broadcast, ContentType, Target
from threadcast.ledger import Claim, DeliveryState, Ledger, Outcome

T = "72f988bf-86f1-41af-91ab-2d7cd011db47"
G = "02bd9fd6-8f93-4758-87c3-1fb73740a315"
LEASE = timedelta(seconds=60)


def run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        return int(exc.code or 0)


def record(ledger: Ledger, bid: str, source: str, at: datetime, n: int = 3) -> list[str]:
    targets = tuple(Target(T, G, f"19:{bid}-{i}@thread.tacv2") for i in range(n))
    b = Broadcast(bid, "<p>hi</p>", ContentType.HTML, targets, source=source)
    ledger.broadcasts.add(b, b.deliveries(), at)
    return [d.id for d in b.deliveries()]


def settle(ledger: Ledger, delivery_id: str, outcome: Outcome, now: datetime) -> None:
    claim = books.claim(ledger, delivery_id, "w1", str(uuid.uuid4()), LEASE, now)
    assert isinstance(claim, Claim)
    assert ledger.deliveries.finish(claim, outcome, now)


@pytest.fixture
def ledger(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Ledger]:
    """Three broadcasts: ``old`` (ops, 3 days ago, all sent), ``mid`` (cli, 2 h ago, one
    failed), ``new`` (cli, 10 min ago, all queued)."""
    monkeypatch.setenv("THREADCAST_DATABASE_URL", database_url)
    opened = Ledger.open(database_url)
    now = datetime.now(UTC)
    for did in record(opened, "old", "ops", now - timedelta(days=3)):
        settle(opened, did, Outcome(DeliveryState.SENT, http_status=201), now)
    failed = record(opened, "mid", "cli", now - timedelta(hours=2))[0]
    settle(opened, failed, Outcome(DeliveryState.FAILED, 404, error_code="NotFound"), now)
    record(opened, "new", "cli", now - timedelta(minutes=10))
    yield opened
    opened.close()


def listed(capsys: pytest.CaptureFixture[str], *flags: str) -> list[dict[str, object]]:
    assert run(["list", "--json", *flags]) == 0
    data = json.loads(capsys.readouterr().out)
    assert isinstance(data, list)
    return data


def ids(capsys: pytest.CaptureFixture[str], *flags: str) -> list[object]:
    return [b["broadcast_id"] for b in listed(capsys, *flags)]


def test_newest_first_with_counts_and_progress(
    ledger: Ledger, capsys: pytest.CaptureFixture[str]
) -> None:
    data = listed(capsys)
    assert [b["broadcast_id"] for b in data] == ["new", "mid", "old"]
    new, mid, old = (BroadcastSummary.model_validate(b) for b in data)
    assert (old.source, old.total, old.settled, old.done) == ("ops", 3, 3, True)
    assert old.counts["sent"] == 3
    assert (mid.counts["failed"], mid.counts["queued"], mid.settled, mid.done) == (1, 2, 1, False)
    assert (new.counts["queued"], new.settled, new.done) == (3, 0, False)
    assert new.created_at > mid.created_at > old.created_at
    assert old.send_at is None and old.cancelled_at is None


def test_json_is_a_list_of_broadcast_summaries(
    ledger: Ledger, capsys: pytest.CaptureFixture[str]
) -> None:
    for item in listed(capsys):
        assert set(item) == set(BroadcastSummary.model_fields)
        assert set(item["counts"]) == {s.value for s in DeliveryState}  # type: ignore[arg-type]
        assert BroadcastSummary.model_validate(item).model_dump(mode="json") == item


def test_text_table(ledger: Ledger, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["BROADCAST", "SOURCE", "CREATED"]
    assert [line.split()[0] for line in lines[1:]] == ["new", "mid", "old"]
    assert "3/3 100%" in lines[3] and "done" in lines[3] and "sent 3" in lines[3]
    assert "1/3 33%" in lines[2] and "moving" in lines[2] and "queued 2, failed 1" in lines[2]


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--state", "failed"], ["mid"]),
        (["--state", "failed", "--state", "sent"], ["mid", "old"]),
        (["--state", "queued,sent"], ["new", "mid", "old"]),
        (["--state", "queued"], ["new", "mid"]),
        (["--state", "waiting_auth"], []),
        (["--source", "ops"], ["old"]),
        (["--source", "cli"], ["new", "mid"]),
        (["--source", "nobody"], []),
        (["--since", "3h"], ["new", "mid"]),
        (["--since", "30m"], ["new"]),
        (["--until", "1h"], ["mid", "old"]),
        (["--since", "4d", "--until", "1d"], ["old"]),
        (["--source", "cli", "--state", "failed", "--since", "1w"], ["mid"]),
    ],
)
def test_filters(
    ledger: Ledger, capsys: pytest.CaptureFixture[str], flags: list[str], expected: list[str]
) -> None:
    assert ids(capsys, *flags) == expected


def test_absolute_times(ledger: Ledger, capsys: pytest.CaptureFixture[str]) -> None:
    created = ledger.broadcasts.created("mid")
    assert created is not None
    at = created.astimezone(UTC).isoformat()
    assert ids(capsys, "--since", at) == ["new", "mid"]
    assert ids(capsys, "--until", at) == ["old"]
    plus_one = created.astimezone(UTC) + timedelta(hours=1)
    assert ids(capsys, "--until", plus_one.strftime("%Y-%m-%dT%H:%M:%SZ")) == ["mid", "old"]
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    assert ids(capsys, "--since", tomorrow) == []
    assert ids(capsys, "--until", tomorrow) == ["new", "mid", "old"]


def test_paging(ledger: Ledger, capsys: pytest.CaptureFixture[str]) -> None:
    assert ids(capsys, "--limit", "2") == ["new", "mid"]
    assert ids(capsys, "--limit", "2", "--after", "mid") == ["old"]
    assert ids(capsys, "--limit", "1", "--after", "new") == ["mid"]
    assert ids(capsys, "--after", "old") == []
    assert ids(capsys, "--state", "queued", "--after", "new") == ["mid"]
    assert run(["list", "--limit", "1"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == "more: threadcast list --after new (same filters)"
    assert run(["list", "--limit", "1", "--after", "mid"]) == 0
    assert "more:" not in capsys.readouterr().out  # the last page
    assert run(["list", "--after", "old"]) == 0
    assert capsys.readouterr().out.strip() == "no broadcasts match"


def test_same_created_at_pages_by_id(ledger: Ledger, capsys: pytest.CaptureFixture[str]) -> None:
    at = datetime.now(UTC) - timedelta(days=10)
    for bid in ("tie-a", "tie-b", "tie-c"):
        record(ledger, bid, "tied", at, n=1)
    first = ids(capsys, "--source", "tied", "--limit", "2")
    assert first == ["tie-c", "tie-b"]
    assert ids(capsys, "--source", "tied", "--after", "tie-b") == ["tie-a"]


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--state", "bogus"], "--state: is not a state"),
        (["--state", "sent,nope"], "--state: is not a state"),
        (["--since", "yesterday"], "--since: must be an ISO 8601 date-time"),
        (["--until", "2026-13-01"], "--until: must be an ISO 8601 date-time"),
        (["--since", "2026-12-01T09:00:00"], "--since: must include a UTC offset"),
        (["--since", "1h", "--until", "2h"], "--until: must be after --since"),
        (["--limit", "0"], "--limit: must be 1-1000"),
        (["--limit", "1001"], "--limit: must be 1-1000"),
        (["--limit", "many"], "argument --limit: invalid int value"),
        (["--after", "no-such-broadcast"], "--after: names no broadcast"),
        (["--source", " "], "--source: must not be empty"),
    ],
)
def test_bad_input_is_exit_2_naming_the_flag(
    ledger: Ledger, capsys: pytest.CaptureFixture[str], flags: list[str], named: str
) -> None:
    assert run(["list", *flags]) == 2
    captured = capsys.readouterr()
    assert named in captured.err and captured.out == ""
