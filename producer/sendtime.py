"""Send times: reading them from operators and refusing ones already past.

A send time is an instant: it must carry its UTC offset (``2026-12-01T09:00:00+01:00`` or
``…Z``), never a bare local time whose meaning depends on the machine it is read on.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from threadcast.constants import SEND_AT_TOLERANCE_SECONDS
from threadcast.errors import ValidationError

_EXAMPLE = "2026-12-01T09:00:00+01:00"


def parse_instant(field: str, text: str) -> datetime:
    """An ISO 8601 date-time with an offset, or a ValidationError naming ``field``."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValidationError(
            field, text, f"must be an ISO 8601 date-time like {_EXAMPLE}"
        ) from None
    return require_offset(field, value)


def require_offset(field: str, value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(
            field, value.isoformat(), f"must include a UTC offset, like {_EXAMPLE}"
        )
    return value


def check_send_at(
    field: str, send_at: datetime | None, now: datetime, *, now_if_past: bool = False
) -> None:
    """Refuse a send time in the past (beyond a few seconds' tolerance) unless the caller
    asked for such a broadcast to go now. ``None`` means now."""
    if send_at is None:
        return
    require_offset(field, send_at)
    late = now - send_at
    if late > timedelta(seconds=SEND_AT_TOLERANCE_SECONDS) and not now_if_past:
        raise ValidationError(
            field,
            send_at.isoformat(),
            f"is {late.total_seconds():.0f} s in the past; give a future time, or send it now "
            "with --now-if-past (Python: now_if_past=True)",
        )
