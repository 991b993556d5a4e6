"""threadcast list's --since/--until (and the API's since/until): what a time may be."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from producer.listing import parse_time
from threadcast.errors import ValidationError

NOW = datetime(2026, 12, 7, 0, 0, tzinfo=UTC)


def test_an_age_and_a_date() -> None:
    assert parse_time("--since", "2h", NOW) == NOW - timedelta(hours=2)
    assert parse_time("--since", "2026-12-01", NOW) == datetime(2026, 12, 1, tzinfo=UTC)


@pytest.mark.parametrize("text", ["99999999999d", "9999999w", "yesterday"])
def test_what_is_no_time_names_the_flag(text: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_time("since", text, NOW)
    assert caught.value.field == "since"
