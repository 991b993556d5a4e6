"""Text threadcast stores and Graph carries: the one check every text field passes."""

from __future__ import annotations

from threadcast.errors import ValidationError


def check_text(field: str, value: str) -> str:
    """Text the ledger can store on every backend and Graph can carry: Unicode (no lone
    surrogate, which has no UTF-8 form) without NUL (PostgreSQL's text cannot hold it)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValidationError(
            field, value, f"is not valid Unicode text: a lone surrogate at character {exc.start}"
        ) from None
    nul = value.find("\x00")
    if nul >= 0:
        raise ValidationError(field, value, f"must not contain NUL (found at character {nul})")
    return value
