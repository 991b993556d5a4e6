"""Ids never carry a line break: ``$`` in a pattern also matches before a final newline, so
"x\\n" once passed as a broadcast id (a header injection waiting for a Location header)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from threadcast import ids
from threadcast.errors import ValidationError

GUID = "72f988bf-86f1-41af-91ab-2d7cd011db47"


@pytest.mark.parametrize(
    ("check", "good"),
    [(ids.guid, GUID), (ids.channel_id, "19:abc@thread.tacv2"), (ids.broadcast_id, "b-1")],
)
@pytest.mark.parametrize("tail", ["\n", "\r\n", "\r", "\nSet-Cookie: a=1", "\x00"])
def test_a_trailing_line_break_is_refused(
    check: Callable[[str, object], str], good: str, tail: str
) -> None:
    assert check("field", good) == good
    with pytest.raises(ValidationError, match=r"^field: "):
        check("field", good + tail)
