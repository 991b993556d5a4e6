"""The one broadcast report and its renderings (the surfaces' agreement on a real stack:
tests/integration/test_api_report.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from producer import status
from producer.api.app import create_app
from producer.reports import BroadcastReport, EndpointReport
from threadcast.contract import ContentType
from threadcast.endpoints import AUTO, CHANNEL_MESSAGES, CHATTHREADS, Switch
from threadcast.ledger import DeliveryState, ErrorLine, WaitLine
from threadcast.settings import load_settings

AT = datetime(2026, 12, 6, 17, 8, 44, tzinfo=UTC)


def sample() -> BroadcastReport:
    counts = {s.value: 0 for s in DeliveryState} | {"sent": 6, "failed": 1, "retrying": 3}
    switch = Switch(CHANNEL_MESSAGES, AT.isoformat(), "400 BadRequest: gone", "vm/1")
    return BroadcastReport(
        broadcast_id="b-1",
        source="svc",
        content_type=ContentType.HTML,
        created_at=AT,
        send_at=None,
        total=10,
        counts=counts,
        settled=7,
        done=False,
        waiting=[WaitLine("retrying", "channel_daily_quota", "quota reached", 3, AT)],
        endpoint=EndpointReport(
            setting=AUTO,
            active=CHANNEL_MESSAGES,
            summary=f"auto: {switch.describe()}",
            switch=switch,
            attempts={CHATTHREADS: {"rerouted": 1}, CHANNEL_MESSAGES: {"sent": 6, "failed": 1}},
        ),
        errors=[ErrorLine("d-1", "t", "19:c@thread.tacv2", 403, "Forbidden", "no", "r-1", AT)],
    )


def test_no_state_is_named_like_a_field() -> None:
    # status --json puts every state's count beside the fields: a clash would hide one.
    assert not {s.value for s in DeliveryState} & set(BroadcastReport.model_fields)
    assert "broadcast" not in BroadcastReport.model_fields


def test_status_json_is_the_api_answer_plus_the_older_keys() -> None:
    report = sample()
    shown = json.loads(status.dumps(report))
    answered = report.model_dump(mode="json")  # what the API serialises (its response model)
    assert {k: shown[k] for k in answered} == answered
    older = {"broadcast": "b-1"} | answered["counts"]
    assert {k: shown[k] for k in shown.keys() - answered.keys()} == older


def test_the_api_answers_the_report() -> None:
    app = create_app(load_settings(api_keys="reports:" + "k" * 16))
    answer = app.openapi()["paths"]["/v1/broadcasts/{broadcast_id}"]["get"]["responses"]["200"]
    schema = answer["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/BroadcastReport"}


def test_text_and_bar_show_the_report() -> None:
    text = status.render(sample())
    assert "broadcast b-1 (10 deliveries, from svc)" in text
    assert (
        "waiting:\n       3 retrying, channel_daily_quota until 2026-12-06T17:08:44+00:00" in text
    )
    assert "attempts on chatthreads: rerouted 1" in text
    assert "2026-12-06T17:08:44+00:00  19:c@thread.tacv2 (tenant t): HTTP 403 Forbidden" in text
    assert status.bar(sample(), width=10) == ("[#######...] 6/10 sent  retrying 3, failed 1")
