"""``threadcast export``: the audit trail as CSV or JSON lines, streamed to a file or stdout.

A file is written under a temporary name and renamed when complete, so a failed export
never leaves a partial file behind (nor touches an existing one).
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
from threadcast.ledger import AuditRecord
from threadcast.ledger.audit import DELIVERY_COLUMNS

CSV_FIELDS = [c.key for c in DELIVERY_COLUMNS] + ["attempt_log"]


def write(records: Iterable[AuditRecord], fmt: str, out: TextIO) -> int:
    """Write every record; return how many deliveries were written."""
    if fmt == "jsonl":
        return _jsonl(records, out)
    if fmt == "csv":
        return _csv(records, out)
    raise ValidationError("--format", fmt, "must be csv or jsonl")


def _jsonl(records: Iterable[AuditRecord], out: TextIO) -> int:
    count = 0
    for record in records:
        out.write(json.dumps(_row(record, nested=True), default=_plain) + "\n")
        count += 1
    return count


def _csv(records: Iterable[AuditRecord], out: TextIO) -> int:
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS)
    writer.writeheader()
    count = 0
    for record in records:
        writer.writerow(_row(record, nested=False))
        count += 1
    return count


def _row(record: AuditRecord, *, nested: bool) -> dict[str, Any]:
    row = {k: _plain(v) if isinstance(v, datetime) else v for k, v in record.delivery.items()}
    log = [
        {k: _plain(v) if isinstance(v, datetime) else v for k, v in a.items()}
        for a in record.attempts
    ]
    row["attempt_log"] = log if nested else json.dumps(log, separators=(",", ":"))
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
