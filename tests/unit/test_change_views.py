"""How an edit or recall is told in text (the surfaces on a real ledger:
tests/integration/test_change_surfaces.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from producer import change_reports
from producer.api.app import create_app
from producer.cli.change import describe
from producer.reports import BroadcastReport, ChangeReport
from threadcast.ledger.changes import ChangeInfo, ChangeKind, ChangeState, ItemState, Made
from threadcast.settings import load_settings

AT = datetime(2026, 12, 6, 17, 8, 44, tzinfo=UTC)


def info(**counts: int) -> ChangeInfo:
    return ChangeInfo(
        id="c-1",
        broadcast_id="b-1",
        number=2,
        kind=ChangeKind.RECALL,
        state=ChangeState.RUNNING,
        source="cli",
        created_at=AT,
        finished_at=None,
        counts={s.value: 0 for s in ItemState} | counts,
    )


def test_every_item_state_is_told() -> None:
    assert sorted(change_reports.SHOWN) == sorted(ItemState)


def test_the_line_names_the_states_with_deliveries_done_first() -> None:
    line = change_reports.summary(info(pending=180, done=120, no_message_id=3))
    assert line == (
        "recall #2 running: 120 done, 180 pending, 3 no_message_id (sent by chatthreads: "
        "no message id)"
    )
    assert change_reports.summary(info()) == "recall #2 running: no deliveries"


def test_a_change_asked_for_again_says_what_goes_again() -> None:
    text = describe(Made(info(pending=2, done=1), created=False, superseded=[], again=2))
    assert text.splitlines() == [
        "recall #2 running: 1 done, 2 pending",
        "the same recall was asked for before: nothing new",
        "asked again: 2 go again",
        "broadcast b-1, change c-1",
    ]
    made = describe(Made(info(pending=1), created=True, superseded=["c-0"]))
    assert "superseded: c-0" in made and "asked again" not in made


def test_the_report_holds_the_changes_and_the_api_answers_them() -> None:
    assert BroadcastReport.model_fields["changes"].annotation == list[ChangeReport]
    paths = create_app(load_settings(api_keys="views:" + "k" * 16)).openapi()["paths"]
    edit = paths["/v1/broadcasts/{broadcast_id}/edit"]["post"]
    assert {"200", "201", "404", "413", "422"} <= set(edit["responses"])
    body = edit["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert body.endswith("/EditIn")
