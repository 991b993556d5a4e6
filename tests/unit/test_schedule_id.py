"""Schedule ids: letters, digits, '_' and '-', and nothing after them (not even a newline)."""

from __future__ import annotations

import pytest

from producer.scheduler.schedules import check_schedule_id
from threadcast.errors import ValidationError


@pytest.mark.parametrize("good", ["weekly", "w-1_x", "A" * 64])
def test_good_ids(good: str) -> None:
    assert check_schedule_id("--id", good) == good


@pytest.mark.parametrize("bad", ["weekly\n", "weekly\r\n", "\nweekly", "-x", "", "a" * 65, "a b"])
def test_bad_ids_are_refused_by_name(bad: str) -> None:
    with pytest.raises(ValidationError) as caught:
        check_schedule_id("--id", bad)
    assert caught.value.field == "--id"
