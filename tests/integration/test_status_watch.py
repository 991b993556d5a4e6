"""``threadcast status --watch`` on every ledger backend, in a process of its own: the test
drives the ledger (settles, holds, suspends deliveries) while the watch redraws, and reads
its lines as they come; it ends by itself when the broadcast is done, or on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from producer import status
from producer.cli import main
from tests.integration import books
from threadcast.contract import Broadcast, ContentType, Target
from threadcast.dispatch.limits import Limits
from threadcast.ledger import Claim, DeliveryState, Ledger, Outcome
from threadcast.settings import Settings

# The watch reads what test_api_report and the ledger tests check on both backends: one here.
pytestmark = pytest.mark.backends("sqlite")

T = "72f988bf-86f1-41af-91ab-2d7cd011db47"
TEAMS = ("02bd9fd6-8f93-4758-87c3-1fb73740a315", "1c5d3f2e-8a8b-4f3e-9a43-6b2f0f6b8d11")
LEASE = timedelta(seconds=60)
ROOT = Path(__file__).resolve().parents[2]
QUOTA = "channel_daily_quota"


@pytest.fixture
def ledger(database_url: str) -> Iterator[Ledger]:
    opened = Ledger.open(database_url)
    yield opened
    opened.close()


def record(ledger: Ledger, bid: str, n: int) -> list[str]:
    targets = tuple(Target(T, TEAMS[i % 2], f"19:{bid}-{i}@thread.tacv2") for i in range(n))
    b = Broadcast(bid, "<p>hi</p>", ContentType.HTML, targets)
    ledger.broadcasts.add(b, b.deliveries(), datetime.now(UTC))
    return [d.id for d in b.deliveries()]


def send(ledger: Ledger, delivery_ids: list[str]) -> None:
    now = datetime.now(UTC)
    for did in delivery_ids:
        claim = books.claim(ledger, did, "w1", str(uuid.uuid4()), LEASE, now)
        assert isinstance(claim, Claim)
        assert ledger.deliveries.finish(claim, Outcome(DeliveryState.SENT, 201), now)


class Watch:
    """``python -m producer.cli status ID --watch`` with its output read a line at a time."""

    def __init__(self, database_url: str, broadcast_id: str, *flags: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("THREADCAST_")}
        env |= {"THREADCAST_DATABASE_URL": database_url, "PYTHONUNBUFFERED": "1"}
        argv = [sys.executable, "-m", "producer.cli", "status", broadcast_id, "--watch", *flags]
        self.proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.seen: list[str] = []

    def until(self, wanted: Callable[[str], bool]) -> str:
        """The first line from now on that ``wanted`` accepts (the watch redraws until it
        comes; pytest-timeout ends a test that waits for one in vain)."""
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            assert line, f"the watch ended first: {self.seen[-3:]} {self.finish()}"
            self.seen.append(line.rstrip("\n"))
            if wanted(line):
                return line

    def finish(self) -> tuple[int, str, str]:
        """Its exit code and the rest of its output (read through the same buffered files
        as :meth:`until`: communicate() would miss what they already read ahead)."""
        assert self.proc.stdout is not None and self.proc.stderr is not None
        out, err = self.proc.stdout.read(), self.proc.stderr.read()
        return self.proc.wait(timeout=60), out, err

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


def seconds(shown: str) -> int:
    """``status.duration``'s text back in seconds: ``45s``, ``3m20s``, ``2h05m``, ``1d03h``."""
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([dhms])", shown))


RATE = re.compile(r"\| (\d+\.\d)/s \(limits allow (\d+\.\d)/s\) ~(\S+) left")


