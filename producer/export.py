"""``threadcast export``: the audit trail as CSV or JSON lines, streamed to a file or stdout.

A file is written under a temporary name and renamed when complete, so a failed export
never leaves a partial file behind (nor touches an existing one).

Each delivery also says what became of its message in each edit and recall of its broadcast
(:class:`ChangeStates`): a JSONL field ``changes``, ``[{"change", "number", "kind", "state",
"error_code"}]``, oldest change first; in CSV the same list as JSON in a ``changes`` column
and, when one broadcast is exported, a column per change (``edit_1``, ``recall_2``) holding
the delivery's state in it. The existing columns come first.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from threadcast.errors import ValidationError
from threadcast.ledger import AuditRecord, ChangeBook
from threadcast.ledger.audit import DELIVERY_COLUMNS

CSV_FIELDS = [c.key for c in DELIVERY_COLUMNS] + ["attempt_log"]
CHANGES_FIELD = "changes"


class ChangeStates:
    """Each delivery's state in each change of its broadcast, read from the change book a
    broadcast at a time (the audit trail comes ordered by broadcast)."""

    def __init__(self, book: ChangeBook, broadcast_id: str | None = None) -> None:
        self._book = book
        self._broadcast: str | None = None
        self._states: dict[str, list[dict[str, Any]]] = {}
        #: One column per change of the one broadcast exported (``edit_1``), in CSV.
        self.columns: list[str] = []
        if broadcast_id is not None:
            self.columns = [column(c.kind.value, c.number) for c in book.of_broadcast(broadcast_id)]

    def of(self, broadcast_id: str, delivery_id: str) -> list[dict[str, Any]]:
        if broadcast_id != self._broadcast:
            self._broadcast, self._states = broadcast_id, {}
            for change, number, kind, delivery, state, code in self._book.rows(broadcast_id):
                self._states.setdefault(delivery, []).append(
                    {
                        "change": change,
                        "number": number,
                        "kind": kind,
                        "state": state,
                        "error_code": code,
                    }
                )
        return self._states.get(delivery_id, [])


def column(kind: str, number: int) -> str:
    """A change's CSV column: ``edit_1``, ``recall_2``."""
    return f"{kind}_{number}"


def write(
    records: Iterable[AuditRecord], fmt: str, out: TextIO, changes: ChangeStates | None = None
) -> int:
    """Write every record; return how many deliveries were written. With ``changes``, each
    delivery's states in its broadcast's edits and recall too."""
    if fmt == "jsonl":
        return _jsonl(records, out, changes)
    if fmt == "csv":
        return _csv(records, out, changes)
    raise ValidationError("--format", fmt, "must be csv or jsonl")


def _jsonl(records: Iterable[AuditRecord], out: TextIO, changes: ChangeStates | None) -> int:
    count = 0
    for record in records:
        out.write(json.dumps(_row(record, changes, nested=True), default=_plain) + "\n")
        count += 1
    return count


def _csv(records: Iterable[AuditRecord], out: TextIO, changes: ChangeStates | None) -> int:
    fields = CSV_FIELDS if changes is None else [*CSV_FIELDS, CHANGES_FIELD, *changes.columns]
    writer = csv.DictWriter(out, fieldnames=fields)
    writer.writeheader()
    count = 0
    for record in records:
        writer.writerow(_row(record, changes, nested=False))
        count += 1
    return count


def _row(record: AuditRecord, changes: ChangeStates | None, *, nested: bool) -> dict[str, Any]:
    row = {k: _plain(v) if isinstance(v, datetime) else v for k, v in record.delivery.items()}
    log = [
        {k: _plain(v) if isinstance(v, datetime) else v for k, v in a.items()}
        for a in record.attempts
    ]
    row["attempt_log"] = log if nested else json.dumps(log, separators=(",", ":"))
    if changes is not None:
        found = changes.of(str(row["broadcast"]), str(row["delivery"]))
        row[CHANGES_FIELD] = found if nested else json.dumps(found, separators=(",", ":"))
        if not nested:  # a change made since the header was written has no column
            shown = {column(c["kind"], c["number"]): c["state"] for c in found}
            row |= {k: v for k, v in shown.items() if k in changes.columns}
    return row


def _plain(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot export {type(value).__name__}")


@contextmanager
def destination(path: Path | None) -> Iterator[TextIO]:
    """stdout, or ``path`` written atomically (checked writable before any row is read)."""
    if path is None:
        yield sys.stdout
        return
    directory = path.resolve().parent
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    except OSError as exc:
        raise ValidationError("--output", str(path), f"cannot be written: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            yield out
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