def test_watch_shows_rate_time_left_and_waits_then_ends_when_done(
    ledger: Ledger, database_url: str
) -> None:
    ids = record(ledger, "w1", 8)
    midnight = datetime.combine(datetime.now(UTC).date() + timedelta(days=1), datetime.min.time())
    until = midnight.replace(tzinfo=UTC)
    held = ids[6:]
    ledger.deliveries.note(held, QUOTA, "the channel's daily quota is used up", until, until)
    watch = Watch(database_url, "w1", "--interval", "0.05")
    try:
        first = watch.until(lambda line: "0/8 sent" in line)
        assert "rate: measuring (limits allow" in first  # before a second refresh: the limits
        assert f"waiting: 2 queued for {QUOTA} until {until:%Y-%m-%d} 00:00:00Z" in first
        assert re.search(r"~\d+h\d\dm left|~\d+m\d\ds left|~\d+s left", first)

        send(ledger, ids[:3])
        moved = watch.until(lambda line: "3/8 sent" in line)
        found = RATE.search(moved)
        assert found is not None, moved
        assert float(found.group(1)) > 0  # 3 settled since the first refresh
        # A channel's quota holds two until midnight: the broadcast ends no earlier (the
        # shown time is in whole minutes beyond an hour).
        assert seconds(found.group(3)) >= (until - datetime.now(UTC)).total_seconds() - 60

        sign_in = Outcome(DeliveryState.WAITING_AUTH, 403, error_code="MissingScope")
        assert ledger.deliveries.suspend(ids[3], sign_in, datetime.now(UTC))
        waiting = watch.until(lambda line: "waiting_auth for a sign-in" in line)
        assert "1 waiting_auth for a sign-in (threadcast login --tenant)" in waiting

        # Midnight comes (as the dispatcher would see it): the held ones may go, and go.
        past = datetime.now(UTC) - timedelta(seconds=1)
        ledger.deliveries.note(held, QUOTA, "the quota is new", past, past)
        send(ledger, [ids[4], ids[5], *held])
        last = watch.until(lambda line: "7/8 sent" in line)
        assert "| done" in last
        code, out, err = watch.finish()
        assert code == 0, err
        assert "broadcast w1 (8 deliveries" in out  # the report after the last line
    finally:
        watch.stop()


def test_ctrl_c_stops_the_watch_with_130(ledger: Ledger, database_url: str) -> None:
    record(ledger, "still", 2)
    watch = Watch(database_url, "still", "--interval", "0.05")
    try:
        watch.until(lambda line: "0/2 sent" in line)
        # Nothing settles (no worker): the rate is measured as zero, the time left unknown.
        idle = watch.until(lambda line: "0.0/s" in line)
        assert "time left unknown: nothing settled lately" in idle
        watch.proc.send_signal(signal.SIGINT)
        code, _out, err = watch.finish()
        assert code == 130, err
    finally:
        watch.stop()


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--watch", "--interval", "0"], "--interval: must be more than 0"),
        (["--watch", "--interval", "-1"], "--interval: must be more than 0"),
        (["--watch", "--interval", "7200"], "--interval: must be more than 0 and at most 3600"),
        (["--interval", "1"], "--interval: needs --watch"),
    ],
)
def test_bad_interval_is_exit_2(
    ledger: Ledger,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    named: str,
) -> None:
    record(ledger, "b", 1)
    monkeypatch.setenv("THREADCAST_DATABASE_URL", database_url)
    assert main(["status", "b", *flags]) == 2
    assert named in capsys.readouterr().err


def test_limit_rate_is_the_busiest_scope() -> None:
    limits = Limits.from_settings(Settings(team_rps=4, tenant_rps=50, app_rps=500))
    w = limits.window
    # 8 in one team, 4 in another of the same tenant: the first team needs 8 windows / 4.
    rate = status.limit_rate(limits, {(T, TEAMS[0]): 8, (T, TEAMS[1]): 4})
    assert rate == pytest.approx(12 / (8 * w / 4))
    # 400 spread over 200 teams: the tenant's 50/s binds.
    spread = {(T, str(uuid.UUID(int=i))): 2 for i in range(200)}
    assert status.limit_rate(limits, spread) == pytest.approx(400 / (400 * w / 50))
    # One delivery: at least one channel window.
    assert status.limit_rate(limits, {(T, TEAMS[0]): 1}) == pytest.approx(1 / w)
    assert status.limit_rate(limits, {}) is None
